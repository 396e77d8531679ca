//! The real Event Logger in-process, on port 0 ([`spawn_app`]), with an HTTP client for it.

use std::io::Write;
use std::time::Duration;

use event_notification::logger::{EventLogger, LoggerSettings};

use super::http::Client;

/// Settings for a test server: port 0 on loopback, embedded mode, everything else default.
pub fn test_settings() -> LoggerSettings {
    let mut settings = LoggerSettings::from_lookup(|_| None).expect("defaults are valid");
    settings.port = 0;
    settings.http_threads = 4;
    settings.idle_timeout = Duration::from_secs(5);
    settings
}

/// A running Event Logger and an HTTP client for it (through `Deref`). Stops the server
/// gracefully, and waits until it stopped, when dropped.
pub struct TestApp {
    logger: Option<EventLogger>,
    client: Client,
}

impl std::ops::Deref for TestApp {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(logger) = self.logger.take() {
            logger.stop();
        }
    }
}

/// A server with the [`test_settings`], its notifications discarded.
pub fn spawn_app() -> TestApp {
    spawn_app_with(|_| {})
}

/// A server with the [`test_settings`] as `configure` leaves them, its notifications discarded.
pub fn spawn_app_with(configure: impl FnOnce(&mut LoggerSettings)) -> TestApp {
    spawn_app_writing(configure, std::io::sink())
}

/// [`spawn_app_with`], the embedded notifier writing its lines to `out`.
pub fn spawn_app_writing(
    configure: impl FnOnce(&mut LoggerSettings),
    out: impl Write + Send + 'static,
) -> TestApp {
    let mut settings = test_settings();
    configure(&mut settings);
    let logger = EventLogger::start(&settings, Box::new(out)).expect("server starts");
    TestApp {
        client: Client::new(logger.local_addr()),
        logger: Some(logger),
    }
}
