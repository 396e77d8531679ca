#!/usr/bin/env bash
# Checks that the tiny_http Cargo builds (vendor/tiny_http) is exactly the pristine 0.12.0
# (vendor/tiny_http-0.12.0) with the patch series (vendor/tiny_http-patches/*.patch) applied in
# order, then runs the fork's unit tests. With --write, rebuilds vendor/tiny_http from them instead (after editing a patch).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r vendor/tiny_http-0.12.0 "$work/tree"
git -C "$work/tree" init -q
for patch in vendor/tiny_http-patches/*.patch; do
    if ! git -C "$work/tree" apply --whitespace=nowarn "$PWD/$patch"; then
        echo "TINY_HTTP PATCH SERIES BROKEN: $patch does not apply" >&2
        exit 1
    fi
    echo "applied $(basename "$patch")"
done
rm -rf "$work/tree/.git"
if [ "${1:-}" = "--write" ]; then
    rm -rf vendor/tiny_http
    cp -r "$work/tree" vendor/tiny_http
    echo "vendor/tiny_http rebuilt from the series"
    exit 0
fi
if ! diff -r "$work/tree" vendor/tiny_http; then
    echo "TINY_HTTP FORK DRIFTED: vendor/tiny_http is not pristine 0.12.0 + the patch series;" >&2
    echo "put the change into a patch (vendor/tiny_http-patches/README.md says how)" >&2
    exit 1
fi
echo "vendor/tiny_http = tiny_http 0.12.0 + $(ls vendor/tiny_http-patches/*.patch | wc -l) patches"
# The fork's own unit tests (the accept-error classification of patch 8 among them), run on
# the copy so that nothing is written into vendor/.
CARGO_TARGET_DIR="$PWD/target/tiny_http" cargo test --quiet --lib --manifest-path "$work/tree/Cargo.toml"
