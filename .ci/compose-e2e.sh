#!/usr/bin/env bash
# The Docker stack end to end, as a user meets it (`make up`), on a real Docker engine:
#   1. a Docker engine: the running one, or Debian's dockerd started here (installed with apt-get
#      when absent; as root), stopped again at the end if this script started it;
#   2. the base images: where the tags the Dockerfile and docker-compose.yml name are missing and
#      ../shared/docker-standins/build.sh exists (machines that cannot pull from Docker Hub), the
#      missing stand-ins are built with it;
#   3. `make up` (build, start, wait until /health shows "broker": "connected"), timed;
#   4. smoke test through the published port: POST /events -> the processor's exact line
#      `Event {id} has been sent to {user_id}: {description}` in `compose logs` -> GET /events/{id}
#      says "status": "Processed"; /docs answers 200 with HTML;
#   5. `--scale notification-processor=3`: 300 events, each printed exactly once across the three
#      processors (and each processor prints some), all marked Processed;
#   6. `make up`'s hints, on real failures: a LOGGER_NOFILE above what any kernel allows (runc's
#      "error setting rlimit") and a RABBITMQ_PASSWORD changed on an existing volume (RabbitMQ
#      keeps its first credentials; /health shows "disconnected");
#   7. `make down`, and no container of the stack left; then `down --volumes`.
#   (5b, between: `make down && make up` keeps the stored events, in the volume event-data.)
# The stack runs under its own Compose project (COMPOSE_PROJECT_NAME=ens-e2e-<pid>-<random>) with
# ports Docker picks (API_PORT=0, RABBITMQ_UI_PORT=0), so it never touches a developer's stack or
# anything on 8000/15672; a trap removes its containers and volume however the script ends.
# Under CI=true a Docker engine that cannot be had fails the script; elsewhere it prints a
# SKIPPED banner and exits 0. Knobs: E2E_EVENTS (default 300), E2E_SCALE (default 3),
# KEEP_DOCKERD=1 (leave a dockerd started here running), DOCKERD_LOG.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

EVENTS="${E2E_EVENTS:-300}"
SCALE="${E2E_SCALE:-3}"
STANDINS="$ROOT/../shared/docker-standins"
DOCKERD_LOG="${DOCKERD_LOG:-${TMPDIR:-/tmp}/event-notification-dockerd.log}"

case "${CI:-}" in "" | false | 0) in_ci=false ;; *) in_ci=true ;; esac
say() { printf -- '--> %s\n' "$*"; }
fail() {
  printf 'compose-e2e.sh: FAILED: %s\n' "$*" >&2
  exit 1
}
started=$SECONDS
timings=()
lap() { # lap NAME: record the seconds since the previous lap
  local now=$SECONDS
  timings+=("$1: $((now - ${lap_at:-$started})) s")
  lap_at=$now
}

skip() { # skip REASON: no Docker engine can be had
  if $in_ci; then
    fail "$1 (CI=true: the Docker end-to-end run must happen)"
  fi
  cat >&2 <<EOF
################################################################################
#  DOCKER END-TO-END RUN SKIPPED: $1
#  Nothing of 'make up' was tried. Start a Docker engine (as root: dockerd &),
#  or run with CI=true to make this an error.
################################################################################
EOF
  exit 0
}

# ---- 1. A Docker engine ------------------------------------------------------------------------
dockerd_pid=""
engine() { timeout 10 docker info >/dev/null 2>&1; }
if ! command -v docker >/dev/null 2>&1 || ! engine; then
  if ! command -v dockerd >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing Debian's docker.io (dockerd, containerd, runc)"
      { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; } ||
        skip "dockerd is not installed and apt-get could not install docker.io"
    else
      skip "no Docker engine runs, dockerd is not installed, and this is not root with apt-get"
    fi
  fi
  [ "$(id -u)" = 0 ] || skip "no Docker engine runs, and only root can start dockerd"
  say "starting dockerd (log: $DOCKERD_LOG)"
  dockerd >"$DOCKERD_LOG" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 60); do
    engine && break
    if ! kill -0 "$dockerd_pid" 2>/dev/null; then
      tail -20 "$DOCKERD_LOG" >&2
      dockerd_pid=""
      skip "dockerd exited at start (log above, $DOCKERD_LOG)"
    fi
    sleep 1
  done
  engine || { tail -20 "$DOCKERD_LOG" >&2; skip "dockerd did not answer 'docker info' within 60 s"; }
