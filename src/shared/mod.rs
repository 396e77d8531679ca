//! What both services use: the event and its wire format, the notification line, the AMQP
//! topology and message format, TLS to the broker, reading settings from the environment, logging,
//! the metrics registry and shutdown.
//! Nothing here knows either service.

pub mod amqp;
pub mod env;
pub mod event;
pub mod logging;
pub mod metrics;
pub(crate) mod notification;
pub mod shutdown;
pub mod tls;
