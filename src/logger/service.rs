//! The Event Logger service assembled: store (loaded from `DATA_DIR` with its writer thread,
//! or in memory), outbox, notifier thread (embedded notifier or RabbitMQ publisher) and HTTP
//! server, started together and stopped in order, and the one start-up error type with the
//! exit code each failure maps to.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::logger::api::{Api, errors};
use crate::logger::http::watchdog::{Alarm, ProbeConfig};
use crate::logger::http::{HttpServer, ServerConfig, ServerError};
use crate::logger::limits;
use crate::logger::notifier::{self, Target};
use crate::logger::outbox::{BrokerState, outbox};
use crate::logger::settings::LoggerSettings;
use crate::logger::storage::{self, OpenError, StorageStatus};
use crate::logger::store::Store;
use crate::shared::shutdown::Shutdown;

/// Why the Event Logger could not start.
#[derive(Debug)]
pub enum StartError {
    /// `HOST` names no address: a bad setting, like `PORT=abc`.
    Host(ServerError),
    /// The port could not be bound (taken, or not permitted).
    Listen(ServerError),
    /// The HTTP server or a thread could not be started.
    Server(ServerError),
    /// The notifier thread could not be started.
    Notifier(std::io::Error),
    /// `DATA_DIR` cannot be used.
    Storage(OpenError),
    /// The storage writer thread could not be started.
    Writer(std::io::Error),
}

impl StartError {
    /// Exit code 2 for a bad setting (as for any other bad variable), 1 for a failure to start.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            StartError::Host(_) => 2,
            _ => 1,
        })
    }
}

