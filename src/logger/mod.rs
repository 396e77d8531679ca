//! The Event Logger: an HTTP API that stores events and hands each new one to the notifier.
//!
//! [`service`] assembles the parts: the [`store`] (with `DATA_DIR`, loaded from and written
//! through [`storage`]), the `outbox` to one notifier thread
//! (`notifier`: embedded, or the RabbitMQ publisher), and the HTTP server ([`http`]) whose
//! handlers are the `api`. The layers depend downwards only: `api` knows the store and the
//! outbox but not the notifier or AMQP; `http` knows neither routes nor events; the store knows
//! no request parsing.

mod api;
pub mod healthcheck;
pub mod http;
pub mod limits;
mod metrics;
mod notifier;
mod outbox;
pub mod service;
pub mod settings;
pub mod storage;
pub mod store;

pub use service::{EventLogger, RunError, StartError, run};
pub use settings::{LOGGER_VARS, LoggerSettings};

/// The OpenAPI document exactly as `openapi/openapi.json` holds it.
pub fn openapi_document() -> String {
    api::openapi::pretty()
}
