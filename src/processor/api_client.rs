//! The Notification Processor's client of the Event Logger API: one keep-alive `ureq` agent that
//! reads an event with its `ETag` and marks it `Processed` only at that version.

use std::time::Duration;

use crate::shared::env::Secret;
use crate::shared::event::{Event, STATUS_PROCESSED};

/// Largest answer body read: an Event is a few KB at most.
const BODY_LIMIT: u64 = 1 << 20;

/// An answer of the API other than the one hoped for, as far as the processor cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiAnswer {
    /// An HTTP status code.
    Status(u16),
    /// No HTTP answer at all (refused, reset, timed out, not HTTP).
    Unreachable(String),
    /// A `200` to a `GET` whose body is not an Event, or without an `ETag`.
    Malformed(String),
}

impl std::fmt::Display for ApiAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiAnswer::Status(code) => write!(f, "HTTP {code}"),
            ApiAnswer::Unreachable(why) => write!(f, "unreachable: {why}"),
            ApiAnswer::Malformed(why) => write!(f, "unusable answer: {why}"),
        }
    }
}

/// An event as the logger stores it, and the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) event: Event,
    /// The `ETag` of the `GET`, sent back as `If-Match`.
    pub(crate) etag: String,
}

/// Talks to `{API_URL}/events/{id}`. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub(crate) struct ApiClient {
    agent: ureq::Agent,
    base_url: String,
    authorization: Option<String>,
}

impl ApiClient {
    pub(crate) fn new(base_url: &str, token: Option<&Secret>, timeout: Duration) -> ApiClient {
        // Per-phase timeouts, not a global one: with any global (or per-call) timeout, ureq 3
        // resolves the host on a newly spawned thread for every request, pooled connection
        // or not, which cost a thread per request.
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(timeout))
            .timeout_per_read(Some(timeout))
            .timeout_per_write(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        ApiClient {
            agent,
            base_url: base_url.trim_end_matches('/').to_owned(),
            authorization: token.map(|t| format!("Bearer {}", t.expose())),
        }
    }

    fn url(&self, event_id: &uuid::Uuid) -> String {
        format!("{}/events/{event_id}", self.base_url)
    }

    fn authorized<B>(&self, mut request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        request
    }

    /// `GET /events/{id}`: the stored event and its `ETag`.
    pub(crate) fn read(&self, event_id: &uuid::Uuid) -> Result<Stored, ApiAnswer> {
        let response = self
            .authorized(self.agent.get(&self.url(event_id)))
            .call()
            .map_err(|e| ApiAnswer::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_body(response)?;
        match status {
            200 => {}
            201..=299 => return Err(ApiAnswer::Malformed(format!("HTTP {status}, not 200"))),
            _ => return Err(ApiAnswer::Status(status)),
        }
        let etag = etag.ok_or_else(|| ApiAnswer::Malformed("no ETag".into()))?;
        let event = serde_json::from_slice(&body)
            .map_err(|e| ApiAnswer::Malformed(format!("not an Event: {e}")))?;
        Ok(Stored { event, etag })
    }

    /// `PUT /events/{id}` with `{"status": "Processed"}` and `If-Match: <etag>`: applied only
    /// if nobody changed the event since it was read at `etag` (else `412`).
    pub(crate) fn mark_processed(
        &self,
        event_id: &uuid::Uuid,
        etag: &str,
    ) -> Result<(), ApiAnswer> {
        let request = self
            .authorized(self.agent.put(&self.url(event_id)))
            .header("If-Match", etag);
        let response = request
            .send_json(serde_json::json!({ "status": STATUS_PROCESSED }))
            .map_err(|e| ApiAnswer::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        // Reading the body to its end returns the connection to the pool.
        let _ = read_body(response);
        match status {
            200..=299 => Ok(()),
            other => Err(ApiAnswer::Status(other)),
        }
    }
}

/// The whole body; a connection that fails in the middle of it is an unreachable API.
fn read_body(response: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, ApiAnswer> {
    response
        .into_body()
        .with_config()
        .limit(BODY_LIMIT)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => ApiAnswer::Malformed(e.to_string()),
            other => ApiAnswer::Unreachable(other.to_string()),
        })
}
