//! `GET /docs`: Swagger UI, served from our own binary.

use crate::http::Response;

/// The docs page or one of its assets (placeholder until the OpenAPI issue lands).
pub fn response(asset: &str) -> Response {
    let _ = asset;
    Response::detail(404, "Not Found")
}
