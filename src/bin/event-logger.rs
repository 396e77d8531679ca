//! `event-logger`: the HTTP API. All logic lives in the library; see `--help`.

use std::process::ExitCode;

use event_notification::app::EventLogger;
use event_notification::config::{self, LoggerSettings};
use event_notification::healthcheck;
use event_notification::http::StartError;
use event_notification::limits;
use event_notification::logging;

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "--healthcheck") {
        return healthcheck::run_from_env();
    }
    let settings = match config::settings_or_exit(
        "event-logger",
        "HTTP API that logs events and hands them to the notification queue",
        config::LOGGER_VARS,
        LoggerSettings::from_env,
    ) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    logging::init(settings.log_level, settings.secrets());
    let fd_limit = limits::raise_fd_limit();

    let logger = match EventLogger::start(&settings, Box::new(std::io::stdout())) {
        Ok(logger) => logger,
        Err(e) => {
            eprintln!("event-logger: {e}");
            // A HOST that names no address is a bad setting, like PORT=abc (exit 2); anything
            // else (port taken, no threads) is a failure to start (exit 1).
            let bad_setting = matches!(e, StartError::Resolve { .. });
            return ExitCode::from(if bad_setting { 2 } else { 1 });
        }
    };
    limits::log(&fd_limit);
    if let Err(e) = logger.shutdown_handle().on_signals() {
        log::error!("cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let mode = match &settings.amqp {
        None => "embedded notifier (AMQP_URL unset)".to_owned(),
        Some(a) => format!(
            "RabbitMQ at {} (exchange {}, queue {})",
            a.display_url(),
            a.exchange,
            a.queue
        ),
    };
    log::info!(
        "event-logger {} listening on http://{} with {} worker threads; notifications: {mode}",
        env!("CARGO_PKG_VERSION"),
        logger.local_addr(),
        settings.http_threads
    );
    match logger.run_until_stopped() {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            log::error!("event-logger exits with an error: {why}");
            ExitCode::FAILURE
        }
    }
}
