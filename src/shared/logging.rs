//! Logging to standard error with `simplelog`, and the rules for what dependencies may log.
//!
//! Standard output carries only notification lines, so every log line goes to stderr.
//!
//! Secrets are hidden where they are formatted, not by searching log lines for them: URLs are
//! logged through [`redact_url`](crate::shared::env::redact_url) (the password as `***`) and
//! the token is a [`Secret`](crate::shared::env::Secret), which formats as `***`. What our code
//! cannot redact at the source is what dependencies log themselves, so two of their records are
//! held back here, by where they come from:
//! - amiquip's `debug` line "sending handshake StartOk { .. response: "\0user\0password" .. }"
//!   carries the login: it is written without its arguments;
//! - ureq's `trace` records are its wire dump, headers unredacted (its documentation says so):
//!   dropped.
//!
//! amiquip also warns at every failed attempt (a 406 on declare, say); the services log each
//! problem once with what to do about it, so amiquip's own lines are demoted to `debug`.

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The module of amiquip that logs the handshake, and the start of the line with the login.
const AMIQUIP_HANDSHAKE: &str = "amiquip::io_loop::handshake_state";
const START_OK: &str = "sending handshake StartOk";

/// Installs the global logger at `level`.
pub fn init(level: LevelFilter) {
    let config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(LevelFilter::Error)
        .set_thread_level(LevelFilter::Off)
        .build();
    let inner = simplelog::WriteLogger::new(level, config, std::io::stderr());
    if log::set_boxed_logger(Box::new(Guarded { inner })).is_ok() {
        log::set_max_level(level);
    }
}

struct Guarded {
    inner: Box<simplelog::WriteLogger<std::io::Stderr>>,
}

/// What becomes of a dependency's record.
#[derive(Debug, PartialEq, Eq)]
enum Treatment {
    Keep,
    /// Logged with this text instead of its own.
    Replace(&'static str),
    Drop,
}

/// The rule for a record of `target` at `level`; `text` formats it, only where the rule needs it.
fn treatment(target: &str, level: Level, text: impl FnOnce() -> String) -> Treatment {
    if target.starts_with("ureq") && level == Level::Trace {
        return Treatment::Drop;
    }
    if target == AMIQUIP_HANDSHAKE && text().starts_with(START_OK) {
        return Treatment::Replace("sending handshake StartOk (the login is not logged)");
    }
    Treatment::Keep
}

impl Log for Guarded {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        let mut metadata = record.metadata().clone();
        if metadata.target().starts_with("amiquip") && metadata.level() < Level::Debug {
            metadata = Metadata::builder()
                .level(Level::Debug)
                .target(metadata.target())
                .build();
        }
        if !self.enabled(&metadata) {
            return;
        }
        let rebuilt = |args: std::fmt::Arguments<'_>| {
            self.inner.log(
                &Record::builder()
                    .metadata(metadata.clone())
                    .args(args)
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            )
        };
        match treatment(metadata.target(), record.level(), || {
            record.args().to_string()
        }) {
            Treatment::Keep => rebuilt(*record.args()),
            Treatment::Replace(text) => rebuilt(format_args!("{text}")),
            Treatment::Drop => {}
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dependencies_records_that_carry_credentials_are_held_back() {
        let start_ok = || r#"sending handshake StartOk { response: "\0u\0pw" }"#.to_owned();
        assert_eq!(
            treatment(AMIQUIP_HANDSHAKE, Level::Debug, start_ok),
            Treatment::Replace("sending handshake StartOk (the login is not logged)")
        );
        let tune = || "sending handshake TuneOk { heartbeat: 60 }".to_owned();
        assert_eq!(
            treatment(AMIQUIP_HANDSHAKE, Level::Debug, tune),
            Treatment::Keep
        );
        assert_eq!(
            treatment("ureq_proto::client", Level::Trace, String::new),
            Treatment::Drop
        );
        assert_eq!(
            treatment("ureq::pool", Level::Debug, String::new),
            Treatment::Keep
        );
        // Our own lines are never touched, whatever words they hold.
        assert_eq!(
            treatment("event_notification::x", Level::Trace, start_ok),
            Treatment::Keep
        );
    }
}
