#!/usr/bin/env bash
# The dependency rules of the layout that Rust's privacy cannot express (README "Layout"):
# each is a grep over the imports of one wing, failing loudly with the offending lines.
set -euo pipefail
cd "$(dirname "$0")/.."
failed=0
rule() { # rule "what must hold" <paths> -- <pattern>
    local what=$1 pattern=$2
    shift 2
    local hits
    hits=$(grep -rnE "$pattern" "$@" | grep -vE '^\S+:[0-9]+:\s*//' || true)
    if [ -n "$hits" ]; then
        printf 'LAYOUT RULE BROKEN: %s\n%s\n' "$what" "$hits"
        failed=1
    else
        printf 'ok: %s\n' "$what"
    fi
}
rule "the processor never reaches into the logger" 'crate::logger|event_notification::logger' src/processor
rule "shared knows neither service" 'crate::(logger|processor)' src/shared
rule "logger::http knows no routes, events, store or notifier" \
    'crate::(shared::event|shared::amqp|logger::(api|store|outbox|notifier|service))|super::super' src/logger/http
rule "logger::api never reaches the notifier or AMQP" 'notifier|shared::amqp|amiquip' src/logger/api
rule "the store knows no request parsing" 'logger::api|logger::http|form_urlencoded' src/logger/store.rs
rule "the binaries only use the wings' front doors" \
    'logger::(api|http|store|notifier|outbox)|processor::(consumer|decide|api_client)' src/bin
exit "$failed"
