#!/usr/bin/env bash
# System packages the tests use as real clients and proxies: nginx (the fixture suite and the
# smuggling cases run once more through it, tests/common/nginx.rs) and curl (curl --http2 in
# tests/hardening/framing.rs). Installs what is missing; fails loudly if it cannot.
set -euo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -eq 0 ]; then
  echo "packages: nginx and curl present"
  exit 0
fi
echo "packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d (or no init system) keeps the nginx service from starting: the tests start
# their own nginx with a generated config.
apt-get install -y -qq --no-install-recommends "${missing[@]}"