impl From<ServerError> for StartError {
    fn from(e: ServerError) -> StartError {
        match e {
            ServerError::Resolve { .. } => StartError::Host(e),
            ServerError::Bind { .. } => StartError::Listen(e),
            ServerError::Server(_) | ServerError::Thread(_) => StartError::Server(e),
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Host(e) => write!(f, "{e} (set HOST to a name or address of this machine)"),
            StartError::Listen(e) => {
                write!(f, "{e} (is another server using the port? set PORT)")
            }
            StartError::Server(e) => write!(f, "{e}"),
            StartError::Notifier(e) => write!(f, "cannot start the notifier thread: {e}"),
            StartError::Storage(e) => write!(f, "{e}"),
            StartError::Writer(e) => write!(f, "cannot start the storage writer thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Why [`run`] ended other than by a clean stop.
#[derive(Debug)]
pub enum RunError {
    Start(StartError),
    Signals(std::io::Error),
    /// The server stopped accepting connections or the notifier thread died.
    Failed(String),
}

impl RunError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Start(e) => e.exit_code(),
            RunError::Signals(_) | RunError::Failed(_) => ExitCode::FAILURE,
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Start(e) => write!(f, "{e}"),
            RunError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            RunError::Failed(why) => write!(f, "event-logger exits with an error: {why}"),
        }
    }
}

impl std::error::Error for RunError {}

/// The whole service as the binary runs it: raise the open-file limit, start, stop on
/// `SIGINT`/`SIGTERM`. Notification lines of the embedded notifier go to stdout.
pub fn run(settings: &LoggerSettings) -> Result<(), RunError> {
    let fd_limit = limits::raise_fd_limit();
    let logger =
        EventLogger::start(settings, Box::new(std::io::stdout())).map_err(RunError::Start)?;
    limits::log(&fd_limit);
    logger
        .shutdown_handle()
        .on_signals()
        .map_err(RunError::Signals)?;
    let mode = match &settings.amqp {
        None => "embedded notifier (AMQP_URL unset)".to_owned(),
        Some(a) => format!(
            "RabbitMQ at {} (exchange {}, queue {})",
            a.display_url(),
            a.exchange,
            a.queue
        ),
    };
    // After the start, so that a failed start stays one line.
    if settings.data_dir.is_none() {
        log::info!("DATA_DIR unset: events are kept in memory only and lost at exit");
    }
    log::info!(
        "event-logger {} listening on http://{} with {} worker threads; notifications: {mode}",
        env!("CARGO_PKG_VERSION"),
        logger.local_addr(),
        settings.http_threads
    );
    logger.run_until_stopped()
}

/// A running Event Logger.
pub struct EventLogger {
    http: HttpServer,
    notifier: JoinHandle<()>,
    /// With `DATA_DIR`: the storage writer (its guard), stopped after the notifier.
    writer: Option<JoinHandle<()>>,
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
        crate::logger::metrics::register();
        let durable = match &settings.data_dir {
            None => None,
            Some(dir) => Some(storage::open(dir, settings.sync).map_err(StartError::Storage)?),
        };
        let shutdown = Shutdown::new();
        let failure = Alarm::new();
        let initial = match settings.amqp {
            None => BrokerState::Embedded,
            Some(_) => BrokerState::Disconnected,
        };
        let (outbox, receiver) = outbox(settings.outbox_capacity, initial);
        let (store, status, writer, receiver, writer_thread) = match durable {
            None => (Store::new(), StorageStatus::memory(), None, receiver, None),
            Some(opened) => {
                let (writer, marks, thread) = opened
                    .thread
                    .spawn(outbox.clone())
                    .map_err(StartError::Writer)?;
                let thread = guard("storage writer", thread, failure.clone(), shutdown.clone())
                    .map_err(StartError::Writer)?;
                // The channel is unbounded: they wait there until the notifier runs.
                let _ = outbox.requeue(opened.unnotified);
                let receiver = receiver.with_marks(marks);
                (
                    opened.store,
                    opened.status,
                    Some(writer),
                    receiver,
                    Some(thread),
                )
            }
        };
        let api = Api::new(
            store.clone(),
            outbox,
            writer,
            status,
            settings.api_token.clone(),
        );
        let config = ServerConfig {
            host: settings.host.clone(),
            port: settings.port,
            threads: settings.http_threads,
            max_body_bytes: settings.max_body_bytes,
            io_timeout: settings.idle_timeout,
            error_body: errors::server_error_body,
            max_connections: settings.max_connections,
        };
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
        let target = match &settings.amqp {
            None => Target::Embedded {
                store: store.clone(),
                out,
            },
            Some(amqp) => Target::Broker {
                settings: amqp.clone(),
                shutdown_timeout: settings.shutdown_timeout,
            },
        };
        let spawned = notifier::spawn(receiver, target);
        let guarded = spawned.and_then(|n| guard("notifier", n, failure.clone(), shutdown.clone()));
        let notifier = match guarded {
            Ok(notifier) => notifier,
            Err(e) => {
                http.stop();
                return Err(StartError::Notifier(e));
            }
        };
        Ok(EventLogger {
            http,
            notifier,
            writer: writer_thread,
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
    /// stopped accepting connections (see `logger::http::watchdog`) or the notifier thread died:
    /// the process should exit non-zero so that its supervisor restarts it.
    pub fn run_until_stopped(self) -> Result<(), RunError> {
        self.shutdown.wait();
        let failure = self.failure.clone();
        self.stop();
        match failure.reason() {
            Some(why) => Err(RunError::Failed(why)),
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
        if let Some(writer) = self.writer {
            // Ends once the notifier's last marks are saved.
            let _ = writer.join();
        }
        log::info!("stopped");
    }
}

/// Watches the notifier (or the storage writer) thread. It ends normally only once its input
/// closes at shutdown; if it panics while the service runs, nothing drains the outbox (or
/// commits writes) any more and every `POST` would get `503` from then on while `/health` said
/// `ok`. So a panic takes the failure path: the service stops and the process exits non-zero,
/// for its supervisor to restart it.
fn guard(
    name: &'static str,
    thread: JoinHandle<()>,
    failure: Alarm,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("{name} guard"))
        .spawn(move || {
            if thread.join().is_err() {
                log::error!("the {name} thread panicked; stopping the logger");
                failure.raise(format!("the {name} thread panicked"));
                shutdown.trigger();
            }
        })
}
