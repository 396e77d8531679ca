# Event Notification System: run it (with Docker or locally), test it, check it.
# `make help` (or plain `make`) lists the targets. See the README, "Run with Docker".

# Each recipe is one bash script that stops at the first failing command.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

# `docker compose` (v2 plugin) where there is one, else the older `docker-compose`.
ifndef COMPOSE
COMPOSE := $(shell if docker compose version >/dev/null 2>&1; then echo docker compose; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
endif
# How long `make up` waits for the logger to become healthy once its container runs.
UP_TIMEOUT ?= 180
# How long `make up` then waits for the logger's /health to show "broker": "connected".
BROKER_TIMEOUT ?= 30
# `make logs SERVICE=notification-processor` follows one service; empty: all of them.
SERVICE ?=
# Where cargo puts the binaries (honours CARGO_TARGET_DIR, as cargo does).
BIN := $(or $(CARGO_TARGET_DIR),target)/release

.PHONY: help up down down-v logs ps run run-amqp test check bench bench-builds bench-durability openapi fmt lint docker-engine

help: ## List the targets
	@echo "Usage: make TARGET"
	awk -F ':.*## ' '/^[a-z-]+:.*## / { printf "  %-10s %s\n", $$1, $$2 }' $(firstword $(MAKEFILE_LIST))

# ---- With Docker: RabbitMQ and both services (docker-compose.yml) ---------------------------

up: docker-engine ## Build and start everything, wait until the logger is healthy and connected to RabbitMQ, print the URLs
	@output=$$(mktemp); trap 'rm -f "$$output"' EXIT
	# The output is kept (and shown as it comes) to explain a container that cannot start.
	status=0; $(COMPOSE) up --detach --build 2>&1 | tee "$$output" || status=$${PIPESTATUS[0]}
	if [ "$$status" -ne 0 ]; then
	  if grep -q 'error setting rlimit' "$$output"; then
	    nofile=$$($(COMPOSE) config 2>/dev/null | sed -n '/nofile:/,/hard:/s/^ *hard: *//p' | head -1)
	    echo "make up: event-logger's open-file limit ($${nofile:-LOGGER_NOFILE}) is above the Docker daemon's hard limit: set LOGGER_NOFILE lower (e.g. LOGGER_NOFILE=4096 make up) or raise the daemon's limit (LimitNOFILE= of docker.service, or ulimit -Hn where dockerd starts)" >&2
	  fi
	  exit "$$status"
	fi
	# `up` already waits for the health conditions of depends_on; this also covers a logger that
	# was running before and reports how it failed.
	container=$$($(COMPOSE) ps -q event-logger)
	[ -n "$$container" ] || { echo "make up: no event-logger container" >&2; exit 1; }
	health() { docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$$container"; }
	deadline=$$((SECONDS + $(UP_TIMEOUT)))
	while status=$$(health); [ "$$status" != healthy ]; do
	  if [ "$$SECONDS" -ge "$$deadline" ] || [[ "$$status" =~ ^(unhealthy|exited|dead|)$$ ]]; then
	    echo "make up: event-logger is '$$status', not healthy; its last logs:" >&2
	    $(COMPOSE) logs --tail 40 event-logger >&2
	    exit 1
	  fi
	  echo "waiting for event-logger to be healthy (now: $$status)"
	  sleep 2
	done
	# The published addresses, as Docker reports them (API_PORT and RABBITMQ_UI_PORT may move them).
	api=$$($(COMPOSE) port event-logger 8000 | sed -E 's/^(0\.0\.0\.0|\[::\]|127\.0\.0\.1):/localhost:/')
	ui=$$($(COMPOSE) port rabbitmq 15672 | sed -E 's/^(0\.0\.0\.0|\[::\]|127\.0\.0\.1):/localhost:/')
	# Healthy means /health answers 200, whatever the broker; "up" means connected to it too.
	get_health() {
	  if command -v curl >/dev/null 2>&1; then
	    curl -sS --max-time 3 "http://$$api/health" 2>&1
	  else # bash alone: one HTTP/1.0 request, the body after the blank line
	    { exec 3<>"/dev/tcp/$${api%:*}/$${api##*:}" &&
	      printf 'GET /health HTTP/1.0\r\nHost: %s\r\n\r\n' "$$api" >&3 &&
	      timeout 3 cat <&3 | sed '1,/^\r*$$/d'; } 2>&1
	  fi
	}
	deadline=$$((SECONDS + $(BROKER_TIMEOUT)))
	until health_body=$$(get_health) && [[ "$$health_body" =~ \"broker\":\ *\"connected\" ]]; do
	  if [ "$$SECONDS" -ge "$$deadline" ]; then
	    echo "make up: the containers run, but the Event Logger is not connected to RabbitMQ; http://$$api/health says: $$health_body" >&2
	    # (grep reads to the end: with -q, the pipe's writer could die of SIGPIPE, failing pipefail)
	    if $(COMPOSE) logs --no-color rabbitmq 2>/dev/null | grep -Ei 'invalid credentials|login refused|ACCESS_REFUSED' >/dev/null; then
	      echo "make up: RabbitMQ refuses the login. It keeps the users of its volume's first start, so a RABBITMQ_USER/RABBITMQ_PASSWORD changed since then never applies: start with the old values, or delete the volume (its queued messages too) with 'make down-v' ($(COMPOSE) down -v), then 'make up'" >&2
	    else
	      echo "make up: likely cause: RabbitMQ is not ready or keeps old credentials (it keeps the users of its volume's first start, so a changed RABBITMQ_PASSWORD never applies; 'make down-v' = $(COMPOSE) down -v deletes the volume); see: $(COMPOSE) logs rabbitmq event-logger" >&2
	    fi
	    $(COMPOSE) logs --no-color --tail 10 event-logger >&2
	    exit 1
	  fi
	  echo "waiting for event-logger to connect to RabbitMQ"
	  sleep 2
	done
	user=$$($(COMPOSE) exec -T rabbitmq printenv RABBITMQ_DEFAULT_USER || echo '?')
	echo
	echo "The Event Notification System is up (/health: $$health_body):"
	echo "  API          http://$$api   (health: http://$$api/health)"
	echo "  API docs     http://$$api/docs"
	echo "  RabbitMQ UI  http://$$ui   (user $$user, password RABBITMQ_PASSWORD, default events)"
	echo
	echo "Try:  curl -d '{\"user_id\": \"u-42\", \"description\": \"Your order has shipped\"}' http://$$api/events"
	echo "See the notifications:  $(COMPOSE) logs -f notification-processor   (make logs SERVICE=notification-processor)"
	echo "More processors:  $(COMPOSE) up -d --scale notification-processor=3"
	echo "Stop:  make down   (and delete the broker's volume, queued messages and users: make down-v)"

down: docker-engine ## Stop and remove the containers (queued messages stay in the rabbitmq-data volume)
	@$(COMPOSE) down

down-v: docker-engine ## Stop and remove the containers and the rabbitmq-data volume (queued messages, RabbitMQ's users)
	@$(COMPOSE) down --volumes

logs: docker-engine ## Follow the logs of every service, or of SERVICE=name
	@$(COMPOSE) logs --follow $(SERVICE)

ps: docker-engine ## Show the containers and their health
	@$(COMPOSE) ps

docker-engine:
	@if ! command -v docker >/dev/null 2>&1; then
	  echo "make: Docker is not installed: install Docker Engine with the Compose plugin," \
	       "or run without it: make run (embedded) or make run-amqp (local RabbitMQ)" >&2
	  exit 1
	fi
	if ! docker info >/dev/null 2>&1; then
	  echo "make: no Docker engine is running ('docker info' cannot reach it): start Docker," \
	       "or run without it: make run (embedded) or make run-amqp (local RabbitMQ)" >&2
	  exit 1
	fi
	if [ -z "$(COMPOSE)" ]; then
	  echo "make: Docker Compose is missing: install the compose plugin (docker compose)" \
	       "or docker-compose" >&2
	  exit 1
	fi

# ---- Locally, without Docker --------------------------------------------------------------

run: ## Run the Event Logger locally in embedded mode (no broker) on 127.0.0.1:8000
	@env -u AMQP_URL cargo run --release --bin event-logger

run-amqp: ## Run both binaries locally against RabbitMQ at AMQP_URL (default: local, guest); Ctrl-C stops both
	@cargo build --release --bins
	# AMQP_URL from the environment or `make run-amqp AMQP_URL=...` (make exports both); it is
	# not written into this script, which `ps` would show with its password.
	export AMQP_URL=$${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
	# The broker's host and port, to say clearly when there is none.
	hostport=$$(sed -E 's#^amqps?://([^@/]*@)?([^/?]*).*#\2#' <<<"$$AMQP_URL")
	host=$${hostport%:*}; port=$${hostport##*:}; [ "$$host" != "$$port" ] || port=5672
	if ! timeout 3 bash -c "exec 3<>/dev/tcp/$$host/$$port" 2>/dev/null; then
	  echo "make run-amqp: no RabbitMQ answers at $$host:$$port: start one (bash .ci/rabbitmq.sh" \
	       "installs and starts Debian's), or set AMQP_URL" >&2
	  exit 1
	fi
	export API_URL=$${API_URL:-http://127.0.0.1:$${PORT:-8000}}
	"$(BIN)/event-logger" &
	logger=$$!
	# However this ends (Ctrl-C, the processor failing), the logger is stopped too, and waited for.
	trap 'kill -TERM $$logger 2>/dev/null || true; wait $$logger || true' EXIT
	deadline=$$((SECONDS + 30))
	until "$(BIN)/event-logger" --healthcheck >/dev/null 2>&1; do
	  kill -0 "$$logger" 2>/dev/null || { echo "make run-amqp: event-logger exited" >&2; exit 1; }
	  [ "$$SECONDS" -lt "$$deadline" ] || { echo "make run-amqp: event-logger is not healthy" >&2; exit 1; }
	  sleep 0.2
	done
	"$(BIN)/notification-processor"

# ---- Development ----------------------------------------------------------------------------

test: ## Run every test (the RabbitMQ tests need a broker: see the README, "Tests")
	@cargo test

check: ## Run everything CI runs (bash .ci/run)
	@bash .ci/run

bench: ## Run the benchmarks (bash bench/run.sh)
	@bash bench/run.sh

bench-builds: ## Logger builds or settings against the ceiling, round-robin (bash bench/builds.sh; LOGGERS, CEILINGS, CASES)
	@bash bench/builds.sh

bench-durability: ## DATA_DIR benchmark: POST in memory vs SYNC=normal/full, start-up and memory with 1,000,000 events
	cargo build --release --bins --examples
	$(BIN)/examples/durability

openapi: ## Regenerate the committed OpenAPI document from the code
	@UPDATE_OPENAPI=1 cargo test --test logger openapi::committed

fmt: ## Format the code
	@cargo fmt

lint: ## Check formatting and run clippy as CI does
	@cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# ---- The vendored tiny_http fork (vendor/tiny_http/PATCHES.md) ------------------------------

.PHONY: tiny-http-check
tiny-http-check: ## Check that vendor/tiny_http/patches rebuild patched/; run the crate's tests
	@bash .ci/tiny_http_patches.sh --test
