//! The `paths` of the OpenAPI document: one operation object per [`Endpoint`] of the route
//! table, with its parameters, request body, and every status and header it answers.

use serde_json::{Value, json};

use super::components::{
    Components, detail_response, events_security, json_response, response_ref, with_common,
    with_events_common,
};
use crate::logger::api::routes::{Endpoint, ROUTES};

/// `paths`: every route of the table, every endpoint of each route.
pub(super) fn all(c: &Components) -> Value {
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let operations = route
            .endpoints
            .iter()
            .map(|&e| (e.method().to_ascii_lowercase(), operation(e, c)))
            .collect();
        paths.insert(route.path.to_owned(), Value::Object(operations));
    }
    Value::Object(paths)
}

fn operation(endpoint: Endpoint, c: &Components) -> Value {
    match endpoint {
        Endpoint::Ping => ping(c),
        Endpoint::Health => health(c),
        Endpoint::Metrics => metrics(),
        Endpoint::ListEvents => list_events(c),
        Endpoint::CreateEvent => create_event(c),
        Endpoint::GetEvent => get_event(c),
        Endpoint::PutEvent => {
            update_event(c, "putEvent", "Update an event", "`PATCH` does the same.")
        }
        Endpoint::PatchEvent => update_event(
            c,
            "patchEvent",
            "Update an event (same as PUT)",
            "Same meaning as `PUT`: a partial update.",
        ),
        Endpoint::OpenApi => openapi(),
        Endpoint::Docs => docs(),
    }
}

fn ping(c: &Components) -> Value {
    json!({
        "tags": ["service"],
        "operationId": "ping",
        "summary": "Liveness check",
        "description": "Answers the server's current time.",
        "responses": with_common(json!({
            "200": json_response("The server is up.", c.ping.clone(), json!({}))
        }))
    })
}

fn health(c: &Components) -> Value {
    json!({
        "tags": ["service"],
        "operationId": "health",
        "summary": "Health and backlog",
        "description": "The broker connection state and how many events are stored and \
            still waiting to be handed to the broker.",
        "responses": with_common(json!({
            "200": json_response("The server's state.", c.health.clone(), json!({}))
        }))
    })
}

fn metrics() -> Value {
    json!({
        "tags": ["service"],
        "operationId": "metrics",
        "summary": "Prometheus metrics",
        "description": "Request counts and latencies by route template and status, events \
            stored and pending, and the RabbitMQ publisher's publishes, confirms, returns and \
            reconnects, in the Prometheus text format 0.0.4 (the README lists them).",
        "responses": with_common(json!({
            "200": {
                "description": "The metrics, `text/plain; version=0.0.4`.",
                "content": { "text/plain": { "schema": { "type": "string" } } }
            }
        }))
    })
}

fn list_events(c: &Components) -> Value {
    json!({
        "tags": ["events"],
        "operationId": "listEvents",
        "summary": "List events",
        "description": "Events in creation order, filtered by exact `user_id` and \
            `status`, then paged with `offset` and `limit`. `X-Total-Count` counts the \
            matching events before paging.",
        "security": events_security(),
        "parameters": [
            {
                "name": "user_id",
                "in": "query",
                "required": false,
                "description": "Only the events of this user (exact match).",
                "schema": { "type": "string" },
                "example": "u-42"
            },
            {
                "name": "status",
                "in": "query",
                "required": false,
                "description": "Only the events with this status (exact match).",
                "schema": { "type": "string" },
                "example": "Processed"
            },
            {
                "name": "offset",
                "in": "query",
                "required": false,
                "description": "How many matching events to skip.",
                "schema": { "type": "integer", "minimum": 0, "default": 0 }
            },
            {
                "name": "limit",
                "in": "query",
                "required": false,
                "description": "At most this many events; no limit when absent.",
                "schema": { "type": "integer", "minimum": 0 }
            }
        ],
        "responses": with_events_common(json!({
            "200": json_response(
                "The page of matching events.",
                json!({ "type": "array", "items": c.event.clone() }),
                json!({
                    "X-Total-Count": {
                        "description": "How many events match the filters, before \
                            `offset` and `limit`.",
                        "required": true,
                        "schema": { "type": "integer", "minimum": 0 }
                    }
                })
            ),
            "422": c.validation_error(
                "`offset` or `limit` is not a non-negative integer (`int_parsing`, \
                 `greater_than_equal`)."
            ),
            "503": detail_response(
                "Too many large answers are being sent at once (a page bigger than 64 KiB \
                 waits for a share of a fixed budget of answer bytes). Retry later, or ask \
                 for a smaller page with `limit`.",
                "too many large answers are being sent at once; retry later, or ask for a \
                 smaller page (limit)",
                retry_after_header(),
            )
        }))
    })
}

