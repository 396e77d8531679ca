//! `notification-processor`: consumes the notification queue. All logic lives in the library;
//! see `--help`.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_notification::config::{self, ProcessorSettings};
use event_notification::logging;
use event_notification::processor::Processor;
use event_notification::shutdown::Shutdown;

fn main() -> ExitCode {
    let settings = match config::settings_or_exit(
        "notification-processor",
        "sends a notification for every logged event and marks it Processed",
        config::PROCESSOR_VARS,
        ProcessorSettings::from_env,
    ) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    logging::init(settings.log_level, settings.secrets());

    let shutdown = Shutdown::new();
    if let Err(e) = shutdown.on_signals() {
        eprintln!("notification-processor: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    log::info!(
        "notification-processor {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let out = Arc::new(Mutex::new(
        Box::new(std::io::stdout()) as Box<dyn std::io::Write + Send>
    ));
    let timeout = settings.shutdown_timeout;
    let processor = Processor::new(settings, shutdown.clone(), out);
    let worker = match std::thread::Builder::new()
        .name("processor".into())
        .spawn(move || processor.run())
    {
        Ok(worker) => worker,
        Err(e) => {
            log::error!("cannot start the processor thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    while !shutdown.wait_timeout(Duration::from_millis(200)) {
        if worker.is_finished() {
            // `run` returns only after the stop signal: it panicked.
            log::error!("the processor thread ended unexpectedly");
            return ExitCode::FAILURE;
        }
    }
    // In-flight work gets SHUTDOWN_TIMEOUT_SECS; a PUT or a stdout that hangs longer must not
    // keep the process alive until the supervisor kills it.
    let deadline = Instant::now() + timeout;
    while !worker.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !worker.is_finished() {
        log::error!(
            "still busy {timeout:?} after the stop signal (SHUTDOWN_TIMEOUT_SECS); exiting \
             anyway: the messages not acked are redelivered"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
