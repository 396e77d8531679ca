//! `notification-processor`: consumes the notification queue. All logic lives in the library;
//! see `--help`.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use event_notification::config::{self, ProcessorSettings};
use event_notification::logging;
use event_notification::processor::Processor;
use event_notification::shutdown::Shutdown;

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        print!(
            "{}",
            config::help(
                "notification-processor",
                "sends a notification for every logged event and marks it Processed",
                config::PROCESSOR_VARS
            )
        );
        return ExitCode::SUCCESS;
    }
    let settings = match ProcessorSettings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("notification-processor: {e}");
            return ExitCode::from(2);
        }
    };
    let mut secrets = settings.amqp.secrets();
    secrets.extend(settings.api_token.iter().map(|t| t.expose().to_owned()));
    logging::init(settings.log_level, secrets);

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
    Processor::new(settings, shutdown, out).run();
    ExitCode::SUCCESS
}