fn create_event(c: &Components) -> Value {
    json!({
        "tags": ["events"],
        "operationId": "createEvent",
        "summary": "Create an event",
        "description": "Stores the event and queues its notification, together or not \
            at all. Unknown fields are ignored. The body is read as JSON whatever the \
            `Content-Type` says.",
        "security": events_security(),
        "requestBody": {
            "required": true,
            "content": { "application/json": { "schema": c.new_event.clone() } }
        },
        "responses": with_events_common(create_responses(c))
    })
}

fn get_event(c: &Components) -> Value {
    json!({
        "tags": ["events"],
        "operationId": "getEvent",
        "summary": "Get one event",
        "description": "Answers the event with its `ETag`. With `If-None-Match` holding its \
            current tag (compared weakly, `W/\"3\"` matches `\"3\"`) or `*`, the answer is \
            `304` with the `ETag` and no body (RFC 9110 §13.1.2).",
        "security": events_security(),
        "parameters": [event_id_parameter(), conditional_header("If-None-Match",
            "A comma-separated list of entity tags, or `*`: `304` when one matches the \
             event's current `ETag`.")],
        "responses": with_events_common(json!({
            "200": {
                "description": "The event.",
                "headers": { "ETag": etag_header() },
                "content": { "application/json": { "schema": c.event.clone() } }
            },
            "304": {
                "description": "`If-None-Match` matched: the event is unchanged. No body.",
                "headers": { "ETag": etag_header() }
            },
            "404": event_not_found(),
            "422": c.validation_error("The id is not a UUID (`uuid_parsing`).")
        }))
    })
}

fn openapi() -> Value {
    json!({
        "tags": ["docs"],
        "operationId": "openapi",
        "summary": "This document",
        "description": "The OpenAPI 3.1 document of this API.",
        "responses": with_common(json!({
            "200": json_response(
                "The OpenAPI 3.1 document.",
                json!({
                    "type": "object",
                    "required": ["openapi", "info", "paths"],
                    "properties": { "openapi": { "type": "string", "const": "3.1.0" } }
                }),
                json!({})
            )
        }))
    })
}

fn docs() -> Value {
    json!({
        "tags": ["docs"],
        "operationId": "docs",
        "summary": "Swagger UI",
        "description": "An interactive page for this API (also at `/docs/`). It and \
            its assets (`/docs/<file>`) are served by this server, so it works without \
            internet access.",
        "responses": with_common(json!({
            "200": {
                "description": "The Swagger UI page.",
                "content": { "text/html": { "schema": { "type": "string" } } }
            }
        }))
    })
}

fn update_event(c: &Components, operation_id: &str, summary: &str, same_as: &str) -> Value {
    let mut responses = json!({
        "200": {
            "description": "The updated event. `updated_at` moved unless the body was `{}`.",
            "headers": { "ETag": etag_header() },
            "content": { "application/json": { "schema": c.event.clone() } }
        },
        "404": event_not_found(),
        "412": detail_response(
            "`If-Match` did not match the event's current `ETag` (it was changed since it \
             was read): nothing was changed. The answer carries the current `ETag`.",
            "If-Match does not match the event's current ETag: it changed since it was read",
            json!({ "ETag": etag_header() }),
        ),
        "422": c.validation_error(
            "The id is not a UUID, or the body is missing, not JSON, not an object, or a \
             field is not a string or of the wrong length. Path and body problems are \
             reported together."
        )
    });
    body_errors(&mut responses);
    json!({
        "tags": ["events"],
        "operationId": operation_id,
        "summary": summary,
        "description": format!(
            "Sets the fields given in the body; absent fields are left as they are, unknown \
             fields are ignored, and `{{}}` changes nothing. {same_as} The body is read as \
             JSON whatever the `Content-Type` says. Every update changes the event's `ETag`. \
             With `If-Match` the update applies only if the event's current `ETag` is in the \
             list (strong comparison: a weak tag never matches) or the header is `*`, \
             checked and applied atomically; otherwise `412` (RFC 9110 §13.1.1). An unknown \
             event is `404` whatever `If-Match` says, and a bad body `422` before the check."
        ),
        "security": events_security(),
        "parameters": [event_id_parameter(), conditional_header("If-Match",
            "A comma-separated list of strong entity tags, or `*`: update only if one is \
             the event's current `ETag`, else `412`.")],
        "requestBody": {
            "required": true,
            "content": { "application/json": { "schema": c.event_update.clone() } }
        },
        "responses": with_events_common(responses)
    })
}

