//! The real binaries as child processes: both against the real RabbitMQ (end to end, outages,
//! dead letters, graceful shutdown under load, secrets kept out of every output), the processor
//! against forged messages, a client's racing update and an unavailable API, their life
//! cycle (signals, exit codes, configuration errors, `--help`, starved of descriptors) and
//! `event-logger --healthcheck`, `amqps://` through a TLS terminator, and `DATA_DIR` through
//! crashes, kills and full disks.
//!
//! The broker tests skip (saying why) without a reachable RabbitMQ, and fail instead under
//! `CI=true` or `REQUIRE_BROKER=1` (see `tests/common/broker.rs`).

#[path = "../common"]
mod common {
    pub mod app;
    pub mod broker;
    pub mod datadir;
    pub mod event;
    pub mod http;
    pub mod output;
    pub mod process;
    pub mod proxy;
    pub mod services;
    pub mod wait;
}

mod broker;
mod durability;
mod healthcheck;
mod lifecycle;
mod metrics;
mod processor;
mod secrets;
mod shutdown;
mod tls;
