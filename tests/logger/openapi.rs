//! The OpenAPI document and the docs page, checked against the code and a live server.
//!
//! Owns: the committed `openapi/openapi.json` being exactly what `src/openapi.rs` generates
//! (refresh it with `UPDATE_OPENAPI=1 cargo test --test logger openapi::committed`),
//! `GET /openapi.json` serving those same bytes, the document's paths and methods matching what
//! the router answers, and `/docs`, `/docs/` and the Swagger UI assets being served by our own
//! server with the right content types. Schema conformance of real responses is checked by
//! schemathesis (`.ci/openapi.sh`), not here.

use std::path::PathBuf;

use libtest_mimic::Trial;
use serde_json::{Value, json};

use crate::common::app::spawn_app;

pub fn tests() -> Vec<Trial> {
    crate::trials![
        committed_document_is_what_the_code_generates,
        document_declares_every_status_and_header_of_the_contract,
        live_server_serves_the_committed_document,
        document_paths_and_methods_are_what_the_router_answers,
        docs_page_and_assets_are_served_with_their_content_types,
    ]
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")
}

fn committed() -> String {
    let path = committed_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nCreate it with: UPDATE_OPENAPI=1 cargo test --test logger openapi::committed",
            path.display()
        )
    })
}

fn committed_document_is_what_the_code_generates() {
    let generated = event_notification::logger::openapi_document();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir openapi/");
        // Written aside and renamed, so the other tests never read a half-written file.
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, &generated).expect("write openapi/openapi.json.partial");
        std::fs::rename(&partial, &path).expect("rename onto openapi/openapi.json");
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = committed();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}:\n  committed: {a}\n  generated: {b}", i + 1))
            .unwrap_or_else(|| {
                format!(
                    "one is a prefix of the other ({} vs {} lines)",
                    committed.lines().count(),
                    generated.lines().count()
                )
            });
        panic!(
            "openapi/openapi.json is out of date with the code ({first_difference}).\n\
             Refresh it with: UPDATE_OPENAPI=1 cargo test --test logger openapi::committed   (or: make openapi)\n\
             and commit the result."
        );
    }
}

/// The statuses and headers of `openapi/API.md`, operation by operation: a response dropped from the
/// document (or a contract change not carried into it) fails here.
fn document_declares_every_status_and_header_of_the_contract() {
    let document: Value = serde_json::from_str(&committed()).expect("openapi/openapi.json is JSON");
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    let scheme = &document["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );

    let responses = |path: &str, method: &str| {
        let r = document["paths"][path][method]["responses"].clone();
        assert!(r.is_object(), "{method} {path} is not documented");
        r
    };
    let resolve = |response: &Value| match response["$ref"].as_str() {
        Some(r) => document
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {r}"))
            .clone(),
        None => response.clone(),
    };
    let events_errors: &[&str] = &["401", "500"];
    for (path, method, statuses, headers) in [
        ("/ping", "get", &["200", "500"][..], &[][..]),
        ("/health", "get", &["200", "500"], &[]),
        (
            "/events",
            "post",
            &["200", "413", "422", "503"],
            &[("200", "Location"), ("503", "Retry-After")],
        ),
        (
            "/events",
            "get",
            &["200", "422", "503"],
            &[("200", "X-Total-Count"), ("503", "Retry-After")],
        ),
        ("/events/{event_id}", "get", &["200", "404", "422"], &[]),
        (
            "/events/{event_id}",
            "put",
            &["200", "404", "413", "422"],
            &[],
        ),
        (
            "/events/{event_id}",
            "patch",
            &["200", "404", "413", "422"],
            &[],
        ),
        ("/openapi.json", "get", &["200"], &[]),
        ("/docs", "get", &["200"], &[]),
    ] {
        let declared = responses(path, method);
        let mut expected = statuses.to_vec();
        if path.starts_with("/events") {
            expected.extend(events_errors);
        }
        for status in expected {
            let response = resolve(&declared[status]);
            assert!(
                response["description"].is_string(),
                "{method} {path} does not declare {status}"
            );
            let is_docs_page = path == "/docs" && status == "200";
            let media = if is_docs_page {
                "text/html"
            } else {
                "application/json"
            };
            assert!(
                response["content"][media]["schema"].is_object(),
                "{method} {path} {status} has no {media} schema"
            );
        }
        for (status, header) in headers.iter().copied().chain(
            path.starts_with("/events")
                .then_some(("401", "WWW-Authenticate")),
        ) {
            let response = resolve(&declared[status]);
            assert_eq!(
                response["headers"][header]["required"],
                json!(true),
                "{method} {path} {status} lacks the {header} header"
            );
        }
        let security = &document["paths"][path][method]["security"];
        if path.starts_with("/events") {
            assert_eq!(
                security,
                &json!([{"bearerAuth": []}, {}]),
                "{method} {path}"
            );
        } else {
            assert!(security.is_null(), "{method} {path} needs no token");
        }
    }
    let not_allowed = &document["components"]["responses"]["MethodNotAllowed"];
    assert_eq!(not_allowed["headers"]["Allow"]["required"], json!(true));
}

fn live_server_serves_the_committed_document() {
    let app = spawn_app();
    for path in ["/openapi.json", "/openapi.json/"] {
        let r = app.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("Content-Type"), Some("application/json"), "{path}");
        assert!(
            r.body == committed().as_bytes(),
            "GET {path} differs from openapi/openapi.json"
        );
    }
}

