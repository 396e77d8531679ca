#!/usr/bin/env bash
# Checks Cargo.lock against the RustSec advisory database with `cargo audit`.
#
# The database is a Git repository on GitHub. Where GitHub cannot be reached (as on the
# project's build machines) and no local copy exists, nothing can be audited: the script says
# so in a banner and exits 0, or exits 1 if AUDIT_REQUIRED=true. A local copy can be given
# with ADVISORY_DB=/path/to/advisory-db (a checkout of github.com/rustsec/advisory-db).
# cargo-audit itself comes from crates.io, installed once into a cache directory.
set -euo pipefail
cd "$(dirname "$0")/.."

DB_URL="https://github.com/rustsec/advisory-db.git"
TOOLS="${CARGO_TOOLS_ROOT:-$HOME/.cache/event-notification/cargo-tools}"
DB="${ADVISORY_DB:-$HOME/.cache/event-notification/advisory-db}"
VERSION="0.22.2"

not_audited() {
  cat >&2 <<EOF
################################################################################
#  DEPENDENCIES NOT AUDITED: $1
#  The RustSec advisory database ($DB_URL) is needed and there is no
#  copy at $DB. Give one with ADVISORY_DB=... or run where GitHub is reachable.
################################################################################
EOF
  if [ "${AUDIT_REQUIRED:-false}" = "true" ]; then
    exit 1
  fi
  exit 0
}

fetch_args=()
if timeout 30 git ls-remote "$DB_URL" HEAD >/dev/null 2>&1; then
  echo "==> the advisory database is reachable; cargo audit will fetch it"
elif [ -d "$DB/crates" ]; then
  echo "==> GitHub unreachable; using the local advisory database at $DB (as of $(git -C "$DB" log -1 --format=%cs 2>/dev/null || echo 'unknown date'))"
  fetch_args=(--no-fetch)
else
  not_audited "GitHub cannot be reached from this machine"
fi

if ! "$TOOLS/bin/cargo-audit" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "==> installing cargo-audit $VERSION into $TOOLS"
  cargo install cargo-audit --version "$VERSION" --locked --root "$TOOLS" --quiet
fi

# Vulnerabilities fail the step; "unmaintained"/"unsound" notices (expected for amiquip's
# mio 0.6, net2, nom 4 and url 1 / idna 0.1) are printed as warnings.
"$TOOLS/bin/cargo-audit" audit --db "$DB" "${fetch_args[@]}"
