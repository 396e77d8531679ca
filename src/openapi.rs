//! The OpenAPI 3.1 document of the Event Logger, built from the Rust types.

use crate::http::Response;

/// The document (placeholder until the OpenAPI issue lands).
pub fn document() -> serde_json::Value {
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {"title": "Event Logger", "version": env!("CARGO_PKG_VERSION")},
        "paths": {}
    })
}

/// `GET /openapi.json`.
pub fn response() -> Response {
    Response::json(200, &document())
}
