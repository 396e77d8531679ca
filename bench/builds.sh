#!/usr/bin/env bash
# Compares logger builds, or settings of one build, against ceilings measured in the same run:
# every server takes its turn in every round (round-robin, the starting server moving on by one
# each round), and the table gives medians over the rounds, with each round's ratio to the first
# ceiling measured in that round.
#
#   LOGGERS="before=/tmp/before/target/release/event-logger this=target/release/event-logger" \
#       bash bench/builds.sh
#
# Settings (environment):
#   LOGGERS   NAME=BINARY[,VAR=value...] ...: the loggers, each started embedded and in memory
#             (AMQP_URL, API_TOKEN and DATA_DIR unset) with HTTP_THREADS below, then its own
#             VAR=value pairs (which may set HTTP_THREADS). Default: this tree's release build.
#   CEILINGS  NAME=BINARY[,ARG...] ...: the ceilings, started with --threads $HTTP_THREADS and then
#             their own arguments (e.g. --queue, --threads 8). The first is the reference of the
#             ratios. Default: this tree's examples/ceiling (a thread per connection).
#   CASES     of "ping get post" (GET /ping; GET /events/{id} of random ids among SEED events;
#             POST /events into an empty store); default all three.
#   ROUNDS (5), DURATION (10 s a measurement), CONNS (64), HTTP_THREADS (4), SEED (10000),
#   OUT (default bench/results/tmp/builds.md), NO_BUILD=1 (skip building this tree).
#
# Each measurement starts a fresh server (a fresh store for POST) and stops it afterwards. The
# load generator and the process handling are bench/run.sh's (bench/lib.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${HTTP_THREADS:-4}
SEED=${SEED:-10000}
CASES=${CASES:-ping get post}
OUT=${OUT:-bench/results/tmp/builds.md}
WRK_THREADS=2
RUN_ID="builds-$(date +%s)-$$"
TMP="$ROOT/bench/results/tmp/$RUN_ID"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release"
LOGGERS=${LOGGERS:-this=$BIN/event-logger}
CEILINGS=${CEILINGS:-ceiling=$BIN/examples/ceiling}
export BENCH_LUA="$ROOT/bench/lua"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap stop_started EXIT
trap 'exit 130' INT TERM

need_wrk
mkdir -p "$TMP" "$(dirname "$OUT")"
if [[ ${NO_BUILD:-0} != 1 ]]; then
    say "building this tree (release)"
    cargo build --release --quiet --bins --example ceiling --example bench_driver
fi

# The servers, in turn order: ceilings first. KIND[name] is "ceiling" or "logger", BINARY[name]
# its binary, EXTRA[name] its comma-separated VAR=value pairs or arguments.
NAMES=()
declare -A KIND BINARY EXTRA
add_servers() {
    local kind=$1 spec name rest
    shift
    for spec in "$@"; do
        [[ $spec == *=* ]] || die "bad server '$spec': NAME=BINARY[,...] expected"
        name=${spec%%=*} rest=${spec#*=}
        [[ -z ${KIND[$name]:-} ]] || die "two servers named '$name'"
        KIND[$name]=$kind BINARY[$name]=${rest%%,*} EXTRA[$name]=
        [[ $rest == *,* ]] && EXTRA[$name]=${rest#*,}
        [[ -x ${BINARY[$name]} ]] || die "$name: no executable ${BINARY[$name]}"
        NAMES+=("$name")
    done
}
# shellcheck disable=SC2086 # lists of specs, split on purpose
add_servers ceiling $CEILINGS
# shellcheck disable=SC2086
add_servers logger $LOGGERS
REFERENCE=${CEILINGS%% *}
REFERENCE=${REFERENCE%%=*}

# Starts server NAME; sets SVC_URL and SVC_PID.
start_server() {
    local name=$1 extra=()
    [[ -n ${EXTRA[$name]} ]] && IFS=, read -ra extra <<<"${EXTRA[$name]}"
    if [[ ${KIND[$name]} == ceiling ]]; then
        start_http "$name" "${BINARY[$name]}" --threads "$THREADS" "${extra[@]}"
    else
        start_http "$name" -u AMQP_URL -u API_TOKEN -u DATA_DIR HOST=127.0.0.1 PORT=0 \
            "HTTP_THREADS=$THREADS" LOG_LEVEL=info "${extra[@]}" "${BINARY[$name]}"
    fi
}

# Ids for the ceilings' GET case (they answer any path): UUID-shaped, like the logger's.
awk 'BEGIN {srand(1); for (i = 0; i < 1000; i++) {
    s = ""; for (j = 0; j < 32; j++) s = s sprintf("%x", int(rand() * 16))
    print substr(s, 1, 8) "-" substr(s, 9, 4) "-" substr(s, 13, 4) "-" substr(s, 17, 4) "-" substr(s, 21)
}}' >"$TMP/ceiling-ids"

