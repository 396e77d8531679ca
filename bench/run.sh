#!/usr/bin/env bash
# Benchmarks of the Event Logger and the Notification Processor (issue 6), set against a ceiling
# measured in the same run.
#
#   bash bench/run.sh            full run (10 s a measurement), writes bench/results/latest.md
#   QUICK=1 bash bench/run.sh    quick run (3 s a measurement, smaller end-to-end bursts), writes
#                                bench/results/tmp/quick.md so the committed table stays a full run
#
# Builds in release mode, starts everything it measures on free loopback ports, and stops it all
# on exit, also on Ctrl-C. Each throughput case runs alternately against the ceiling
# (examples/ceiling.rs: tiny_http built like the logger, a thread per connection and the
# logger's number of handler permits, a fixed JSON answer) and the logger, PAIRS times, and
# reports medians. The RabbitMQ cases use the broker at
# BENCH_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f) with exchange and queue names of
# their own, deleted at the end; without a broker they are reported as skipped.
#
# Other settings (environment): BENCH_DURATION (seconds a measurement), PAIRS, HTTP_THREADS
# (both servers; default 2 x CPUs, the logger's default), BENCH_OUT (the result file).
# shellcheck disable=SC2317 # the hooks of `compare` are called through its arguments
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    MODE=quick
    DURATION=${BENCH_DURATION:-3}
    E2E_EVENTS=20000
    STEADY_SECS=5
    OUT=${BENCH_OUT:-bench/results/tmp/quick.md}
else
    MODE=full
    DURATION=${BENCH_DURATION:-10}
    E2E_EVENTS=100000
    STEADY_SECS=30
    OUT=${BENCH_OUT:-bench/results/latest.md}
