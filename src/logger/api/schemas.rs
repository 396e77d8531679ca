//! The bodies of `GET /ping` and `GET /health`, as the handlers write them and the OpenAPI
//! document describes them.

use serde::Serialize;

use crate::shared::event::Timestamp;

/// The body of `GET /ping`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Ping {
    /// The server's current time, RFC 3339 in UTC with microseconds.
    pub(crate) now: Timestamp,
}

/// The body of `GET /health`.
#[derive(Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct Health {
    /// Always `ok` when the server answers.
    #[schemars(extend("enum" = ["ok"]))]
    pub(crate) status: String,
    /// `embedded` (no broker configured), `connected` or `disconnected`.
    #[schemars(extend("enum" = ["embedded", "connected", "disconnected"]))]
    pub(crate) broker: String,
    /// Events accepted but not yet handed on (confirmed by the broker, or printed in embedded
    /// mode).
    pub(crate) pending: usize,
    /// Messages RabbitMQ returned as unroutable (no queue bound, say after the queue was
    /// deleted) since start; each was kept pending and published again after the topology was
    /// re-declared. Always `0` in embedded mode.
    pub(crate) returns: u64,
    /// Why the configured broker cannot be used while `broker` is `disconnected` (unreachable,
    /// login refused, or an exchange or queue exists with other arguments), else `null`.
    pub(crate) broker_error: Option<String>,
    /// Events stored.
    pub(crate) events: usize,
    /// `memory` (no `DATA_DIR`: events are lost at exit), `ok` (the event database takes
    /// writes) or `failing` (its last commit failed: creates and updates answer `503` until one
    /// succeeds again; reads keep working).
    #[schemars(extend("enum" = ["memory", "ok", "failing"]))]
    pub(crate) storage: String,
    /// Why the last commit failed while `storage` is `failing`, else `null`.
    pub(crate) storage_error: Option<String>,
}
