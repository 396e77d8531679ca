//! Event Notification System: the **Event Logger** (an HTTP API that stores events and hands
//! each new one to RabbitMQ) and the **Notification Processor** (which consumes them, "sends"
//! each notification and marks the event `Processed` through the API).
//!
//! The crate has three wings, and dependencies run one way, from the services to what they
//! share:
//!
//! - [`logger`]: the Event Logger. `tiny_http` with a fixed pool of blocking workers
//!   (`logger::http`), the routes and their handlers (`logger::api`), an `RwLock`-protected
//!   store, a bounded outbox to one notifier thread (`logger::notifier`: the embedded notifier
//!   or the RabbitMQ publisher).
//! - [`processor`]: the Notification Processor: consumers, the retry/dead-letter policy, the
//!   client of the logger's API, and the supervision loop.
//! - [`shared`]: what both use: the `Event` and its timestamps, the notification line, the AMQP
//!   topology and message format, reading settings, logging, shutdown.
//!
//! The processor never reaches into the logger, and neither service's code is visible to the
//! other except through [`shared`]. The binaries in `src/bin` only read settings, start
//! logging, run a service and turn its result into an exit code.

pub mod logger;
pub mod processor;
pub mod shared;
