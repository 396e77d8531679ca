#!/usr/bin/env bash
# The vendored tiny_http fork (vendor/tiny_http/PATCHES.md): checks that the patch series
# applied to the pristine crate gives, byte for byte, the tree that Cargo builds.
#
#   bash .ci/tiny_http_patches.sh              check: upstream/ + patches/*.patch == patched/,
#                                              and every edit in patched/ is marked PATCHED
#   bash .ci/tiny_http_patches.sh --test       the check, then the crate's own tests (upstream's
#                                              and the patches') on a copy of patched/
#   bash .ci/tiny_http_patches.sh --verify-upstream
#                                              the check, and upstream/ == tiny_http 0.12.0 as
#                                              crates.io serves it (fetched with cargo)
#   bash .ci/tiny_http_patches.sh --apply      rewrites patched/ from upstream/ + patches/
#   bash .ci/tiny_http_patches.sh --series DIR makes DIR a git repository: upstream/ as the first
#                                              commit, then one commit per patch (git am), to
#                                              edit the series with git (rebase -i, amend, ...)
#   bash .ci/tiny_http_patches.sh --export DIR writes DIR's commits after the first back to
#                                              patches/ (git format-patch), then --apply
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
vendor=$root/vendor/tiny_http
upstream=$vendor/upstream
patched=$vendor/patched
patches=$vendor/patches
version=0.12.0

