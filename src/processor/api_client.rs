//! The Notification Processor's client of the Event Logger API: one keep-alive `ureq` agent.

use std::time::Duration;

use crate::shared::env::Secret;
use crate::shared::event::STATUS_PROCESSED;

/// What the API said to a `PUT`, as far as the processor cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiAnswer {
    /// An HTTP status code.
    Status(u16),
    /// No HTTP answer at all (refused, reset, timed out).
    Unreachable(String),
}

impl std::fmt::Display for ApiAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiAnswer::Status(code) => write!(f, "HTTP {code}"),
            ApiAnswer::Unreachable(why) => write!(f, "unreachable: {why}"),
        }
    }
}

/// Marks events `Processed` through `PUT {API_URL}/events/{id}`. Cheap to clone; clones share
/// the connection pool.
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
        // or not, which cost a thread per `PUT`.
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

    /// `PUT /events/{id}` with `{"status": "Processed"}`.
    pub(crate) fn mark_processed(&self, event_id: &uuid::Uuid) -> ApiAnswer {
        let url = format!("{}/events/{event_id}", self.base_url);
        let mut request = self.agent.put(&url);
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        match request.send_json(serde_json::json!({ "status": STATUS_PROCESSED })) {
            Ok(response) => {
                let status = response.status().as_u16();
                // Reading the body to its end returns the connection to the pool.
                let _ = response
                    .into_body()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec();
                ApiAnswer::Status(status)
            }
            Err(e) => ApiAnswer::Unreachable(e.to_string()),
        }
    }
}
