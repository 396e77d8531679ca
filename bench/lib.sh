# Shared by bench/run.sh and bench/builds.sh (sourced, not run): starting and stopping the
# processes measured, the load generator (wrk_once) and the arithmetic of the tables.
#
# The script that sources it sets TMP (logs), BIN (the release directory: bench_driver),
# DURATION (seconds a wrk run) and WRK_THREADS, and traps EXIT to call stop_started.
# shellcheck shell=bash disable=SC2034,SC2153 # W_* are the caller's to read; DURATION the caller's

die() {
    echo "bench: $*" >&2
    exit 1
}
say() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- processes we started

STARTED=()
declare -A PID_OF # URL of each HTTP server started -> its process id
STARTS=0

stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local left=()
    for pid in "${STARTED[@]}"; do [[ $pid == "$1" ]] || left+=("$pid"); done
    STARTED=("${left[@]+"${left[@]}"}")
}

# Stops every process started and not yet stopped.
stop_started() {
    for pid in "${STARTED[@]+"${STARTED[@]}"}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]+"${STARTED[@]}"}"; do wait "$pid" 2>/dev/null || true; done
    STARTED=()
}

# Starts `env ARGS...` in the background (stdout discarded: notification lines), logging to
# $TMP/NAME-N.log, and waits for its "listening on http://ADDR" line. Sets SVC_PID and SVC_URL.
start_http() {
    local name=$1
    shift
    # A new file for each start: the shell truncates it only once the child runs, so a reused
    # name could still show the previous process's address.
    STARTS=$((STARTS + 1))
    local log="$TMP/$name-$STARTS.log"
    env "$@" >/dev/null 2>"$log" &
    SVC_PID=$!
    STARTED+=("$SVC_PID")
    local addr
    for _ in $(seq 1 400); do
        addr=$(grep -so 'listening on http://[0-9.:]*' "$log" | head -n 1 | sed 's|.*http://||') || true
        if [[ -n $addr ]]; then
            SVC_URL="http://$addr"
            PID_OF[$SVC_URL]=$SVC_PID
            return 0
        fi
        kill -0 "$SVC_PID" 2>/dev/null || die "$name exited at start: $(tail -n 5 "$log")"
        sleep 0.05
    done
    die "$name did not start listening; see $log"
}

# Starts a process that is not an HTTP server; waits until its log contains PATTERN.
start_waiting_for() {
    local name=$1 pattern=$2
    shift 2
    # A new file for each start: the shell truncates it only once the child runs, so a reused
    # name could still show the previous process's address.
    STARTS=$((STARTS + 1))
    local log="$TMP/$name-$STARTS.log"
    env "$@" >/dev/null 2>"$log" &
    SVC_PID=$!
    STARTED+=("$SVC_PID")
    for _ in $(seq 1 400); do
        grep -qs "$pattern" "$log" && return 0
        kill -0 "$SVC_PID" 2>/dev/null || die "$name exited at start: $(tail -n 5 "$log")"
        sleep 0.05
    done
    die "$name did not log '$pattern'; see $log"
}

CLK_TCK=$(getconf CLK_TCK)

# CPU time (user + system) PID has used so far, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Samples the RSS of PID every 200 ms into FILE until stopped. Sets SAMPLER_PID.
start_rss_sampler() {
    local pid=$1 file=$2
    (while kill -0 "$pid" 2>/dev/null; do
        rss_kib "$pid" 2>/dev/null || true
        sleep 0.2
    done) >"$file" &
    SAMPLER_PID=$!
    STARTED+=("$SAMPLER_PID")
}

# ---------------------------------------------------------------- numbers

driver() { "$BIN/examples/bench_driver" "$@"; }

# The value of KEY in a line of key=value pairs.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

sum() { printf '%s\n' "$@" | awk '{s += $1} END {print s + 0}'; }

# 12345.6 -> 12,346
int() { awk -v n="$1" 'BEGIN {n = sprintf("%.0f", n); s = ""; while (length(n) > 3) {s = "," substr(n, length(n) - 2) s; n = substr(n, 1, length(n) - 3)} print n s}'; }

ms() { awk -v us="$1" 'BEGIN {printf (us < 10000 ? "%.2f ms" : "%.0f ms"), us / 1000}'; }

ms_of_ms() { ms "$(awk -v m="$1" 'BEGIN {print m * 1000}')"; }

cpu_time() { awk -v us="$1" 'BEGIN {printf (us >= 10000 ? "%.0f ms" : "%.0f µs"), (us >= 10000 ? us / 1000 : us)}'; }

calc() { awk "BEGIN {printf \"%.2f\", $1}"; }

# Runs wrk once: URL CONNS SCRIPT. Sets W_RPS (2xx answers per second), W_P50, W_P99 (µs), W_ERR (transport errors and
# non-2xx answers) and W_CPU (CPU µs per request of the server at URL: user + system time).
wrk_once() {
    local url=$1 conns=$2 script=$3 threads=$WRK_THREADS out line pid before
    if ((conns < threads)); then threads=$conns; fi
    pid=${PID_OF[$(sed -E 's|^(http://[^/]*).*|\1|' <<<"$url")]}
    before=$(ticks "$pid")
    out=$(wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 10s -s "$script" "$url" 2>&1) ||
        die "wrk failed on $url: $out"
    kill -0 "$pid" 2>/dev/null || die "the server at $url (pid $pid) died during the run; see $TMP/*.log"
    local used=$(($(ticks "$pid") - before))
    line=$(grep '^BENCH ' <<<"$out") || die "wrk printed no summary for $url: $out"
    local requests duration
    requests=$(field requests "$line")
    duration=$(field duration_us "$line")
    # Only successful answers count: a 503 (outbox full) is an error, not throughput.
    W_RPS=$(awk -v r="$requests" -v n="$(field non2xx "$line")" -v d="$duration" 'BEGIN {print (r - n) / (d / 1e6)}')
    W_P50=$(field p50_us "$line")
    W_P99=$(field p99_us "$line")
    W_ERR=$(($(field errors "$line") + $(field non2xx "$line")))
    W_CPU=$(awk -v t="$used" -v r="$requests" -v hz="$CLK_TCK" 'BEGIN {print (r > 0) ? t * 1e6 / hz / r : 0}')
}

# Installs wrk (Debian's package) when run as root, else fails saying how.
need_wrk() {
    command -v wrk >/dev/null && return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "installing wrk (Debian package)"
        apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    fi
    command -v wrk >/dev/null || die "wrk is required: sudo apt-get install wrk (Debian/Ubuntu)"
}
