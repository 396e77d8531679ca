#!/usr/bin/env bash
# Checks the dependencies in Cargo.lock:
#   1. `cargo audit` against the RustSec advisory database: fails on any vulnerability, and
#      (.cargo/audit.toml: `deny = ["warnings"]`) on any unmaintained, unsound or yanked crate,
#      except the advisories .cargo/audit.toml ignores, each with its reason;
#   2. `cargo deny check licenses bans` (.cargo/deny.toml): permissive licences only, no
#      vendored OpenSSL (TLS links the system's libssl), no wildcard versions.
#
# The database: ADVISORY_DB if set, else ../shared/advisory-db beside the repository (an offline
# snapshot; its SNAPSHOT.md names the commit and date), read as it is, with --no-fetch (the
# project's machines cannot reach GitHub). Without either, cargo audit fetches the database from
# GitHub where it can; where it cannot, nothing is audited: under CI=true (or AUDIT_REQUIRED=true)
# that fails, elsewhere a DEPENDENCIES NOT AUDITED banner says so and the script exits 0.
# cargo-audit and cargo-deny come from crates.io (`cargo install --locked`, about 3 and 2.5
# minutes on 2 cores), each installed only when no binary of its version is in the cache
# directory or on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="0.22.2"
DENY_VERSION="0.20.2"
DB_URL="https://github.com/rustsec/advisory-db.git"
TOOLS="${CARGO_TOOLS_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/event-notification/cargo-tools}"
SNAPSHOT="../shared/advisory-db"
case "${CI:-}" in "" | false | 0) required="${AUDIT_REQUIRED:-false}" ;; *) required=true ;; esac
say() { printf -- '--> %s\n' "$*"; }

not_audited() {
  cat >&2 <<EOF
################################################################################
#  DEPENDENCIES NOT AUDITED: $1
#  cargo audit needs the RustSec advisory database: an offline copy at
#  $SNAPSHOT (or ADVISORY_DB=/path), or access to $DB_URL.
################################################################################
EOF
  if [ "$required" = true ]; then
    echo "audit.sh: FAILED: no advisory database (CI=true or AUDIT_REQUIRED=true)" >&2
    exit 1
  fi
  exit 0
}

# ---- The database --------------------------------------------------------------------------
db_args=()
if [ -n "${ADVISORY_DB:-}" ]; then
  [ -d "$ADVISORY_DB/crates" ] || not_audited "ADVISORY_DB=$ADVISORY_DB has no crates/ folder"
  db_args=(--db "$ADVISORY_DB" --no-fetch)
  say "advisory database: $ADVISORY_DB"
elif [ -d "$SNAPSHOT/crates" ]; then
  db_args=(--db "$SNAPSHOT" --no-fetch)
  taken=$(grep -Eo 'committed [0-9]{4}-[0-9]{2}-[0-9]{2}' "$SNAPSHOT/SNAPSHOT.md" 2>/dev/null || true)
  say "advisory database: the offline snapshot $SNAPSHOT (${taken:-date unknown: no SNAPSHOT.md})"
elif timeout 15 git ls-remote "$DB_URL" HEAD >/dev/null 2>&1; then
  say "no offline snapshot; cargo audit fetches $DB_URL"
else
  not_audited "no snapshot at $SNAPSHOT, and GitHub cannot be reached"
fi

# ---- The tools ------------------------------------------------------------------------------
tool() { # tool NAME VERSION: the path of NAME at VERSION, installed into $TOOLS when absent
  local candidate started
  for candidate in "$TOOLS/bin/$1" "$(command -v "$1" || true)"; do
    if [ -n "$candidate" ] && "$candidate" --version 2>/dev/null | grep -qx "$1 $2"; then
      echo "$candidate"
      return
    fi
  done
  say "installing $1 $2 from crates.io into $TOOLS (a few minutes, once)" >&2
  started=$SECONDS
  cargo install "$1" --version "$2" --locked --root "$TOOLS" --quiet >&2
  say "installed $1 in $((SECONDS - started)) s" >&2
  echo "$TOOLS/bin/$1"
}
audit=$(tool cargo-audit "$VERSION")

# ---- The audit -----------------------------------------------------------------------------
ignored=$(grep -Eo '"RUSTSEC-[0-9]{4}-[0-9]{4}"' .cargo/audit.toml | tr -d '"' | paste -sd' ')
say "$("$audit" --version) over Cargo.lock (.cargo/audit.toml ignores, with reasons: ${ignored:-nothing})"
"$audit" audit "${db_args[@]}"
say "cargo audit: no vulnerable, unmaintained, unsound or yanked crate beyond the ignored ones"

# ---- Licences and bans -------------------------------------------------------------------------
deny=$(tool cargo-deny "$DENY_VERSION")
say "$("$deny" --version): cargo deny check licenses bans (.cargo/deny.toml)"
"$deny" --log-level warn --config .cargo/deny.toml check --hide-inclusion-graph licenses bans
say "cargo deny: licences and bans ok"
