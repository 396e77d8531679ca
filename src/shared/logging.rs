//! Logging to standard error with `simplelog`, through a filter that scrubs secrets.
//!
//! Standard output carries only notification lines, so every log line goes to stderr. Our own
//! code never formats a secret, but dependencies may (amiquip puts the broker URL, password
//! included, into its connection errors), so every record is scrubbed of the configured secrets
//! before it is written.

use log::{LevelFilter, Log, Metadata, Record};

/// Installs the global logger at `level`, hiding every string in `secrets`.
pub fn init(level: LevelFilter, secrets: Vec<String>) {
    let config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(LevelFilter::Error)
        .set_thread_level(LevelFilter::Off)
        .build();
    let inner = simplelog::WriteLogger::new(level, config, std::io::stderr());
    let secrets = secrets.into_iter().filter(|s| s.len() >= 3).collect();
    let logger = Scrubbing { inner, secrets };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}

struct Scrubbing {
    inner: Box<simplelog::WriteLogger<std::io::Stderr>>,
    secrets: Vec<String>,
}

impl Log for Scrubbing {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        // amiquip warns at every failed attempt (a 406 on declare, say); the services log each
        // problem once with what to do about it, so amiquip's own lines are `debug`.
        let mut metadata = record.metadata().clone();
        if metadata.target().starts_with("amiquip") && metadata.level() < log::Level::Debug {
            metadata = Metadata::builder()
                .level(log::Level::Debug)
                .target(metadata.target())
                .build();
        }
        if !self.enabled(&metadata) {
            return;
        }
        let text = scrub(&record.args().to_string(), &self.secrets);
        self.inner.log(
            &Record::builder()
                .metadata(metadata)
                .args(format_args!("{text}"))
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// `text` with every occurrence of every secret replaced by `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |acc, secret| {
            acc.replace(secret.as_str(), "***")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_every_secret() {
        let secrets = vec!["pa55".to_owned(), "t0ken".to_owned(), String::new()];
        assert_eq!(
            scrub("amqp://u:pa55@h failed; token t0ken, pa55", &secrets),
            "amqp://u:***@h failed; token ***, ***"
        );
    }
}
