//! The bodies of the API's error answers: FastAPI/pydantic-v2 `422` entries and the
//! `{"detail": "..."}` of every other error, including the answers the HTTP server gives on
//! its own.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::logger::http::Response;

/// One validation problem, as in a FastAPI `422` body.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Machine-readable kind, e.g. `missing`, `string_too_long`, `uuid_parsing`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where the problem is: `["body", "user_id"]`, `["path", "event_id"]`, `["body", 12]`.
    #[schemars(length(min = 1))]
    pub loc: Vec<LocItem>,
    /// Human-readable message (pydantic v2 wording).
    pub msg: String,
    /// The offending value (the whole body for a missing field).
    pub input: Value,
    /// Extra context, e.g. `{"max_length": 4096}` or the JSON parser's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("type" = "object"))]
    pub ctx: Option<Box<Value>>,
}

/// One step of an error location: a name or a position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum LocItem {
    Name(String),
    Index(usize),
}

impl From<&str> for LocItem {
    fn from(name: &str) -> Self {
        LocItem::Name(name.to_owned())
    }
}

/// The `422` body: `{"detail": [ErrorDetail, ...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(example = serde_json::json!({"detail": [
    {"type": "string_too_short", "loc": ["body", "user_id"],
     "msg": "String should have at least 1 character", "input": "", "ctx": {"min_length": 1}},
    {"type": "missing", "loc": ["body", "description"], "msg": "Field required",
     "input": {"user_id": ""}}
]}))]
pub struct ValidationErrors {
    /// Every problem found, one entry each (never empty).
    #[schemars(length(min = 1))]
    pub detail: Vec<ErrorDetail>,
}

impl ValidationErrors {
    pub(crate) fn one(detail: ErrorDetail) -> Self {
        ValidationErrors {
            detail: vec![detail],
        }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.detail.iter().enumerate() {
            let loc: Vec<String> = d
                .loc
                .iter()
                .map(|l| match l {
                    LocItem::Name(n) => n.clone(),
                    LocItem::Index(i) => i.to_string(),
                })
                .collect();
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", loc.join("."), d.msg)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

pub(crate) fn detail(kind: &str, loc: Vec<LocItem>, msg: String, input: Value) -> ErrorDetail {
    ErrorDetail {
        kind: kind.to_owned(),
        loc,
        msg,
        input,
        ctx: None,
    }
}

pub(crate) fn with_ctx(mut d: ErrorDetail, ctx: Value) -> ErrorDetail {
    d.ctx = Some(Box::new(ctx));
    d
}

/// `{"detail": "..."}`, the body of every error that is not a validation error.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Detail {
    /// What went wrong.
    pub detail: String,
}

/// An error answer `{"detail": "<detail>"}`.
pub(crate) fn error(status: u16, detail: &str) -> Response {
    Response::json(
        status,
        &Detail {
            detail: detail.to_owned(),
        },
    )
}

/// The `422` answer.
pub(crate) fn unprocessable(errors: &ValidationErrors) -> Response {
    Response::json(422, errors)
}

/// The body of the answers the HTTP server gives on its own (a handler that panicked, a
/// malformed head, a timeout): the same `{"detail": ...}` shape as every other error.
pub(crate) fn server_error_body(_status: u16, reason: &str) -> (Vec<u8>, &'static str) {
    let body = serde_json::to_vec(&Detail {
        detail: reason.to_owned(),
    })
    .unwrap_or_default();
    (body, "application/json")
}
