//! The OpenAPI 3.1 document of the Event Logger (`GET /openapi.json`), built from the very Rust
//! types the handlers parse and serialise, so the document cannot drift from the code.
//!
//! [`components`] holds what operations share (schemas taken from `schemars`, shared
//! responses, the security scheme); [`paths`] the operation of every endpoint of the route
//! table, with the parameters, statuses and headers of `openapi/API.md`. This module puts them
//! together with the info, tags and servers. The same document is committed as
//! `openapi/openapi.json`; a test fails when the two differ.

mod components;
mod paths;

use std::sync::OnceLock;

use serde_json::{Value, json};

use self::components::Components;
use crate::logger::http::Response;

/// The document as a JSON value. Built once: it depends only on the code.
pub(crate) fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// The document exactly as `openapi/openapi.json` holds it: pretty-printed, keys in the stable
/// order of `serde_json`'s map, ending with a newline.
pub(crate) fn pretty() -> String {
    // Serialising a `Value` cannot fail (its keys are strings), but a panic here would be a 500
    // on every `/openapi.json`, so the impossible case still gets an answer.
    let mut text = serde_json::to_string_pretty(document())
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the document: {e}\"}}"));
    text.push('\n');
    text
}

/// `GET /openapi.json`.
pub(crate) fn response() -> Response {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    let body = BODY.get_or_init(|| pretty().into_bytes());
    Response::raw(200, "application/json", body.as_slice().into())
}

fn build() -> Value {
    let components = Components::new();
    let paths = paths::all(&components);
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
        "components": components.into_json()
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