fi
say "Docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null)"

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  if ! command -v docker-compose >/dev/null 2>&1; then
    say "installing docker-compose (Debian package)"
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; } ||
      fail "neither 'docker compose' nor docker-compose, and apt-get could not install it"
  fi
  compose=(docker-compose)
fi
say "compose: ${compose[*]} ($("${compose[@]}" version --short 2>/dev/null || echo '?'))"
lap "engine"

# Stacks of earlier runs that were killed before their trap ran (a dockerd restarted since then
# brings back their `restart: unless-stopped` containers): the project names carry the pid.
for project in $(docker ps -a --format '{{.Label "com.docker.compose.project"}}' | sort -u | grep '^ens-e2e-' || true); do
  pid=${project#ens-e2e-}
  pid=${pid%%-*}
  if ! kill -0 "$pid" 2>/dev/null; then
    say "removing $project, left by an earlier run"
    docker ps -aq --filter "label=com.docker.compose.project=$project" | xargs -r docker rm -f >/dev/null
    docker volume ls -q --filter "label=com.docker.compose.project=$project" | xargs -r docker volume rm >/dev/null
    docker network ls -q --filter "label=com.docker.compose.project=$project" | xargs -r docker network rm >/dev/null
  fi
done

# ---- 2. Base images ----------------------------------------------------------------------------
declare -A standin=([debian:bookworm-slim]=debian [rust:1.95-bookworm]=rust
  [rabbitmq:4.1-management]=rabbitmq)
# The tags as the project's files name them; each must be one the stand-ins provide.
wanted=$(sed -n 's/^FROM \([^ ]*\).*/\1/p' Dockerfile; sed -n 's/^ *image: *\([^ ]*\)$/\1/p' docker-compose.yml |
  grep -v 'EVENT_NOTIFICATION_IMAGE')
missing=()
for tag in $wanted; do
  docker image inspect "$tag" >/dev/null 2>&1 && continue
  [ -n "${standin[$tag]:-}" ] || fail "$tag is not an image the stand-ins provide: update this script"
  missing+=("${standin[$tag]}")
done
if ((${#missing[@]})); then
  if [ -x "$STANDINS/build.sh" ]; then
    say "building the missing stand-in images (${missing[*]}) with $STANDINS/build.sh"
    # In build.sh's own order: the rust and rabbitmq stand-ins are built FROM the debian one.
    order=""
    for image in debian rust rabbitmq; do
      [[ " ${missing[*]} " == *" $image "* ]] && order="$order $image"
    done
    ONLY="${order# }" "$STANDINS/build.sh"
  else
    say "no $STANDINS/build.sh: Docker will pull ${missing[*]}"
  fi
fi
# What `ulimits: nofile` (LOGGER_NOFILE) can be at most on this engine.
say "open-file hard limit of a container here: $(docker run --rm --pull never debian:bookworm-slim \
  sh -c 'ulimit -Hn' 2>/dev/null || echo unknown)"
lap "base images"

# ---- The stack, under a project of its own ------------------------------------------------------
export COMPOSE_PROJECT_NAME="ens-e2e-$$-$RANDOM"
export API_PORT=0 RABBITMQ_UI_PORT=0
# An image tag of its own: a developer's `event-notification:latest` is never replaced. Kept
# afterwards, so that the next run reuses its layers.
export EVENT_NOTIFICATION_IMAGE=event-notification:e2e
# Nothing from a developer's shell may change the stack under test.
unset API_TOKEN RABBITMQ_USER RABBITMQ_PASSWORD LOGGER_NOFILE AMQP_EXCHANGE AMQP_QUEUE LOG_LEVEL
work=$(mktemp -d)
dc() { "${compose[@]}" "$@"; }
teardown() {
  local status=$?
  set +e
  if ((status != 0)); then
    echo "--- compose ps and the last logs of $COMPOSE_PROJECT_NAME:" >&2
    dc ps >&2
    dc logs --no-color --tail 30 >&2
  fi
  if [ -n "$(dc ps -q 2>/dev/null)" ] || docker volume inspect "${COMPOSE_PROJECT_NAME}_rabbitmq-data" >/dev/null 2>&1; then
    say "removing $COMPOSE_PROJECT_NAME (containers, network, volume)"
    dc down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1
  fi
  if [ -n "$dockerd_pid" ] && [ "${KEEP_DOCKERD:-}" != 1 ]; then
    say "stopping the dockerd this script started"
    kill -TERM "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
  fi
  rm -rf "$work"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

api="" # host:port of the published API, read back after each `make up`
read_port() {
  api=$(dc port event-logger 8000 | sed -E 's/^(0\.0\.0\.0|\[::\]):/127.0.0.1:/')
  [ -n "$api" ] || fail "compose port event-logger 8000 gave nothing"
}
http() { # http METHOD PATH [BODY]: the body on stdout; the status code in $work/code
  local args=(-sS --max-time 10 -o "$work/body" -w '%{http_code} %{content_type}' -X "$1")
  [ $# -lt 3 ] || args+=(-H 'Content-Type: application/json' --data-binary "$3")
  curl "${args[@]}" "http://$api$2" >"$work/code" || fail "$1 $2: curl failed"
  cat "$work/body"
}
code() { cut -d' ' -f1 "$work/code"; }
# The notification lines of every processor, without the `name | ` prefix Compose adds.
notifications() {
  dc logs --no-color notification-processor | sed -nE 's/^[^|]*\| (Event .*)$/\1/p'
}
# Waits up to $1 seconds for `$2...` (a command) to succeed.
wait_for() {
  local seconds=$1 deadline
  shift
  deadline=$((SECONDS + seconds))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}

# ---- 3. make up --------------------------------------------------------------------------------
say "make up ($COMPOSE_PROJECT_NAME, image $EVENT_NOTIFICATION_IMAGE)"
up_started=$SECONDS
make --no-print-directory up | tee "$work/up.log"
up_seconds=$((SECONDS - up_started))
grep -q '^The Event Notification System is up' "$work/up.log" || fail "make up did not say it is up"
# Cold: the image's dependency layer was built (cargo compiled crates), not taken from the cache.
compiled=$(grep -c 'Compiling ' "$work/up.log" || true)
case "$compiled" in
  0) cached="every layer cached" ;;
  [1-3]) cached="dependencies cached, the crate compiled" ;;
  *) cached="cold: $compiled crates compiled" ;;
esac
say "make up took ${up_seconds} s ($cached)"
lap "make up ($cached)"
read_port

# ---- 4. Smoke test -------------------------------------------------------------------------------
token="$RANDOM$RANDOM"
say "smoke test against http://$api"
http GET /health
echo
grep -Eq '"broker": *"connected"' "$work/body" || fail "/health does not show the broker connected"

description="compose end-to-end $token: \"quoted\" and ünicode"
created=$(http POST /events "{\"user_id\": \"ci-smoke\", \"description\": \"${description//\"/\\\"}\"}")
[ "$(code)" = 200 ] || fail "POST /events answered $(code): $created"
id=$(sed -nE 's/.*"event_id": *"([0-9a-f-]{36})".*/\1/p' <<<"$created")
[ -n "$id" ] || fail "no event_id in the POST answer: $created"
expected="Event $id has been sent to ci-smoke: $description"
seen_smoke() { notifications | grep -Fxq -- "$expected"; }
wait_for 30 seen_smoke || fail "the processors did not print: $expected"
say "notification-processor printed: $expected"
processed() { http GET "/events/$1" >/dev/null && grep -Eq '"status": *"Processed"' "$work/body"; }
wait_for 15 processed "$id" || fail "GET /events/$id is not Processed: $(cat "$work/body")"
say "GET /events/$id: $(grep -Eo '"status": *"[^"]*"' "$work/body")"
http GET /docs >/dev/null
read -r docs_code docs_type <"$work/code" || true # (no newline after curl's -w)
[ "$docs_code" = 200 ] || fail "GET /docs answered $docs_code"
[[ "$docs_type" == text/html* ]] || fail "GET /docs has Content-Type $docs_type, not HTML"
grep -qi '<html' "$work/body" || fail "GET /docs is not an HTML page"
say "GET /docs: 200 $docs_type, $(wc -c <"$work/body") bytes of HTML"
lap "smoke test"

# ---- 5. Scaled processors ------------------------------------------------------------------------
say "${compose[*]} up --detach --scale notification-processor=$SCALE"
dc up --detach --no-build --scale "notification-processor=$SCALE" 2>&1 | tail -n "$((SCALE + 2))"
mapfile -t processors < <(dc ps -q notification-processor)
[ "${#processors[@]}" = "$SCALE" ] || fail "${#processors[@]} processor containers, not $SCALE"
all_consuming() {
  local c
  for c in "${processors[@]}"; do
    docker logs "$c" 2>&1 | grep 'consuming' >/dev/null || return 1
  done
}
wait_for 60 all_consuming || fail "not every processor connected to RabbitMQ within 60 s"
say "$SCALE processors consuming; posting $EVENTS events"
: >"$work/expected"
for i in $(seq 1 "$EVENTS"); do
  answer=$(http POST /events "{\"user_id\": \"ci-scale-$token\", \"description\": \"event $i of $EVENTS\"}")
  [ "$(code)" = 200 ] || fail "POST /events #$i answered $(code): $answer"
  event=$(sed -nE 's/.*"event_id": *"([0-9a-f-]{36})".*/\1/p' <<<"$answer")
  echo "Event $event has been sent to ci-scale-$token: event $i of $EVENTS" >>"$work/expected"
done
printed() {
  notifications | grep -F "has been sent to ci-scale-$token: " >"$work/printed" || true
  [ "$(wc -l <"$work/printed")" -ge "$EVENTS" ]
}
wait_for 120 printed || fail "only $(wc -l <"$work/printed") of $EVENTS notifications printed within 120 s"
all_processed() {
  curl -sS --max-time 10 -D "$work/headers" -o /dev/null \
    "http://$api/events?user_id=ci-scale-$token&status=Processed&limit=0" &&
    grep -qi "^x-total-count: $EVENTS" "$work/headers"
}
wait_for 30 all_processed || fail "not all $EVENTS events are Processed: $(grep -i x-total-count "$work/headers")"
sort "$work/expected" >"$work/expected.sorted"
sort "$work/printed" >"$work/printed.sorted"
if ! cmp -s "$work/expected.sorted" "$work/printed.sorted"; then
  echo "--- expected (<) and printed (>) notifications differ:" >&2
  diff "$work/expected.sorted" "$work/printed.sorted" | head -20 >&2
  fail "the $EVENTS notifications were not each printed exactly once"
fi
per_processor=""
for c in "${processors[@]}"; do
  n=$(docker logs "$c" 2>/dev/null | grep -cF "has been sent to ci-scale-$token: " || true)
  per_processor+=" $n"
  [ "$n" -gt 0 ] || fail "processor $c printed none of the $EVENTS (per processor:$per_processor)"
done
say "$EVENTS events, each printed exactly once, all Processed; per processor:$per_processor"
lap "scale x$SCALE, $EVENTS events"

# ---- 5b. make down && make up keeps the events (the logger's volume, DATA_DIR=/data) ------------
count_events() { http GET /events >/dev/null && grep -o '"event_id"' "$work/body" | wc -l; }
before_down=$(count_events)
say "make down && make up with $before_down events stored: they must survive (volume event-data)"
make --no-print-directory down >/dev/null
make --no-print-directory up >"$work/up-again.log" 2>&1 ||
  { tail -30 "$work/up-again.log" >&2; fail "make up after make down failed"; }
read_port
processed "$id" || fail "event $id is gone or no longer Processed after make down && make up"
after_up=$(count_events)
[ "$after_up" -eq "$before_down" ] ||
  fail "$before_down events before make down, $after_up after make up"
say "after make down && make up: $after_up events, $id still Processed"
lap "make down && make up keeps the events"

# ---- 6. make up's hints, on real failures ----------------------------------------------------------
# More open files than Linux allows anyone (nr_open is 1048576 by default): runc fails on any host.
say "make up with LOGGER_NOFILE=1048577: must fail and explain the rlimit error"
if LOGGER_NOFILE=1048577 make --no-print-directory up >"$work/rlimit.log" 2>&1; then
  fail "make up succeeded with LOGGER_NOFILE=1048577"
fi
grep -q 'error setting rlimit' "$work/rlimit.log" ||
  { tail -20 "$work/rlimit.log" >&2; fail "the LOGGER_NOFILE=1048577 failure was not an rlimit error"; }
hint=$(grep '^make up: ' "$work/rlimit.log" | grep 'LOGGER_NOFILE') ||
  { tail -20 "$work/rlimit.log" >&2; fail "make up did not explain the rlimit failure"; }
say "make up said: $hint"

# RabbitMQ applies RABBITMQ_DEFAULT_PASS only to a fresh volume; this one was made with the default.
say "make up with a changed RABBITMQ_PASSWORD on the old volume: must fail and name down -v"
if RABBITMQ_PASSWORD="changed-$token" BROKER_TIMEOUT=10 make --no-print-directory up \
  >"$work/password.log" 2>&1; then
  fail "make up succeeded with a RABBITMQ_PASSWORD the broker's volume never had"
fi
grep -q '"broker": *"disconnected"' "$work/password.log" ||
  { tail -30 "$work/password.log" >&2; fail "make up did not show /health's disconnected broker"; }
grep "^make up: RabbitMQ refuses the login" "$work/password.log" | grep -qF "${compose[*]} down -v" ||
  { tail -30 "$work/password.log" >&2; fail "make up did not name the stale credentials and '${compose[*]} down -v'"; }
! grep -q 'changed-' "$work/password.log" || fail "make up's output shows the password"
say "make up said: $(grep '^make up: RabbitMQ' "$work/password.log")"
lap "make up hints (rlimit, stale password)"

# ---- 7. make down --------------------------------------------------------------------------------
say "make down"
make --no-print-directory down
[ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")" ] ||
  fail "containers of $COMPOSE_PROJECT_NAME are left after make down"
docker volume inspect "${COMPOSE_PROJECT_NAME}_rabbitmq-data" >/dev/null ||
  fail "make down removed the rabbitmq-data volume (it must keep queued messages)"
docker volume inspect "${COMPOSE_PROJECT_NAME}_event-data" >/dev/null ||
  fail "make down removed the event-data volume (it holds the stored events)"
make --no-print-directory down-v >/dev/null 2>&1
! docker volume inspect "${COMPOSE_PROJECT_NAME}_rabbitmq-data" >/dev/null 2>&1 ||
  fail "make down-v left the rabbitmq-data volume"
! docker volume inspect "${COMPOSE_PROJECT_NAME}_event-data" >/dev/null 2>&1 ||
  fail "make down-v left the event-data volume"
say "make down removed every container and kept the volumes; make down-v removed them"
lap "make down, down-v"

say "timings: ${timings[*]/%/;} total $((SECONDS - started)) s"
say "Docker end-to-end run passed"