# measure CASE NAME: one measurement; sets W_* (bench/lib.sh's wrk_once).
measure() {
    local case=$1 name=$2 ids=$TMP/ceiling-ids line
    start_server "$name"
    local url=$SVC_URL pid=$SVC_PID
    if [[ $case == get && ${KIND[$name]} == logger ]]; then
        ids="$TMP/ids-$name"
        : >"$ids"
        line=$(driver post "$url" --count "$SEED" --conns 8 --ids "$ids")
        [[ $(field errors "$line") == 0 ]] || die "seeding $name failed: $line"
        driver wait-processed "$url" --expect "$SEED" >/dev/null
    fi
    case $case in
    ping) wrk_once "$url/ping" "$CONNS" "$BENCH_LUA/report.lua" ;;
    get) BENCH_IDS=$ids wrk_once "$url" "$CONNS" "$BENCH_LUA/random_id.lua" ;;
    post) wrk_once "$url/events" "$CONNS" "$BENCH_LUA/post.lua" ;;
    *) die "unknown case '$case' (ping, get, post)" ;;
    esac
    stop_pid "$pid"
}

# shellcheck disable=SC2086 # lists of numbers, split on purpose
throughput_cells() {
    echo "$(int "$(median ${RPS[$1]})") | $(ms "$(median ${P99[$1]})") | $(calc "$(median ${RATIO[$1]})") |"
}

# shellcheck disable=SC2086
latency_cells() {
    echo "$(ms "$(median ${P50[$1]})") | $(cpu_time "$(median ${CPU[$1]})") |"
}

# A markdown table, a row per server: for each case, the columns named in $1 ("a | b"),
# filled by the function $2 given the key "case|server".
table() {
    local header="| server |" rule="|---|" line case name
    for case in $CASES; do
        header+=" $case ${1//| /| $case } |"
        rule+=$(printf -- '---|%.0s' $(seq "$(($(grep -o '|' <<<"$1" | wc -l) + 1))"))
    done
    echo "$header"
    echo "$rule"
    for name in "${NAMES[@]}"; do
        line="| $name |"
        for case in $CASES; do
            line+=" $("$2" "$case|$name")"
        done
        echo "$line"
    done
}

LOAD_BEFORE=$(cut -d ' ' -f 1-3 /proc/loadavg)
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
declare -A RPS P50 P99 CPU RATIO
count=${#NAMES[@]}
for ((round = 0; round < ROUNDS; round++)); do
    for case in $CASES; do
        declare -A rps_now=()
        for ((k = 0; k < count; k++)); do
            name=${NAMES[$(((round + k) % count))]}
            measure "$case" "$name"
            rps_now[$name]=$W_RPS
            key="$case|$name"
            RPS[$key]+="$W_RPS " P50[$key]+="$W_P50 " P99[$key]+="$W_P99 " CPU[$key]+="$W_CPU "
            say "round $((round + 1))/$ROUNDS $case $name: $(int "$W_RPS")/s p99 $(ms "$W_P99") errors $W_ERR"
            ((W_ERR == 0)) || say "  $name had $W_ERR errors in $case"
        done
        for name in "${NAMES[@]}"; do
            RATIO["$case|$name"]+="$(awk -v a="${rps_now[$name]}" -v b="${rps_now[$REFERENCE]}" 'BEGIN {print a / b}') "
        done
        unset rps_now
    done
done
LOAD_AFTER=$(cut -d ' ' -f 1-3 /proc/loadavg)

# shellcheck disable=SC2086 # lists of numbers, split on purpose
{
    echo "# Logger builds against the ceiling"
    echo
    echo "Made by \`bash bench/builds.sh\`: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1),"
    echo "$(nproc) cores, Linux $(uname -r); $STARTED_AT; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo "Load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER."
    echo
    echo "Settings: $ROUNDS rounds, each server in turn in each round (a fresh process per measurement);"
    echo "$DURATION s a measurement; \`wrk -t$WRK_THREADS -c$CONNS\` with keep-alive; HTTP_THREADS=$THREADS unless"
    echo "said; GET of random ids among $SEED events. Medians over the rounds; a ratio is the median of"
    echo "the rounds' ratios to \`$REFERENCE\` measured in the same round."
    echo
    echo "Servers:"
    echo
    for name in "${NAMES[@]}"; do
        echo "- \`$name\` (${KIND[$name]}): \`${BINARY[$name]}\`${EXTRA[$name]:+ with \`${EXTRA[$name]//,/ }\`}"
    done
    echo
    table "req/s | p99 | × $REFERENCE" throughput_cells
    echo
    echo "p50 and the server's CPU time per request (user + system), medians:"
    echo
    table "p50 | CPU/req" latency_cells
    echo
    echo "Each round's req/s:"
    echo
    echo "| case | server | req/s by round |"
    echo "|---|---|---|"
    for case in $CASES; do
        for name in "${NAMES[@]}"; do
            line=""
            for v in ${RPS["$case|$name"]}; do line+="${line:+, }$(int "$v")"; done
            echo "| $case | $name | $line |"
        done
    done
} >"$OUT"
say "wrote $OUT"
cat "$OUT"
