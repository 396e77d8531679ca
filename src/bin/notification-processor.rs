//! `notification-processor`: consumes the notification queue. All logic lives in the library;
//! see `--help`.

use std::process::ExitCode;

use event_notification::processor::{self, PROCESSOR_VARS, ProcessorSettings};
use event_notification::shared::{env, logging, shutdown::Shutdown};

fn main() -> ExitCode {
    let settings = match env::settings_or_exit(
        "notification-processor",
        "sends a notification for every logged event and marks it Processed",
        PROCESSOR_VARS,
        ProcessorSettings::from_env,
    ) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    logging::init(settings.log_level);
    let shutdown = Shutdown::new();
    if let Err(e) = shutdown.on_signals() {
        eprintln!("notification-processor: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    log::info!(
        "notification-processor {} starting",
        env!("CARGO_PKG_VERSION")
    );
    match processor::run(settings, shutdown, Box::new(std::io::stdout())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            e.exit_code()
        }
    }
}
