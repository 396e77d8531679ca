//! The Event Logger service assembled: store, outbox, notifier thread (embedded notifier or
//! RabbitMQ publisher) and HTTP server, started together and stopped in order.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::LoggerSettings;
use crate::http::{HttpServer, ServerConfig, StartError};
use crate::outbox::{BrokerState, outbox};
use crate::routes::Api;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::watchdog::{Alarm, ProbeConfig};
use crate::{notifier, publisher};

/// A running Event Logger.
pub struct EventLogger {
    http: HttpServer,
    notifier: JoinHandle<()>,
    shutdown: Shutdown,
    store: Store,
    /// Raised when the HTTP server stopped accepting connections.
    failure: Alarm,
}

impl EventLogger {
    /// Starts every part. Notification lines of the embedded notifier go to `out`.
    pub fn start(
        settings: &LoggerSettings,
        out: Box<dyn Write + Send>,
    ) -> Result<EventLogger, StartError> {
        let store = Store::new();
        let shutdown = Shutdown::new();
        let initial = match settings.amqp {
            None => BrokerState::Embedded,
            Some(_) => BrokerState::Disconnected,
        };
        let (outbox, receiver) = outbox(settings.outbox_capacity, initial);
        let api = Api::new(store.clone(), outbox, settings.api_token.clone());
        let config = ServerConfig {
            host: settings.host.clone(),
            port: settings.port,
            threads: settings.http_threads,
            max_body_bytes: settings.max_body_bytes,
            io_timeout: settings.idle_timeout,
        };
        let failure = Alarm::new();
        let on_failure = {
            let (failure, shutdown) = (failure.clone(), shutdown.clone());
            Box::new(move |why: &str| {
                failure.raise(why);
                shutdown.trigger();
            })
        };
        // The port first: a taken port is the likeliest failure, and nothing else has started
        // (or logged) yet. Events accepted before the notifier runs wait in the outbox.
        let http = HttpServer::start_watched(
            &config,
            Arc::new(move |request| api.handle(request)),
            ProbeConfig::default(),
            on_failure,
        )?;
        let spawned = match &settings.amqp {
            None => notifier::spawn_embedded(receiver, store.clone(), out),
            Some(amqp) => publisher::spawn(receiver, amqp.clone(), settings.shutdown_timeout),
        };
        let notifier = match spawned.and_then(|n| guard(n, failure.clone(), shutdown.clone())) {
            Ok(notifier) => notifier,
            Err(e) => {
                http.stop();
                return Err(StartError::Thread(e));
            }
        };
        Ok(EventLogger {
            http,
            notifier,
            shutdown,
            store,
            failure,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// The signal that stops [`EventLogger::run_until_stopped`].
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Direct access to the store, for tests and benchmarks.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until the shutdown signal, then stops gracefully. An error means the server
    /// stopped accepting connections (see [`crate::watchdog`]) or the notifier thread died:
    /// the process should exit non-zero so that its supervisor restarts it.
    pub fn run_until_stopped(self) -> Result<(), String> {
        self.shutdown.wait();
        let failure = self.failure.clone();
        self.stop();
        match failure.reason() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Stops taking requests, answers those in flight, then lets the notifier hand on every
    /// accepted event (the publisher waits for confirms up to `SHUTDOWN_TIMEOUT_SECS`).
    pub fn stop(self) {
        self.shutdown.trigger();
        log::info!("stopping: answering requests in flight");
        // Joining the workers drops the last `Outbox`, which tells the notifier to finish.
        self.http.stop();
        log::info!("stopping: handing on pending notifications");
        let _ = self.notifier.join();
        log::info!("stopped");
    }
}

/// Watches the notifier thread. It ends normally only once the outbox closes at shutdown; if
/// it panics while the service runs, nothing drains the outbox any more and every `POST` would
/// get `503` from then on while `/health` said `ok`. So a panic takes the failure path: the
/// service stops and the process exits non-zero, for its supervisor to restart it.
fn guard(
    notifier: JoinHandle<()>,
    failure: Alarm,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("notifier-guard".into())
        .spawn(move || {
            if notifier.join().is_err() {
                log::error!("the notifier thread panicked; stopping the logger");
                failure.raise("the notifier thread panicked");
                shutdown.trigger();
            }
        })
}