fail() {
  printf 'tiny_http_patches: FAILED: %s\n' "$*" >&2
  exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

series() { ls "$patches"/[0-9][0-9][0-9][0-9]-*.patch; }

# Applies the series to a fresh copy of upstream/ in $1.
build_tree() {
  local tree=$1 patch
  cp -a "$upstream" "$tree"
  for patch in $(series); do
    # Outside any repository (GIT_CEILING_DIRECTORIES), git apply works on plain files.
    if ! (cd "$tree" && GIT_CEILING_DIRECTORIES=$work git apply --whitespace=nowarn "$patch"); then
      fail "$(basename "$patch") does not apply on top of the ones before it"
    fi
  done
}

check() {
  [ -d "$upstream" ] && [ -d "$patched" ] && [ -d "$patches" ] || fail "missing $vendor/{upstream,patched,patches}"
  build_tree "$work/applied"
  if ! diff -r "$work/applied" "$patched" >"$work/diff"; then
    cat "$work/diff" >&2
    fail "vendor/tiny_http/patched differs from upstream + patches (above: < applied, > patched);
  edit the patches and run '$0 --apply', see vendor/tiny_http/PATCHES.md"
  fi
  echo "tiny_http_patches: upstream + $(series | wc -l) patches == vendor/tiny_http/patched"
  check_markers
}

# Every edit of an upstream file is within 3 lines of a PATCHED comment (each hunk of the
# cumulative diff shows one), and every file the series adds says PATCHED on its first line.
check_markers() {
  local unmarked
  # diff exits 1 on differences, which are expected here.
  unmarked=$(cd "$vendor" && { diff -ru upstream patched || true; } | awk '
    /^Only in / { next }
    /^diff / { flush(); file = $NF; next }
    /^@@ / { flush(); hunk = $0; inhunk = 1; marked = 0; next }
    inhunk && /^[+ ]/ && /PATCHED/ { marked = 1 }
    function flush() { if (inhunk && !marked) printf "  %s %s\n", file, hunk; inhunk = 0 }
    END { flush() }')
  [ -z "$unmarked" ] || fail "edits without a PATCHED comment nearby:
$unmarked"
  local added
  added=$(cd "$vendor" && { diff -rq upstream patched || true; } | sed -n 's|^Only in patched\(/[^:]*\)\?: |patched\1/|p')
  for file in $added; do
    [ -f "$vendor/$file" ] || fail "the series adds a directory, $file: list its files here"
    head -n 1 "$vendor/$file" | grep -q PATCHED || fail "$file (added by the series) does not start with a PATCHED comment"
  done
  local deleted
  deleted=$(cd "$vendor" && { diff -rq upstream patched || true; } | grep '^Only in upstream' || true)
  [ -z "$deleted" ] || fail "the series deletes upstream files: $deleted"
  echo "tiny_http_patches: every edit is marked PATCHED"
}

# The crate's own tests, on a copy (a build inside patched/ would leave target/ and Cargo.lock
# there). Cargo.lock: vendor/tiny_http/selftest.Cargo.lock, since the one published in 0.12.0
# pins a rustc-serialize that no longer builds. A plain `cp -r`, not `cp -a`: Cargo tells a
# stale build by the sources' modification times, and this copy's must be newer than any build
# in target/tiny_http-selftest (whatever tree that was built from).
self_test() {
  cp -r "$patched" "$work/selftest"
  cp "$vendor/selftest.Cargo.lock" "$work/selftest/Cargo.lock"
  local target=${CARGO_TARGET_DIR:-$root/target}
  case $target in /*) ;; *) target=$root/$target ;; esac
  # The benches need nightly (#![feature(test)]): the unit and integration tests only.
  (cd "$work/selftest" && CARGO_TARGET_DIR=$target/tiny_http-selftest cargo test --locked --lib --tests) ||
    fail "the patched crate's own tests"
}

verify_upstream() {
  mkdir -p "$work/fetch/src"
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\ntiny_http = "=%s"\n' \
    "$version" >"$work/fetch/Cargo.toml"
  echo 'fn main() {}' >"$work/fetch/src/main.rs"
  (cd "$work/fetch" && CARGO_TARGET_DIR=$work/fetch/target cargo fetch --quiet) ||
    fail "could not fetch tiny_http $version from the registry"
  local crate
  crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/tiny_http-$version.crate | head -n 1)
  mkdir "$work/published"
  tar -xzf "$crate" -C "$work/published" --strip-components=1
  diff -r "$work/published" "$upstream" >&2 || fail "vendor/tiny_http/upstream is not tiny_http $version as published"
  echo "tiny_http_patches: vendor/tiny_http/upstream == $(basename "$crate") ($(sha256sum "$crate" | cut -c1-16)...)"
}

apply() {
  build_tree "$work/applied"
  rm -rf "$patched"
  cp -a "$work/applied" "$patched"
  echo "tiny_http_patches: rewrote vendor/tiny_http/patched from upstream + $(series | wc -l) patches"
  check_markers
}

make_series() {
  local dir=$1 patch
  [ ! -e "$dir" ] || fail "$dir exists"
  cp -a "$upstream" "$dir"
  git -C "$dir" init -q
  git -C "$dir" add -f -A
  git -C "$dir" commit -q -m "tiny_http $version as published"
  for patch in $(series); do
    git -C "$dir" am -q --keep-cr "$patch" || fail "git am $(basename "$patch")"
  done
  echo "tiny_http_patches: $dir holds the series; edit it with git, then: $0 --export $dir"
}

export_series() {
  local dir=$1 base n name old f
  base=$(git -C "$dir" rev-list --max-parents=0 HEAD)
  git -C "$dir" format-patch -q -N --zero-commit --no-signature -o "$work/export" "$base"
  mkdir "$work/named"
  for f in "$work"/export/*.patch; do
    name=$(basename "$f")
    n=${name%%-*}
    # Keep the file name of the patch with that number, if there was one.
    old=$(ls "$patches"/"$n"-*.patch 2>/dev/null | head -n 1 || true)
    cp "$f" "$work/named/$(basename "${old:-$f}")"
  done
  rm -f "$patches"/[0-9][0-9][0-9][0-9]-*.patch
  cp "$work"/named/*.patch "$patches"/
  echo "tiny_http_patches: wrote $(series | wc -l) patches from $dir"
  apply
}

case "${1:-}" in
  "") check ;;
  --test) check && self_test ;;
  --verify-upstream) check && verify_upstream ;;
  --apply) apply ;;
  --series) make_series "${2:?--series DIR}" ;;
  --export) export_series "${2:?--export DIR}" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