fn create_responses(c: &Components) -> Value {
    let mut responses = json!({
        "200": {
            "description": "The event was stored and queued for notification.",
            "headers": {
                "Location": {
                    "description": "Path of the new event: `/events/{event_id}`.",
                    "required": true,
                    "schema": { "type": "string" },
                    "example": "/events/0193a3c4-5b7e-7c1d-9e2f-3a4b5c6d7e8f"
                },
                "ETag": etag_header()
            },
            "content": { "application/json": { "schema": c.event.clone() } },
            "links": event_links()
        },
        "422": c.validation_error(
            "The body is missing, not JSON, not an object, or a field is missing, not a string, \
             or of the wrong length. One entry per problem."
        ),
        "503": detail_response(
            "The notification queue is full (or the server is stopping): nothing was stored. \
             Retry later.",
            "notification queue is full, retry later",
            retry_after_header(),
        )
    });
    body_errors(&mut responses);
    responses
}

/// The `Retry-After` header of a `503`: the request did nothing and can be retried.
fn retry_after_header() -> Value {
    json!({
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "required": true,
            "schema": { "type": "integer", "minimum": 0 },
            "example": 1
        }
    })
}

/// The responses of an operation that reads a body: `413` and `400`.
fn body_errors(responses: &mut Value) {
    responses["413"] = response_ref("PayloadTooLarge");
    responses["400"] = response_ref("BodyUnreadable");
}

/// The `ETag` of an event answer: its version, quoted.
fn etag_header() -> Value {
    json!({
        "description": "Strong entity tag of the event, `\"<version>\"`: `\"1\"` when \
            created, a new one on every update. Use it in `If-Match` / `If-None-Match`.",
        "required": true,
        "schema": { "type": "string" },
        "example": "\"2\""
    })
}

fn conditional_header(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "header",
        "required": false,
        "description": description,
        "schema": { "type": "string" },
        "example": "\"2\""
    })
}

fn event_not_found() -> Value {
    detail_response("No event has this id.", "Event not found", json!({}))
}

fn event_id_parameter() -> Value {
    json!({
        "name": "event_id",
        "in": "path",
        "required": true,
        "description": "The event's id: a UUID. As in the FastAPI service, uppercase, braces, \
            a `urn:uuid:` prefix and the form without hyphens are accepted too; anything else is \
            a `422` (`uuid_parsing`).",
        "schema": { "type": "string", "format": "uuid" },
        "example": "0193a3c4-5b7e-7c1d-9e2f-3a4b5c6d7e8f"
    })
}

fn event_links() -> Value {
    json!({
        "GetEventById": {
            "operationId": "getEvent",
            "parameters": { "event_id": "$response.body#/event_id" },
            "description": "The `event_id` in the answer is the id of `GET /events/{event_id}`."
        },
        "ReplaceEventById": {
            "operationId": "putEvent",
            "parameters": { "event_id": "$response.body#/event_id" },
            "description": "The `event_id` in the answer is the id of `PUT /events/{event_id}`."
        },
        "UpdateEventById": {
            "operationId": "patchEvent",
            "parameters": { "event_id": "$response.body#/event_id" },
            "description": "The `event_id` in the answer is the id of \
                `PATCH /events/{event_id}`."
        }
    })
}
