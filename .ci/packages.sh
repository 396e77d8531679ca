#!/usr/bin/env bash
# Debian packages the tests need beyond Rust and RabbitMQ, installed when missing:
#   openssl  makes the CA and server certificates of the TLS tests (tests/system/tls.rs);
#   socat    terminates TLS in front of the local RabbitMQ for them (OPENSSL-LISTEN);
#   libssl-dev, pkg-config  build amiquip's TLS (native-tls links the system's OpenSSL);
#   nginx    the fixture suite and the smuggling cases run once more through it
#            (tests/common/nginx.rs; the tests start their own nginx with a generated config);
#   curl     `curl --http2` as a real client (tests/hardening/framing.rs).
# Without root or apt-get, a missing package is an error naming the install command.
set -euo pipefail

wanted=(openssl socat libssl-dev pkg-config nginx curl)
missing=()
for package in "${wanted[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "==> packages present: ${wanted[*]}"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "packages.sh: missing ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "==> installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
