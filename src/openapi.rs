//! The OpenAPI 3.1 document of the Event Logger (`GET /openapi.json`), built from the very Rust
//! types the handlers parse and serialise, so the document cannot drift from the code.
//!
//! This module owns the document: which schemas it takes from `schemars` (request bodies in
//! deserialize mode, response bodies in serialize mode, both as JSON Schema 2020-12 under
//! `#/components/schemas`), and the hand-written parts schemars cannot know: paths, methods,
//! parameters, every response status and header of `../shared/API.md`, tags, servers and the
//! bearer security scheme. The same document is committed as `openapi/openapi.json`; the test
//! `tests/openapi.rs` fails when the two differ.

use std::sync::OnceLock;

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::event::{Event, EventUpdate, NewEvent};
use crate::http::{Detail, Response};
use crate::routes::{Health, Ping};
use crate::validation::ValidationErrors;

/// Where a `$ref` to a component schema points.
const SCHEMAS: &str = "/components/schemas";

/// The name of the bearer security scheme in `components.securitySchemes`.
const BEARER: &str = "bearerAuth";

/// The document as a JSON value. Built once: it depends only on the code.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// The document exactly as `openapi/openapi.json` holds it: pretty-printed, keys in the stable
/// order of `serde_json`'s map, ending with a newline.
pub fn pretty() -> String {
    // Serialising a `Value` cannot fail (its keys are strings), but a panic here would be a 500
    // on every `/openapi.json`, so the impossible case still gets an answer.
    let mut text = serde_json::to_string_pretty(document())
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the document: {e}\"}}"));
    text.push('\n');
    text
}

/// `GET /openapi.json`.
pub fn response() -> Response {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    let body = BODY.get_or_init(|| pretty().into_bytes());
    Response::raw(200, "application/json", body.as_slice().into())
}

/// A generator for OpenAPI 3.1 component schemas: JSON Schema 2020-12, no `$schema` keyword
/// (the document's dialect already says it), references into `#/components/schemas`.
fn generator(serialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = SCHEMAS.into();
        s.meta_schema = None;
    });
    let settings = if serialize {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    settings.into_generator()
}

/// The component schemas and the `$ref`s that point at them.
struct Schemas {
    requests: SchemaGenerator,
    responses: SchemaGenerator,
}

impl Schemas {
    /// A request body schema (how the server reads it).
    fn request<T: JsonSchema>(&mut self) -> Value {
        self.requests.subschema_for::<T>().to_value()
    }

    /// A response body schema (how the server writes it).
    fn response<T: JsonSchema>(&mut self) -> Value {
        self.responses.subschema_for::<T>().to_value()
    }

    /// Every schema referenced so far. Request and response types are different types, so
    /// their names cannot clash; if one ever did, the two contracts would have to agree, and a
    /// unit test below checks that they do.
    fn into_components(mut self) -> Map<String, Value> {
        let mut all = self.responses.take_definitions(true);
        for (name, schema) in self.requests.take_definitions(true) {
            all.entry(name).or_insert(schema);
        }
        all
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#{SCHEMAS}/{name}") })
}

/// A JSON response with a body schema and optional headers.
fn json_response(description: &str, schema: Value, headers: Value) -> Value {
    let mut response = json!({
        "description": description,
        "content": { "application/json": { "schema": schema } }
    });
    if headers.as_object().is_some_and(|h| !h.is_empty()) {
        response["headers"] = headers;
    }
    response
}

/// A `{"detail": "..."}` response whose detail is always `detail`.
fn detail_response(description: &str, detail: &str, headers: Value) -> Value {
    json!({
        "description": description,
        "headers": headers,
        "content": {
            "application/json": {
                "schema": schema_ref("Detail"),
                "example": { "detail": detail }
            }
        }
    })
}

/// A reference to one of the shared responses in `components.responses`.
fn response_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

/// The responses every operation can give besides its own.
fn with_common(mut responses: Value) -> Value {
    responses["500"] = response_ref("InternalServerError");
    responses
}

/// The responses every `/events` operation can give: `401` when `API_TOKEN` is set.
fn with_events_common(responses: Value) -> Value {
    let mut responses = with_common(responses);
    responses["401"] = response_ref("Unauthorized");
    responses
}

/// What an operation on `/events` declares about authentication: the bearer token, or nothing
/// (the empty requirement), because the server asks for it only when `API_TOKEN` is set.
fn events_security() -> Value {
    json!([{ BEARER: [] }, {}])
}

fn build() -> Value {
    let mut schemas = Schemas {
        requests: generator(false),
        responses: generator(true),
    };

    let event = schemas.response::<Event>();
    let new_event = schemas.request::<NewEvent>();
    let event_update = schemas.request::<EventUpdate>();
    let ping = schemas.response::<Ping>();
    let health = schemas.response::<Health>();
    let validation_errors = schemas.response::<ValidationErrors>();
    // Registered for its `$ref` in the shared error responses below.
    let _detail = schemas.response::<Detail>();

    let validation_error =
        |description: &str| json_response(description, validation_errors.clone(), json!({}));
    let event_not_found = detail_response("No event has this id.", "Event not found", json!({}));
    let body_errors = |responses: &mut Value| {
        responses["413"] = response_ref("PayloadTooLarge");
        responses["400"] = response_ref("BodyUnreadable");
    };

    let event_id_parameter = json!({
        "name": "event_id",
        "in": "path",
        "required": true,
        "description": "The event's id: a UUID. As in the FastAPI service, uppercase, braces, \
            a `urn:uuid:` prefix and the form without hyphens are accepted too; anything else is \
            a `422` (`uuid_parsing`).",
        "schema": { "type": "string", "format": "uuid" },
        "example": "0193a3c4-5b7e-7c1d-9e2f-3a4b5c6d7e8f"
    });

    let event_links = json!({
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
    });

    let mut create_responses = json!({
        "200": {
            "description": "The event was stored and queued for notification.",
            "headers": {
                "Location": {
                    "description": "Path of the new event: `/events/{event_id}`.",
                    "required": true,
                    "schema": { "type": "string" },
                    "example": "/events/0193a3c4-5b7e-7c1d-9e2f-3a4b5c6d7e8f"
                }
            },
            "content": { "application/json": { "schema": event.clone() } },
            "links": event_links
        },
        "422": validation_error(
            "The body is missing, not JSON, not an object, or a field is missing, not a string, \
             or of the wrong length. One entry per problem."
        ),
        "503": detail_response(
            "The notification queue is full (or the server is stopping): nothing was stored. \
             Retry later.",
            "notification queue is full, retry later",
            json!({
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "required": true,
                    "schema": { "type": "integer", "minimum": 0 },
                    "example": 1
                }
            }),
        )
    });
    body_errors(&mut create_responses);

