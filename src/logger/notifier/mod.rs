//! The notifier thread: the one consumer of the outbox. With `AMQP_URL` set it is the
//! RabbitMQ [`publisher`]; without, the [`embedded`] notifier that prints and marks events
//! itself. The rest of the logger starts it through [`spawn`] and cannot tell which it is.

mod embedded;
mod publisher;

use std::io::Write;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::logger::outbox::OutboxReceiver;
use crate::logger::store::Store;
use crate::shared::amqp::AmqpSettings;

/// Where notifications go.
pub(crate) enum Target {
    /// Printed to `out` in-process, and the events marked `Processed` in the store.
    Embedded {
        store: Store,
        out: Box<dyn Write + Send>,
    },
    /// Published to RabbitMQ; at shutdown, unconfirmed events get `shutdown_timeout`.
    Broker {
        settings: AmqpSettings,
        shutdown_timeout: Duration,
    },
}

/// Starts the notifier thread. It ends once every `Outbox` is dropped and what it holds is
/// handed on (or, for the broker, the shutdown timeout passed).
pub(crate) fn spawn(receiver: OutboxReceiver, target: Target) -> std::io::Result<JoinHandle<()>> {
    match target {
        Target::Embedded { store, out } => embedded::spawn(receiver, store, out),
        Target::Broker {
            settings,
            shutdown_timeout,
        } => publisher::spawn(receiver, settings, shutdown_timeout),
    }
}
