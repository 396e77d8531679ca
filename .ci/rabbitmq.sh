#!/usr/bin/env bash
# Makes sure RabbitMQ is installed and running on 127.0.0.1:5672 (guest/guest), as the broker
# tests need. Installs it from Debian's packages if missing.
set -euo pipefail

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "==> installing rabbitmq-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq rabbitmq-server >/dev/null
fi

if ! rabbitmqctl status >/dev/null 2>&1; then
  echo "==> starting rabbitmq-server"
  rabbitmq-server -detached
fi
timeout 120 rabbitmqctl await_startup >/dev/null
echo "==> RabbitMQ is up"
