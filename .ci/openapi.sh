#!/usr/bin/env bash
# The OpenAPI document and the docs page, checked by real tools:
#   1. openapi-spec-validator validates openapi/openapi.json as OpenAPI 3.1;
#   2. schemathesis runs every check over every operation of a live event-logger (embedded mode,
#      a free port), a few hundred generated requests, bounded in count and in time;
#   3. a headless Chromium (Debian's) loads /docs with every non-local request blocked, and
#      creates an event with "Try it out" (tests/browser/docs.mjs).
# Tools are installed on first use: the Python ones, pinned, into a venv under the cache dir;
# Chromium with apt-get; playwright-core with `npm ci` from tests/browser/package-lock.json.
# Under CI=true, anything that cannot be installed fails the script; elsewhere the check that
# needs it is skipped with a warning. Environment knobs: SCHEMATHESIS_SEED (rerun a failure),
# SCHEMATHESIS_EXAMPLES (per operation, default 30), OPENAPI_PROFILE (debug|release),
# OPENAPI_TOOLS_DIR (where the venv lives).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

SCHEMATHESIS_VERSION=4.32.5
SPEC_VALIDATOR_VERSION=0.9.0
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-30}"
# Hard wall-clock bound of the schemathesis run; its usual time is well under a minute.
SCHEMATHESIS_TIMEOUT=150
PROFILE="${OPENAPI_PROFILE:-debug}"
TOOLS_DIR="${OPENAPI_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/event-notification}"
VENV="$TOOLS_DIR/openapi-venv"

case "${CI:-}" in "" | false | 0) in_ci=false ;; *) in_ci=true ;; esac
say() { printf -- '--> %s\n' "$*"; }
fail() {
  printf 'openapi.sh: FAILED: %s\n' "$*" >&2
  exit 1
}
# Something could not be installed: fatal in CI, a skipped check elsewhere.
missing() {
  if $in_ci; then
    fail "$1 (CI=true: every check must run)"
  fi
  skipped+=("$2")
  printf 'openapi.sh: WARNING: %s; SKIPPING %s\n' "$1" "$2" >&2
}

skipped=()
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- Install what the checks need (before the server starts) -------------------------------

python_tools=false
requirements="schemathesis==$SCHEMATHESIS_VERSION openapi-spec-validator==$SPEC_VALIDATOR_VERSION"
if [[ -x "$VENV/bin/st" && "$(cat "$VENV/.pinned" 2>/dev/null)" == "$requirements" ]]; then
  python_tools=true
else
  say "installing $requirements into $VENV"
  rm -rf "$VENV"
  mkdir -p "$TOOLS_DIR"
  # shellcheck disable=SC2086 # the requirements are separate words on purpose
  if python3 -m venv "$VENV" &&
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $requirements; then
    printf '%s' "$requirements" >"$VENV/.pinned"
    python_tools=true
  else
    rm -rf "$VENV"
    missing "cannot install $requirements with pip" "the validator and schemathesis"
  fi
fi

browser_tools=false
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  say "installing Debian's chromium"
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >"$work/apt.log" 2>&1; then
    chromium=/usr/bin/chromium
  else
    tail -20 "$work/apt.log" >&2 2>/dev/null || true
  fi
fi
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [[ ! -x "$chromium" ]]; then
  missing "no Chromium at $chromium and apt-get could not install it" "the browser check"
elif ((node_major < 20)); then
  missing "playwright-core needs Node.js 20 or later (found major version: $node_major)" \
    "the browser check"
else
  locked="$(node -p 'require("./tests/browser/package-lock.json").packages["node_modules/playwright-core"].version')"
  installed="$(node -p 'require("./tests/browser/node_modules/playwright-core/package.json").version' 2>/dev/null || true)"
  if [[ "$installed" == "$locked" ]]; then
    browser_tools=true
  else
    say "installing playwright-core $locked (npm ci in tests/browser)"
    if (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error); then
      browser_tools=true
    else
      missing "npm ci in tests/browser failed" "the browser check"
    fi
  fi
fi