    let update_operation = |operation_id: &str, summary: &str, same_as: &str| {
        let mut responses = json!({
            "200": {
                "description": "The updated event. `updated_at` moved unless the body was `{}`.",
                "content": { "application/json": { "schema": event.clone() } }
            },
            "404": event_not_found.clone(),
            "422": validation_error(
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
                 JSON whatever the `Content-Type` says."
            ),
            "security": events_security(),
            "parameters": [event_id_parameter.clone()],
            "requestBody": {
                "required": true,
                "content": { "application/json": { "schema": event_update.clone() } }
            },
            "responses": with_events_common(responses)
        })
    };

    let paths = json!({
        "/ping": {
            "get": {
                "tags": ["service"],
                "operationId": "ping",
                "summary": "Liveness check",
                "description": "Answers the server's current time.",
                "responses": with_common(json!({
                    "200": json_response("The server is up.", ping, json!({}))
                }))
            }
        },
        "/health": {
            "get": {
                "tags": ["service"],
                "operationId": "health",
                "summary": "Health and backlog",
                "description": "The broker connection state and how many events are stored and \
                    still waiting to be handed to the broker.",
                "responses": with_common(json!({
                    "200": json_response("The server's state.", health, json!({}))
                }))
            }
        },
        "/events": {
            "get": {
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
                        json!({ "type": "array", "items": event.clone() }),
                        json!({
                            "X-Total-Count": {
                                "description": "How many events match the filters, before \
                                    `offset` and `limit`.",
                                "required": true,
                                "schema": { "type": "integer", "minimum": 0 }
                            }
                        })
                    ),
                    "422": validation_error(
                        "`offset` or `limit` is not a non-negative integer (`int_parsing`, \
                         `greater_than_equal`)."
                    )
                }))
            },
            "post": {
                "tags": ["events"],
                "operationId": "createEvent",
                "summary": "Create an event",
                "description": "Stores the event and queues its notification, together or not \
                    at all. Unknown fields are ignored. The body is read as JSON whatever the \
                    `Content-Type` says.",
                "security": events_security(),
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": new_event } }
                },
                "responses": with_events_common(create_responses)
            }
        },
        "/events/{event_id}": {
            "get": {
                "tags": ["events"],
                "operationId": "getEvent",
                "summary": "Get one event",
                "security": events_security(),
                "parameters": [event_id_parameter.clone()],
                "responses": with_events_common(json!({
                    "200": {
                        "description": "The event.",
                        "content": { "application/json": { "schema": event.clone() } }
                    },
                    "404": event_not_found.clone(),
                    "422": validation_error("The id is not a UUID (`uuid_parsing`).")
                }))
            },
            "put": update_operation(
                "putEvent",
                "Update an event",
                "`PATCH` does the same.",
            ),
            "patch": update_operation(
                "patchEvent",
                "Update an event (same as PUT)",
                "Same meaning as `PUT`: a partial update.",
            )
        },
        "/openapi.json": {
            "get": {
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
            }
        },
        "/docs": {
            "get": {
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
            }
        }
    });

    let security_schemes = json!({
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer <API_TOKEN>`. Required on every `/events` \
                route only when the server was started with `API_TOKEN` set (then a missing or \
                wrong token is a `401`); without `API_TOKEN` the header is ignored. `/ping`, \
                `/health`, `/openapi.json` and `/docs` never need it."
        }
    });

    let shared_responses = json!({
        "Unauthorized": detail_response(
            "`API_TOKEN` is set and the request has no `Authorization: Bearer` header with it.",
            "Not authenticated",
            json!({
                "WWW-Authenticate": {
                    "description": "Always `Bearer`.",
                    "required": true,
                    "schema": { "type": "string", "const": "Bearer" }
                }
            }),
        ),
        "PayloadTooLarge": detail_response(
            "The body is larger than `MAX_BODY_BYTES` (default 65536); it was not read to the \
             end.",
            "Request body too large",
            json!({}),
        ),
        "BodyUnreadable": json_response(
            "The body could not be read (the connection failed or the chunked encoding was \
             broken).",
            schema_ref("Detail"),
            json!({}),
        ),
        "InternalServerError": detail_response(
            "A bug: the handler panicked. The panic is logged and the server goes on serving.",
            "Internal Server Error",
            json!({}),
        ),
        "MethodNotAllowed": detail_response(
            "The path exists but does not take this method. Not listed under each operation, \
             as OpenAPI has no place for methods a path does not have.",
            "Method Not Allowed",
            json!({
                "Allow": {
                    "description": "Every method the path takes, e.g. `GET, POST`.",
                    "required": true,
                    "schema": { "type": "string" }
                }
            }),
        ),
        "NotFound": detail_response(
            "No route has this path.",
            "Not Found",
            json!({}),
        )
    });

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Event Logger",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Stores events and notifies their users through RabbitMQ.",
            "description": INFO_DESCRIPTION,
            "license": { "name": "MIT", "identifier": "MIT" }
        },
        "servers": [
            { "url": "/", "description": "The server that serves this document." }
        ],
        "tags": [
            { "name": "events", "description": "Create, read and update events." },
            { "name": "service", "description": "Liveness and health." },
            { "name": "docs", "description": "This document and its Swagger UI page." }
        ],
        "paths": paths,
        "components": {
            "schemas": schemas.into_components(),
            "responses": shared_responses,
            "securitySchemes": security_schemes
        }
    })
}

const INFO_DESCRIPTION: &str = "\
The HTTP API of the Event Notification System, wire-compatible with the FastAPI service it \
replaces: same paths, status codes, JSON shapes and pydantic-v2-style `422` bodies.

- Every route answers with and without a trailing slash (`/events` and `/events/`).
- Request bodies are read as JSON whatever the `Content-Type` says.
- An unknown path is a `404` `{\"detail\": \"Not Found\"}`; a known path with a method it does \
not take is a `405` `{\"detail\": \"Method Not Allowed\"}` with an `Allow` header listing the \
methods it takes (see `components.responses`).
- When the server runs with `API_TOKEN`, every `/events` request needs \
`Authorization: Bearer <API_TOKEN>`; otherwise no authentication is asked for.";

#[cfg(test)]
mod tests {
    use super::*;

    /// Request and response schemas are generated by two generators; their names must not
    /// clash, or `into_components` would keep only one of two different schemas.
    #[test]
    fn request_and_response_schema_names_do_not_clash() {
        let mut schemas = Schemas {
            requests: generator(false),
            responses: generator(true),
        };
        schemas.request::<NewEvent>();
        schemas.request::<EventUpdate>();
        for response in [
            schemas.response::<Event>(),
            schemas.response::<Ping>(),
            schemas.response::<Health>(),
            schemas.response::<ValidationErrors>(),
            schemas.response::<Detail>(),
        ] {
            assert!(response.get("$ref").is_some(), "{response}");
        }
        let requests = schemas.requests.take_definitions(true);
        let responses = schemas.responses.take_definitions(true);
        let clashes: Vec<_> = requests
            .iter()
            .filter(|(name, schema)| responses.get(*name).is_some_and(|other| other != *schema))
            .map(|(name, _)| name)
            .collect();
        assert!(clashes.is_empty(), "clashing schema names: {clashes:?}");
    }

    #[test]
    fn every_ref_points_at_an_existing_component() {
        fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = document();
        let mut found = Vec::new();
        refs(doc, &mut found);
        assert!(found.len() > 10, "{found:?}");
        for r in found {
            let pointer = r.strip_prefix('#').unwrap_or(r);
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
    }
}
