-- Loaded by every wrk script of bench/run.sh (and usable alone with `wrk -s`): when wrk ends,
-- print one machine-readable line that the script parses. Errors are transport errors
-- (connect, read, write, timeout); non2xx counts answers outside 2xx/3xx.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d errors=%d non2xx=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
