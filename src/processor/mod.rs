//! The Notification Processor: consumes the notification queue, "sends" each notification
//! (one line on stdout) and marks the event `Processed` through the logger's API.
//!
//! [`run`] supervises the `consumer` threads until the shutdown signal and bounds the stop by
//! `SHUTDOWN_TIMEOUT_SECS`; `message` is what a message may say (only an `event_id`); `decide`
//! is the policy (pause, retry, dead-letter; whom to notify); `outage` logs the pauses while
//! the API is unavailable; `api_client` talks to the logger over HTTP only: this wing never
//! reaches into the logger's code.

mod api_client;
mod consumer;
mod decide;
mod message;
mod metrics;
mod outage;
pub mod settings;

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use settings::{PROCESSOR_VARS, ProcessorSettings};

use crate::shared::shutdown::Shutdown;

/// Why the processor stopped other than by a clean shutdown.
#[derive(Debug)]
pub enum RunError {
    /// The consumer thread could not be started.
    Thread(std::io::Error),
    /// The consumer thread ended before the stop signal: it panicked.
    Died,
    /// In-flight work was still busy this long after the stop signal.
    StopTimedOut(Duration),
    /// `METRICS_PORT` could not be listened on.
    Metrics(u16, std::io::Error),
}

impl RunError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::FAILURE
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Thread(e) => write!(f, "cannot start the processor thread: {e}"),
            RunError::Died => f.write_str("the processor thread ended unexpectedly"),
            RunError::Metrics(port, e) => write!(
                f,
                "cannot serve metrics on METRICS_PORT={port}: {e} (choose a free port, or unset it)"
            ),
            RunError::StopTimedOut(timeout) => write!(
                f,
                "still busy {timeout:?} after the stop signal (SHUTDOWN_TIMEOUT_SECS); exiting \
                 anyway: the messages not acked are redelivered"
            ),
        }
    }
}

impl std::error::Error for RunError {}

/// Consumes until `shutdown`, printing notification lines to `out`. Returns once the consumers
/// stopped, or `SHUTDOWN_TIMEOUT_SECS` after the signal if they do not.
pub fn run(
    settings: ProcessorSettings,
    shutdown: Shutdown,
    out: Box<dyn Write + Send>,
) -> Result<(), RunError> {
    let timeout = settings.shutdown_timeout;
    metrics::register();
    let listener = settings
        .metrics_port
        .map(|port| metrics::Listener::start(port).map_err(|e| RunError::Metrics(port, e)))
        .transpose()?;
    let result = consume(settings, shutdown, out, timeout);
    if let Some(listener) = listener {
        listener.stop();
    }
    result
}

fn consume(
    settings: ProcessorSettings,
    shutdown: Shutdown,
    out: Box<dyn Write + Send>,
    timeout: Duration,
) -> Result<(), RunError> {
    let processor = consumer::Processor::new(settings, shutdown.clone(), Arc::new(Mutex::new(out)));
    let worker = std::thread::Builder::new()
        .name("processor".into())
        .spawn(move || processor.run())
        .map_err(RunError::Thread)?;
    while !shutdown.wait_timeout(Duration::from_millis(200)) {
        if worker.is_finished() {
            // `run` returns only after the stop signal: it panicked.
            return Err(RunError::Died);
        }
    }
    // In-flight work gets SHUTDOWN_TIMEOUT_SECS; a PUT or a stdout that hangs longer must not
    // keep the process alive until the supervisor kills it.
    let deadline = Instant::now() + timeout;
    while !worker.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if worker.is_finished() {
        Ok(())
    } else {
        Err(RunError::StopTimedOut(timeout))
    }
}
