//! Event Notification System: the **Event Logger** (an HTTP API that stores events and hands
//! each new one to RabbitMQ) and the **Notification Processor** (which consumes them, "sends"
//! each notification and marks the event `Processed` through the API).
//!
//! The design is synchronous and threaded: `tiny_http` with a fixed pool of worker threads
//! ([`http`], [`routes`]), an `RwLock`-protected store ([`store`]), a channel to one notifier
//! thread ([`outbox`]) that is either the embedded notifier ([`notifier`]) or the RabbitMQ
//! publisher ([`publisher`]), and the consumer service ([`processor`]). The binaries in
//! `src/bin` only read settings ([`config`]) and call into this library.

pub mod amqp;
pub mod api_client;
pub mod app;
pub mod config;
pub mod docs;
pub mod event;
pub mod healthcheck;
pub mod http;
pub mod limits;
pub mod logging;
pub mod notification;
pub mod notifier;
pub mod openapi;
pub mod outbox;
pub mod processor;
pub mod publisher;
pub mod routes;
pub mod shutdown;
pub mod store;
pub mod validation;
pub mod watchdog;