fi
PAIRS=${PAIRS:-3}
THREADS=${HTTP_THREADS:-$((2 * $(nproc)))}
WRK_THREADS=2
STEADY_RATE=200
AMQP_URL_BENCH=${BENCH_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
RUN_ID="bench-$(date +%s)-$$"
TMP="$ROOT/bench/results/tmp/$RUN_ID"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release"
export BENCH_LUA="$ROOT/bench/lua"

# The processes, the load generator and the numbers: bench/lib.sh.
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

AMQP_NAMES=()

cleanup() {
    local status=$?
    stop_started
    for names in "${AMQP_NAMES[@]+"${AMQP_NAMES[@]}"}"; do
        # shellcheck disable=SC2086 # "exchange queue", split on purpose
        "$BIN/examples/bench_driver" amqp-delete "$AMQP_URL_BENCH" $names >/dev/null ||
            say "could not delete RabbitMQ objects $names"
    done
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

logger_env=(-u AMQP_URL -u API_TOKEN HOST=127.0.0.1 PORT=0 "HTTP_THREADS=$THREADS" LOG_LEVEL=info)

start_embedded_logger() { start_http "$1" "${logger_env[@]}" "$BIN/event-logger"; }

# Starts a logger in AMQP mode on the exchange/queue pair "$2" and waits until it is connected.
start_amqp_logger() {
    local name=$1 exchange=${2% *} queue=${2#* }
    start_http "$name" "${logger_env[@]}" "AMQP_URL=$AMQP_URL_BENCH" "AMQP_EXCHANGE=$exchange" \
        "AMQP_QUEUE=$queue" "$BIN/event-logger"
    for _ in $(seq 1 200); do
        [[ $(field broker "$(driver health "$SVC_URL")") == connected ]] && return 0
        sleep 0.05
    done
    die "$name did not connect to RabbitMQ; see $TMP/$name-$STARTS.log"
}

start_processor() {
    local name=$1 exchange=${2% *} queue=${2#* } api=$3
    start_waiting_for "$name" "connected to RabbitMQ" -u API_TOKEN "AMQP_URL=$AMQP_URL_BENCH" \
        "AMQP_EXCHANGE=$exchange" "AMQP_QUEUE=$queue" "API_URL=$api" LOG_LEVEL=info \
        "${PROCESSOR_BIN:-$BIN/notification-processor}"
}

# ---------------------------------------------------------------- the table

ROWS="$TMP/rows.md"
TARGETS="$TMP/targets.md"

row() { echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 |" >>"$ROWS"; }

# A throughput case: PAIRS runs against the ceiling and the logger in turn (A B A B ...).
#   compare LABEL UNIT CONNS SCRIPT PATH CEILING_URL BEFORE AFTER [NOTE]
# BEFORE is a command run before each logger measurement that sets LOGGER_URL (it may start a
# fresh logger); AFTER runs after it (it may stop it, and may leave a note in AFTER_NOTE).
# Sets C_RPS, C_P50, C_RATIO (medians).
compare() {
    local label=$1 unit=$2 conns=$3 script=$4 path=$5 ceiling=$6 before=$7 after=$8 note=${9:-}
    local rps=() p50=() p99=() errors=() ratios=() ceilings=() cpu=() ceiling_cpu=() i
    say "$label: $PAIRS x (ceiling, logger), ${DURATION} s each"
    for ((i = 0; i < PAIRS; i++)); do
        wrk_once "$ceiling$path" "$conns" "$script"
        local ceiling_rps=$W_RPS
        ceilings+=("$W_RPS")
        ceiling_cpu+=("$W_CPU")
        $before
        wrk_once "$LOGGER_URL$path" "$conns" "$script"
        $after
        rps+=("$W_RPS")
        p50+=("$W_P50")
        p99+=("$W_P99")
        errors+=("$W_ERR")
        cpu+=("$W_CPU")
        ratios+=("$(awk -v l="$W_RPS" -v c="$ceiling_rps" 'BEGIN {print l / c}')")
        say "  pair $((i + 1)): ceiling $(int "$ceiling_rps")/s, logger $(int "$W_RPS")/s, p50 $(ms "$W_P50"), errors $W_ERR"
    done
    C_RPS=$(median "${rps[@]}")
    C_P50=$(median "${p50[@]}")
    C_RATIO=$(median "${ratios[@]}")
    row "$label" "$(int "$C_RPS") $unit" "$(ms "$C_P50")" "$(ms "$(median "${p99[@]}")")" \
        "$(sum "${errors[@]}")" "$(calc "$C_RATIO") × ceiling ($(int "$(median "${ceilings[@]}")")/s)" \
        "CPU $(cpu_time "$(median "${cpu[@]}")")/req (ceiling $(cpu_time "$(median "${ceiling_cpu[@]}")"))${note:+; $note}${AFTER_NOTE:+: $AFTER_NOTE}"
    AFTER_NOTE=""
}

noop() { :; }

# Records one target: WHAT, MEASURED (text), MET (0/1 from an awk condition).
target() {
    local verdict="**not met**"
    [[ $3 == 1 ]] && verdict="met"
    echo "| $1 | $2 | $verdict |" >>"$TARGETS"
}

check() { awk "BEGIN {print ($1) ? 1 : 0}"; }

# ---------------------------------------------------------------- hooks of `compare`

# A POST measurement starts from an empty store: a fresh logger for each.
fresh_embedded() {
    start_embedded_logger logger-post
    LOGGER_URL=$SVC_URL
    LOGGER_PID=$SVC_PID
}

fresh_amqp() {
    start_amqp_logger logger-amqp "$POST_NAMES"
    LOGGER_URL=$SVC_URL
    LOGGER_PID=$SVC_PID
}

stop_logger() { stop_pid "$LOGGER_PID"; }

# Notes `pending` right after the run and how long the publisher then took to bring it to 0.
drain_and_stop() {
    local pending start=$SECONDS
    pending=$(field pending "$(driver health "$LOGGER_URL")")
    while [[ $(field pending "$(driver health "$LOGGER_URL")") != 0 ]] && ((SECONDS - start < 120)); do
        sleep 0.1
    done
    AFTER_NOTE="${AFTER_NOTE:+$AFTER_NOTE, }$(int "$pending") → $(field pending "$(driver health "$LOGGER_URL")") in $((SECONDS - start)) s"
    stop_logger
}

use_store() { LOGGER_URL=$STORE_URL; }
use_list() { LOGGER_URL=$LIST_URL; }

# seed COUNT IDS_FILE: creates COUNT more events in the store logger, every id into IDS_FILE.
seed() {
    say "seeding $(int "$1") events"
    local line
    line=$(driver post "$STORE_URL" --count "$1" --conns 8 --ids "$2")
    [[ $(field errors "$line") == 0 ]] || die "seeding failed: $line"
    STRING_BYTES=$((STRING_BYTES + $(field string_bytes "$line")))
    say "  $line"
}

# ---------------------------------------------------------------- the cases

# 1. POST /events, embedded mode.
case_post() {
    local conns
    for conns in 16 64 256; do
        compare "POST /events, embedded, $conns connections" "req/s" "$conns" "$BENCH_LUA/post.lua" \
            /events "$CEILING" fresh_embedded stop_logger
        if [[ $conns == 64 ]]; then
            target "POST /events embedded ≥ 0.9 × ceiling at 64 connections" \
                "$(calc "$C_RATIO") × ceiling" "$(check "$C_RATIO >= 0.9")"
        fi
    done
}

# 2., 3. and 7.: one embedded logger whose store grows from 1,000 to 1,000,000 events.
case_store() {
    start_embedded_logger logger-store
    STORE_URL=$SVC_URL
    STORE_PID=$SVC_PID
    local rss_empty rss_full p50_1k p50_1m per_event
    rss_empty=$(rss_kib "$STORE_PID")
    STRING_BYTES=0

    seed 1000 "$TMP/ids-1k"
    driver wait-processed "$STORE_URL" --expect 1000 >/dev/null
    BENCH_IDS="$TMP/ids-1k" compare "GET /events/{id}, 1,000 events, 64 connections" "req/s" 64 \
        "$BENCH_LUA/random_id.lua" "" "$CEILING" use_store noop
    # The lookup's own latency: at 64 connections p50 is mostly queueing, so it follows the
    # throughput of the moment; one connection shows the time of a request.
    BENCH_IDS="$TMP/ids-1k" compare "GET /events/{id}, 1,000 events, 1 connection" "req/s" 1 \
        "$BENCH_LUA/random_id.lua" "" "$CEILING" use_store noop
    p50_1k=$C_P50

    seed 99000 "$TMP/ids-99k"
    cat "$TMP/ids-1k" "$TMP/ids-99k" >"$TMP/ids-100k"
    driver wait-processed "$STORE_URL" --expect 100000 >/dev/null
    BENCH_IDS="$TMP/ids-100k" compare "GET /events/{id}, 100,000 events, 64 connections" "req/s" 64 \
        "$BENCH_LUA/random_id.lua" "" "$CEILING" use_store noop
    BENCH_IDS="$TMP/ids-100k" BENCH_METHOD=PUT compare \
        "PUT /events/{id} (status), 100,000 events, 64 connections" "req/s" 64 \
        "$BENCH_LUA/random_id.lua" "" "$CEILING" use_store noop

    seed 900000 "$TMP/ids-900k"
    driver wait-processed "$STORE_URL" --expect 1000000 --timeout 600 >/dev/null
    rss_full=$(rss_kib "$STORE_PID")
    # A uniform sample of 100,000 of the 1,000,000 ids.
    cat "$TMP/ids-100k" "$TMP/ids-900k" | awk 'NR % 10 == 0' >"$TMP/ids-1m"
    BENCH_IDS="$TMP/ids-1m" compare "GET /events/{id}, 1,000,000 events, 64 connections" "req/s" 64 \
        "$BENCH_LUA/random_id.lua" "" "$CEILING" use_store noop
    BENCH_IDS="$TMP/ids-1m" compare "GET /events/{id}, 1,000,000 events, 1 connection" "req/s" 1 \
        "$BENCH_LUA/random_id.lua" "" "$CEILING" use_store noop
    p50_1m=$C_P50
    target "GET /events/{id}: p50 at 1,000,000 events ≤ 1.2 × p50 at 1,000 (1 connection)" \
        "$(ms "$p50_1m") vs $(ms "$p50_1k") ($(calc "$p50_1m / $p50_1k") ×)" \
        "$(check "$p50_1m <= 1.2 * $p50_1k")"

    per_event=$(awk -v a="$rss_empty" -v b="$rss_full" -v s="$STRING_BYTES" \
        'BEGIN {printf "%.0f", ((b - a) * 1024 - s) / 1e6}')
    row "Logger RSS after 1,000,000 events (embedded, all Processed)" \
        "$(int "$((rss_full / 1024))") MiB" "" "" "" "$per_event B/event beyond its strings" \
        "RSS when empty: $(int "$((rss_empty / 1024))") MiB; strings: $(calc "$STRING_BYTES / 1e6") B/event"
    target "RSS ≤ 300 bytes per stored event beyond its strings" "$per_event B/event" \
        "$(check "$per_event <= 300")"
    stop_pid "$STORE_PID"
}

# 4. GET /events at 100,000 events, against the ceiling answering a body of the same size.
case_list() {
    start_embedded_logger logger-list
    LIST_URL=$SVC_URL
    local list_pid=$SVC_PID query size sized
    driver post "$LIST_URL" --count 100000 --conns 8 >/dev/null
    driver wait-processed "$LIST_URL" --expect 100000 >/dev/null
    for query in "" "?limit=100"; do
        size=$(field bytes "$(driver size "$LIST_URL/events$query")")
        start_http "ceiling-$size" "$BIN/examples/ceiling" --threads "$THREADS" --body-bytes "$size"
        sized=$SVC_URL
        if [[ -z $query ]]; then
            compare "GET /events (all 100,000: $(calc "$size / 1e6") MB), 1 connection" "req/s" 1 \
                "$BENCH_LUA/report.lua" "/events" "$sized" use_list noop "ceiling: same-size fixed body"
            target "GET /events at 100,000 events ≤ 100 ms" \
                "$(ms "$C_P50") (p50, $(calc "$size / 1e6") MB)" "$(check "$C_P50 <= 100000")"
        else
            compare "GET /events?limit=100 ($(int "$size") B), 64 connections" "req/s" 64 \
                "$BENCH_LUA/report.lua" "/events$query" "$sized" use_list noop "ceiling: same-size fixed body"
        fi
        stop_pid "$SVC_PID"
    done
    stop_pid "$list_pid"
}

# 5. POST /events in AMQP mode.
case_amqp() {
    if [[ $AMQP == 0 ]]; then
        row "POST /events, AMQP" "skipped: no RabbitMQ" "" "" "" "" ""
        return
    fi
    compare "POST /events, AMQP (confirms, persistent), 64 connections" "req/s" 64 \
        "$BENCH_LUA/post.lua" /events "$CEILING" fresh_amqp drain_and_stop \
        "\`pending\` at the end of each run, then after draining"
}

# e2e_ticks LOGGER_PID BROKER_PID PROCESSOR_PIDS...: "logger broker processors" CPU ticks, the
# broker as "-" when it is not a local process.
e2e_ticks() {
    local logger=$1 broker=$2 processors=0 pid
    shift 2
    for pid in "$@"; do processors=$((processors + $(ticks "$pid"))); done
    local broker_ticks=-
    if [[ -n $broker ]]; then broker_ticks=$(ticks "$broker"); fi
    echo "$(ticks "$logger") $broker_ticks $processors"
}

# e2e_phase PROCESSORS burst|steady: a fresh logger (AMQP) and PROCESSORS processors; one row.
# Sets E2E_RATE, E2E_P50_MS and E2E_P99_MS.
e2e_phase() {
    local processors=$1 kind=$2 pids=() i posted line
    start_amqp_logger "logger-e2e-$processors-$kind" "$E2E_NAMES"
    local url=$SVC_URL logger_pid=$SVC_PID
    for ((i = 1; i <= processors; i++)); do
        start_processor "processor-$processors-$kind-$i" "$E2E_NAMES" "$url"
        pids+=("$SVC_PID")
    done
    start_rss_sampler "${pids[0]}" "$TMP/rss-processor-$processors-$kind"
    local sampler=$SAMPLER_PID count label reference broker_pid cpu_before cpu_after
    # RabbitMQ's share of the CPU, when it runs on this machine (a local or Docker broker).
    broker_pid=$(pgrep -x beam.smp | head -n 1) || true
    cpu_before=$(e2e_ticks "$logger_pid" "$broker_pid" "${pids[@]}")
    if [[ $kind == burst ]]; then
        count=$E2E_EVENTS
        label="End to end, burst of $(int "$count") events (64 conn.), $processors processor(s)"
        say "$label"
        posted=$(driver post "$url" --count "$count" --conns 64)
    else
        count=$((STEADY_RATE * STEADY_SECS))
        label="End to end, steady $STEADY_RATE events/s for $STEADY_SECS s, $processors processor(s)"
        say "$label"
        posted=$(driver post "$url" --count "$count" --conns 4 --rate "$STEADY_RATE")
    fi
    say "  posted: $posted"
    driver wait-processed "$url" --expect "$count" --timeout 600 >/dev/null
    cpu_after=$(e2e_ticks "$logger_pid" "$broker_pid" "${pids[@]}")
    line=$(driver latency "$url")
    say "  $line"
    local cpu_note
    cpu_note=$(awk -v a="$cpu_before" -v b="$cpu_after" -v n="$count" -v hz="$CLK_TCK" 'BEGIN {
        split(a, x, " "); split(b, y, " "); f = 1e6 / hz / n
        printf "CPU per event: logger %.0f µs, processor(s) %.0f µs", (y[1] - x[1]) * f, (y[3] - x[3]) * f
        if (x[2] != "-") printf ", RabbitMQ %.0f µs", (y[2] - x[2]) * f
    }')
    stop_pid "$sampler"
    local rss_max
    label="$label${E2E_LABEL:-}"
    rss_max=$(sort -n "$TMP/rss-processor-$processors-$kind" | tail -n 1)
    E2E_RATE=$(field rate "$line")
    E2E_P50_MS=$(field p50_ms "$line")
    E2E_P99_MS=$(field p99_ms "$line")
    E2E_CPU_US=$(awk -v a="$cpu_before" -v b="$cpu_after" -v n="$count" -v hz="$CLK_TCK" \
        'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.1f", (y[1] - x[1] + y[3] - x[3]) * 1e6 / hz / n }')
    if [[ $kind == burst ]]; then
        reference="$(calc "$E2E_RATE / 10000") × target (10,000/s)"
    else
        reference="$(calc "$E2E_P50_MS / 5") × target p50 (5 ms)"
    fi
    row "$label" "$(int "$E2E_RATE") events/s" "$(ms_of_ms "$E2E_P50_MS")" "$(ms_of_ms "$(field p99_ms "$line")")" \
        "$(field errors "$posted")" "$reference" \
        "max $(ms_of_ms "$(field max_ms "$line")"); $(field retries "$posted") retries after 503; $cpu_note; processor RSS ≤ $(int "$((rss_max / 1024))") MiB"
    for i in "${pids[@]}"; do stop_pid "$i"; done
    stop_pid "$logger_pid"
}

# 6. End to end: logger (AMQP) + processor(s) + RabbitMQ.
case_e2e() {
    if [[ $AMQP == 0 ]]; then
        row "End to end" "skipped: no RabbitMQ" "" "" "" "" ""
        return
    fi
    e2e_phase 1 burst
    target "End to end ≥ 10,000 events/s with one processor" "$(int "$E2E_RATE") events/s" \
        "$(check "$E2E_RATE >= 10000")"
    e2e_phase 1 steady
    target "End to end p50 ≤ 5 ms at $STEADY_RATE events/s" "$E2E_P50_MS ms" \
        "$(check "$E2E_P50_MS <= 5")"
    target "End to end p99 ≤ 5 ms at $STEADY_RATE events/s, 1 processor" "$E2E_P99_MS ms" \
        "$(check "$E2E_P99_MS <= 5")"
    e2e_phase 2 burst
    e2e_phase 2 steady
    target "End to end p99 ≤ 5 ms at $STEADY_RATE events/s, 2 processors" "$E2E_P99_MS ms" \
        "$(check "$E2E_P99_MS <= 5")"
}

# 7. Not run by default: the processor of this tree against REFERENCE_PROCESSOR (another
# build's binary), one processor, burst and steady, alternating (reference, this) PAIRS times;
# medians and their ratios (this / reference). CPU is the logger's and the processor's together
# per event (a processor's requests cost the logger too).
case_processor() {
    if [[ $AMQP == 0 || -z ${REFERENCE_PROCESSOR:-} ]]; then
        row "Processor against a reference build" "skipped: needs RabbitMQ and REFERENCE_PROCESSOR" "" "" "" "" ""
        return
    fi
    local pair which kind
    declare -A rate p50 p99 cpu
    for ((pair = 1; pair <= PAIRS; pair++)); do
        for which in reference this; do
            if [[ $which == reference ]]; then PROCESSOR_BIN=$REFERENCE_PROCESSOR; else PROCESSOR_BIN=; fi
            for kind in burst steady; do
                E2E_LABEL=" ($which processor)"
                e2e_phase 1 "$kind"
                rate[$which-$kind]+="$E2E_RATE " p50[$which-$kind]+="$E2E_P50_MS "
                p99[$which-$kind]+="$E2E_P99_MS " cpu[$which-$kind]+="$E2E_CPU_US "
            done
        done
    done
    PROCESSOR_BIN= E2E_LABEL=
    local m r t
    for kind in burst steady; do
        for m in rate p50 p99 cpu; do
            local -n values=$m
            # shellcheck disable=SC2086 # lists of numbers, split on purpose
            r=$(median ${values[reference-$kind]}) t=$(median ${values[this-$kind]})
            row "Processor vs reference, $kind: median $m" "$t (reference $r)" "" "" "" \
                "$(calc "$t / $r") ×" "$PAIRS pairs; $m: events/s, p50/p99 ms, cpu µs/event (logger + processor)"
        done
    done
}

# ---------------------------------------------------------------- setup

command -v cargo >/dev/null || die "cargo is required"
need_wrk
mkdir -p "$TMP" "$(dirname "$OUT")"
say "building (release)"
cargo build --release --quiet --bins --example ceiling --example bench_driver

LOAD_BEFORE=$(cut -d ' ' -f 1-3 /proc/loadavg)
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
: >"$ROWS"
: >"$TARGETS"

AMQP=0
if driver amqp-check "$AMQP_URL_BENCH" >/dev/null 2>"$TMP/amqp-check.log"; then
    AMQP=1
    POST_NAMES="$RUN_ID-post $RUN_ID-post"
    E2E_NAMES="$RUN_ID-e2e $RUN_ID-e2e"
    AMQP_NAMES=("$POST_NAMES" "$E2E_NAMES")
else
    say "no RabbitMQ at $AMQP_URL_BENCH: the AMQP cases are skipped ($(cat "$TMP/amqp-check.log"))"
fi

start_http ceiling "$BIN/examples/ceiling" --threads "$THREADS" --body-bytes 80
CEILING=$SVC_URL

for case in ${BENCH_CASES:-post store list amqp e2e}; do
    "case_$case"
done

# ---------------------------------------------------------------- the report

LOAD_AFTER=$(cut -d ' ' -f 1-3 /proc/loadavg)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain -- src Cargo.toml Cargo.lock examples 2>/dev/null) ]]; then
    COMMIT="$COMMIT (with uncommitted changes)"
fi
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
{
    echo "# Benchmark results ($MODE run)"
    echo
    echo "Made by \`bash bench/run.sh\` (\`make bench\`). Machine: $CPU, $(nproc) cores, Linux $(uname -r);"
    echo "$STARTED_AT; commit $COMMIT. Load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER"
    echo "(the machine is shared: absolute figures drift with the load, ratios to a reference measured in"
    echo "the same run hold better)."
    echo
    echo "Settings: ${DURATION} s a measurement, $PAIRS pairs (ceiling, logger) per throughput case, medians"
    echo "reported; \`wrk -t$WRK_THREADS\` with keep-alive; $THREADS HTTP handler permits (\`HTTP_THREADS\`) in both"
    echo "the logger and the ceiling (\`examples/ceiling.rs\`: a bare \`tiny_http\` server built like the"
    echo "logger, a thread per connection, answering a fixed 80-byte JSON body)."
    echo "Latencies of HTTP cases are wrk's, per request at that load; end-to-end latencies are"
    echo "\`updated_at\` − \`created_at\` of each event (creation to \`Processed\`). Errors: transport errors"
    echo "plus non-2xx answers."
    echo
    echo "| case | rate | p50 | p99 | errors | ratio | notes |"
    echo "|---|---|---|---|---|---|---|"
    cat "$ROWS"
    echo
    echo "## Targets of issue 6"
    echo
    echo "| target | measured | |"
    echo "|---|---|---|"
    cat "$TARGETS"
} >"$OUT"
say "wrote $OUT"
cat "$OUT"
