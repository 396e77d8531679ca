//! `GET /docs`: Swagger UI, every file of it served from our own binary.
//!
//! This module owns the docs page and its assets. They come from `utoipa-swagger-ui` with its
//! `vendored` feature, whose package carries the Swagger UI release itself, so nothing is
//! downloaded at build time and the page needs no network at run time (FastAPI's page loads
//! Swagger UI from a CDN and stays blank offline). The page reads `/openapi.json`.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use utoipa_swagger_ui::Config;

use super::errors;
use crate::logger::http::Response;

/// Where the page and its assets live; the page's links to its assets are relative to it.
const BASE: &str = "/docs/";

/// The Swagger UI settings baked into `swagger-initializer.js`.
fn config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(
                Config::new(["/openapi.json"])
                    // The default validator badge asks swagger.io to validate the document:
                    // a request to the internet from every page view, which offline fails.
                    .validator_url("none")
                    .display_request_duration(true)
                    .persist_authorization(true),
            )
        })
        .clone()
}

/// The docs page (`asset` empty) or one of its assets (`swagger-ui.css`, ...).
pub fn response(asset: &str) -> Response {
    let file = match utoipa_swagger_ui::serve(asset, config()) {
        Ok(Some(file)) => file,
        Ok(None) => return errors::error(404, "Not Found"),
        Err(e) => {
            log::error!("could not prepare the Swagger UI file {asset:?}: {e}");
            return errors::error(500, "Internal Server Error");
        }
    };
    let content_type = content_type(&file.content_type);
    let body = if asset.is_empty() || asset == "index.html" {
        Cow::Owned(with_base(&file.bytes))
    } else {
        file.bytes
    };
    Response::raw(200, content_type, body)
}

/// The page refers to its assets as `./swagger-ui.css` and so on. Served at `/docs` (no
/// trailing slash) those would resolve to `/swagger-ui.css`, so the page gets a `<base>` that
/// makes them resolve under `/docs/` whichever of the two URLs was asked for.
fn with_base(page: &[u8]) -> Vec<u8> {
    let page = String::from_utf8_lossy(page);
    let base = format!("<head>\n    <base href=\"{BASE}\">");
    page.replacen("<head>", &base, 1).into_bytes()
}

/// `Response` wants a static content type; the assets have only a handful.
fn content_type(guessed: &str) -> &'static str {
    match guessed {
        "text/html" => "text/html; charset=utf-8",
        "text/css" => "text/css; charset=utf-8",
        "application/javascript" | "text/javascript" => "text/javascript; charset=utf-8",
        "image/png" => "image/png",
        "application/json" => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(response: &Response) -> String {
        String::from_utf8_lossy(&response.body).into_owned()
    }

    #[test]
    fn page_has_a_base_so_relative_assets_resolve_under_docs() {
        let page = response("");
        assert_eq!(page.status, 200);
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        let html = text(&page);
        assert!(html.contains("<base href=\"/docs/\">"), "{html}");
        assert!(html.contains("swagger-ui-bundle.js"), "{html}");
        assert_eq!(response("index.html").body, page.body);
    }

    #[test]
    fn initializer_points_at_our_document_and_no_online_validator() {
        let js = text(&response("swagger-initializer.js"));
        assert!(js.contains("\"url\": \"/openapi.json\""), "{js}");
        assert!(js.contains("\"validatorUrl\": \"none\""), "{js}");
        assert!(!js.contains("petstore"), "{js}");
    }

    #[test]
    fn assets_have_their_content_types_and_unknown_files_are_404() {
        for (asset, content_type) in [
            ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
            ("swagger-ui.css", "text/css; charset=utf-8"),
            ("favicon-32x32.png", "image/png"),
        ] {
            let r = response(asset);
            assert_eq!((r.status, r.content_type), (200, content_type), "{asset}");
            assert!(r.body.len() > 100, "{asset}");
        }
        assert_eq!(response("nope.js").status, 404);
        assert_eq!(response("../Cargo.toml").status, 404);
    }
}