/// Every path and method of the document is answered by the router (not `404`/`405`), and
/// every other method gets `405` with an `Allow` header naming exactly the documented ones.
fn document_paths_and_methods_are_what_the_router_answers() {
    let app = spawn_app();
    let event = app.create("u-openapi", "documented");
    let id = event["event_id"].as_str().expect("event_id").to_owned();
    let document: Value = serde_json::from_str(&committed()).expect("JSON");
    let paths = document["paths"].as_object().expect("paths");
    assert_eq!(
        paths.keys().collect::<Vec<_>>(),
        [
            "/docs",
            "/events",
            "/events/{event_id}",
            "/health",
            "/metrics",
            "/openapi.json",
            "/ping"
        ]
    );
    let body = json!({"user_id": "u", "description": "d"}).to_string();
    for (template, item) in paths {
        let path = template.replace("{event_id}", &id);
        let documented: Vec<String> = METHODS
            .iter()
            .filter(|m| item.get(m.to_lowercase()).is_some())
            .map(|m| m.to_string())
            .collect();
        assert!(!documented.is_empty(), "{template} has no operation");
        for method in METHODS {
            for path in [path.clone(), format!("{path}/")] {
                let r = app.request(method, &path, &[], Some(body.as_bytes()));
                if documented.iter().any(|m| m == method) {
                    assert!(
                        r.status != 404 && r.status != 405,
                        "{method} {path} is documented but answered {}",
                        r.status
                    );
                    let declared = &item[method.to_lowercase()]["responses"];
                    assert!(
                        declared.get(r.status.to_string()).is_some(),
                        "{method} {path} answered {}, which the document does not declare",
                        r.status
                    );
                } else {
                    assert_eq!(r.status, 405, "{method} {path} is not documented");
                    assert_eq!(
                        r.header("Allow"),
                        Some(documented.join(", ").as_str()),
                        "Allow of {path}"
                    );
                }
            }
        }
    }
}

fn docs_page_and_assets_are_served_with_their_content_types() {
    let app = spawn_app();
    let page = app.get("/docs");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(html.contains("<base href=\"/docs/\">"), "{html}");
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");
    assert!(
        !html.contains("https://"),
        "the page must not load from elsewhere: {html}"
    );
    let slashed = app.get("/docs/");
    assert_eq!(slashed.status, 200);
    assert_eq!(slashed.body, page.body);

    for (asset, content_type, marker) in [
        (
            "/docs/swagger-ui-bundle.js",
            "text/javascript; charset=utf-8",
            "SwaggerUIBundle",
        ),
        (
            "/docs/swagger-ui.css",
            "text/css; charset=utf-8",
            ".swagger-ui",
        ),
        (
            "/docs/swagger-initializer.js",
            "text/javascript; charset=utf-8",
            "\"/openapi.json\"",
        ),
    ] {
        let r = app.get(asset);
        assert_eq!(r.status, 200, "{asset}");
        assert_eq!(r.header("Content-Type"), Some(content_type), "{asset}");
        let text = String::from_utf8_lossy(&r.body);
        assert!(text.contains(marker), "{asset} lacks {marker:?}");
    }
    let png = app.get("/docs/favicon-32x32.png");
    assert_eq!(png.status, 200);
    assert_eq!(png.header("Content-Type"), Some("image/png"));
    assert!(png.body.starts_with(b"\x89PNG"), "not a PNG");

    let missing = app.get("/docs/nope.js");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), json!({"detail": "Not Found"}));
}