# --- 1. The committed document is valid OpenAPI 3.1 ------------------------------------------

if $python_tools; then
  say "openapi-spec-validator $SPEC_VALIDATOR_VERSION: openapi/openapi.json as OpenAPI 3.1"
  "$VENV/bin/openapi-spec-validator" --schema 3.1 openapi/openapi.json ||
    fail "openapi/openapi.json is not valid OpenAPI 3.1"
fi

if ! $python_tools && ! $browser_tools; then
  say "no live check can run; SKIPPED: ${skipped[*]}"
  exit 0
fi

# --- A live event-logger: embedded mode, a port the system picks ------------------------------

say "building event-logger ($PROFILE)"
cargo_flags=()
[[ "$PROFILE" == release ]] && cargo_flags+=(--release)
cargo build --quiet --bin event-logger "${cargo_flags[@]}"
target_dir="$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
binary="$target_dir/$PROFILE/event-logger"

# No AMQP_URL: the embedded notifier. PORT=0: the address is read back from the log.
env -u AMQP_URL -u API_TOKEN HOST=127.0.0.1 PORT=0 LOG_LEVEL=info \
  "$binary" >"$work/notifications.log" 2>"$work/server.log" &
server_pid=$!
base=""
for _ in $(seq 1 100); do
  base="$(grep -o 'listening on http://[0-9.:]*' "$work/server.log" | head -1 | sed 's/listening on //')" || true
  [[ -n "$base" ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$base" ]]; then
  cat "$work/server.log" >&2
  fail "event-logger did not start"
fi
say "event-logger at $base"
server_failed() {
  echo "--- last lines of the server's log:" >&2
  tail -30 "$work/server.log" >&2
  fail "$1"
}

# --- 2. schemathesis over every operation -------------------------------------------------

if $python_tools; then
  seed="${SCHEMATHESIS_SEED:-$RANDOM$RANDOM}"
  say "schemathesis $SCHEMATHESIS_VERSION: --checks all, $EXAMPLES examples per operation, seed $seed"
  started=$SECONDS
  status=0
  # The committed document, which the logger tests (openapi::committed) prove is what the server serves: loaded
  # from the server's URL, schemathesis leaves out the operation that serves it (8 of 9).
  # Run from the scratch folder: schemathesis keeps a `.schemathesis/` cache in its working
  # directory, which must not litter the repository.
  (cd "$work" && timeout --kill-after=10 "$SCHEMATHESIS_TIMEOUT" "$VENV/bin/st" \
    --config-file "$repo/openapi/schemathesis.toml" run \
    "$repo/openapi/openapi.json" --url "$base" --checks all --max-examples "$EXAMPLES" \
    --seed "$seed" --generation-database none --request-timeout 10 --no-color \
    >"$work/schemathesis.log" 2>&1) || status=$?
  elapsed=$((SECONDS - started))
  if ((status == 124 || status == 137)); then
    cat "$work/schemathesis.log"
    server_failed "schemathesis did not finish within ${SCHEMATHESIS_TIMEOUT}s"
  fi
  # The phases and the summary; the full log only when something failed.
  if ((status != 0)); then
    cat "$work/schemathesis.log"
    server_failed "schemathesis found problems (exit $status); rerun with SCHEMATHESIS_SEED=$seed"
  fi
  sed -n '/SUMMARY/,$p' "$work/schemathesis.log" | grep -E 'Selected|generated|issues|Seed' || true
  say "schemathesis passed in ${elapsed}s"
fi

# --- 3. The docs page in a real browser, offline -------------------------------------------

if $browser_tools; then
  say "browser check of $base/docs (Chromium $("$chromium" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1))"
  CHROMIUM="$chromium" node tests/browser/docs.mjs "$base" ||
    server_failed "the browser check of /docs failed"
fi

kill -0 "$server_pid" 2>/dev/null || server_failed "event-logger died during the checks"
if ((${#skipped[@]})); then
  say "OpenAPI checks passed, but SKIPPED: ${skipped[*]}"
else
  say "OpenAPI checks passed"
fi
