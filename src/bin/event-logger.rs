//! `event-logger`: the HTTP API. All logic lives in the library; see `--help`.

use std::process::ExitCode;

use event_notification::logger::{self, LOGGER_VARS, LoggerSettings, RunError, healthcheck};
use event_notification::shared::{env, logging};

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "--healthcheck") {
        return healthcheck::run_from_env();
    }
    let settings = match env::settings_or_exit(
        "event-logger",
        "HTTP API that logs events and hands them to the notification queue",
        LOGGER_VARS,
        LoggerSettings::from_env,
    ) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    logging::init(settings.log_level);
    match logger::run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        // Failing to start is one plain line, like a bad setting; later failures are logged.
        Err(e @ RunError::Start(_)) => {
            eprintln!("event-logger: {e}");
            e.exit_code()
        }
        Err(e) => {
            log::error!("{e}");
            e.exit_code()
        }
    }
}
