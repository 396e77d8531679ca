//! The Event Logger's settings: its variables table (what `--help` prints) and the typed
//! values read from the environment once at start.

use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

use crate::logger::limits;
use crate::logger::storage::Sync;
use crate::shared::amqp::AmqpSettings;
use crate::shared::env::{
    self, AMQP_EXCHANGE, AMQP_QUEUE, AMQP_QUEUE_TYPE, AMQP_ROUTING_KEY, AMQP_TLS_CA_FILE,
    API_TOKEN, ConfigError, Env, LOG_LEVEL, SHUTDOWN_TIMEOUT, Secret, Var, var,
};

/// The Event Logger's variables.
pub const LOGGER_VARS: &[Var] = &[
    var(
        "HOST",
        "127.0.0.1",
        "address to listen on (the Docker image sets 0.0.0.0)",
    ),
    var("PORT", "8000", "TCP port to listen on (0: any free port)"),
    var(
        "HTTP_THREADS",
        "2 x CPUs",
        "requests handled at once (each connection has its own thread for reading and writing)",
    ),
    var(
        "MAX_CONNECTIONS",
        "from the open-file limit",
        "connections open at once (beyond: 503 and close); default: hard RLIMIT_NOFILE - reserve (one descriptor each)",
    ),
    var(
        "MAX_BODY_BYTES",
        "65536",
        "largest request body accepted (larger: 413)",
    ),
    var(
        "OUTBOX_CAPACITY",
        "100000",
        "events pending hand-off at most (full: 503)",
    ),
    var(
        "HTTP_IDLE_TIMEOUT_SECS",
        "30",
        "read/write timeout of a connection; idle keep-alive connections close after it",
    ),
    SHUTDOWN_TIMEOUT,
    var(
        "DATA_DIR",
        "unset (in memory: events are lost at exit)",
        "directory of the event database events.db (created if missing; one process at a time)",
    ),
    var(
        "SYNC",
        "normal",
        "with DATA_DIR: normal (survives a crash), full (survives power loss) or off (no waits)",
    ),
    var(
        "AMQP_URL",
        "unset (embedded mode)",
        "RabbitMQ URL; unset: no broker, an in-process notifier prints and marks events",
    ),
    AMQP_EXCHANGE,
    AMQP_QUEUE,
    AMQP_ROUTING_KEY,
    AMQP_QUEUE_TYPE,
    AMQP_TLS_CA_FILE,
    API_TOKEN,
    LOG_LEVEL,
];

/// The Event Logger's settings.
#[derive(Debug, Clone)]
pub struct LoggerSettings {
    pub host: String,
    pub port: u16,
    pub http_threads: usize,
    pub max_connections: usize,
    pub max_body_bytes: usize,
    pub outbox_capacity: usize,
    pub idle_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// `None`: events live in memory only.
    pub data_dir: Option<PathBuf>,
    pub sync: Sync,
    /// `None`: embedded mode.
    pub amqp: Option<AmqpSettings>,
    pub api_token: Option<Secret>,
    pub log_level: LevelFilter,
}

impl LoggerSettings {
    pub fn from_env() -> Result<LoggerSettings, ConfigError> {
        LoggerSettings::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup };
        Ok(LoggerSettings {
            host: env.string("HOST", "127.0.0.1")?,
            port: env.int("PORT", 8000, 0, 65_535)?,
            http_threads: env.int("HTTP_THREADS", 2 * env::cpus(), 1, 1024)?,
            max_connections: env.int(
                "MAX_CONNECTIONS",
                limits::default_max_connections(),
                1,
                10_000_000,
            )?,
            max_body_bytes: env.int("MAX_BODY_BYTES", 65_536, 1, 1 << 30)?,
            outbox_capacity: env.int("OUTBOX_CAPACITY", 100_000, 1, 100_000_000)?,
            idle_timeout: env
                .int("HTTP_IDLE_TIMEOUT_SECS", 30, 1, 86_400)
                .map(Duration::from_secs)?,
            shutdown_timeout: env.seconds("SHUTDOWN_TIMEOUT_SECS", 10)?,
            data_dir: env.get("DATA_DIR").map(PathBuf::from),
            sync: sync(&env)?,
            amqp: env.amqp(None)?,
            api_token: env.secret("API_TOKEN"),
            log_level: env.log_level()?,
        })
    }
}

fn sync<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Sync, ConfigError> {
    let text = env.string("SYNC", "normal")?;
    Sync::parse(&text).ok_or(ConfigError {
        var: "SYNC",
        value: Some(text),
        problem: "expected normal, full or off".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::env::tests::env;

    #[test]
    fn logger_defaults_match_the_contract() {
        let s = LoggerSettings::from_lookup(env(&[])).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8000));
        assert_eq!(s.http_threads, 2 * env::cpus());
        assert_eq!(s.max_connections, limits::default_max_connections());
        assert_eq!(s.max_body_bytes, 65_536);
        assert_eq!(s.outbox_capacity, 100_000);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(s.idle_timeout, Duration::from_secs(30));
        assert!(s.amqp.is_none() && s.api_token.is_none());
        assert_eq!(s.log_level, LevelFilter::Info);
        assert_eq!((s.data_dir, s.sync), (None, Sync::Normal));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = LoggerSettings::from_lookup(env(&[("PORT", "abc")])).unwrap_err();
        assert_eq!(err.var, "PORT");
        assert_eq!(
            err.to_string(),
            "invalid PORT=\"abc\": expected a whole number from 0 to 65535"
        );
        for (var, value) in [
            ("PORT", "70000"),
            ("HTTP_THREADS", "0"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_BODY_BYTES", "-1"),
            ("OUTBOX_CAPACITY", "1.5"),
            ("SHUTDOWN_TIMEOUT_SECS", "x"),
            ("LOG_LEVEL", "loud"),
            ("AMQP_EXCHANGE", "amq.direct"),
            ("SYNC", "always"),
        ] {
            let err = LoggerSettings::from_lookup(env(&[(var, value), ("AMQP_URL", "amqp://h")]))
                .unwrap_err();
            assert_eq!(err.var, var, "{var}={value}");
        }
    }

    #[test]
    fn an_unknown_amqp_url_parameter_is_a_configuration_error() {
        let err = LoggerSettings::from_lookup(env(&[(
            "AMQP_URL",
            "amqp://u:s3cret@h/%2f?heartbeat=5&prefetch=3",
        )]))
        .unwrap_err();
        assert_eq!(err.var, "AMQP_URL");
        let text = err.to_string();
        assert!(
            text.contains("unknown query parameter \"prefetch\""),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        let ok = LoggerSettings::from_lookup(env(&[(
            "AMQP_URL",
            "amqp://u:p@h/%2f?heartbeat=5&connection_timeout=100&channel_max=9",
        )]));
        assert!(ok.is_ok());
    }

    #[test]
    fn the_token_is_trimmed_as_the_presented_one_is() {
        let s = LoggerSettings::from_lookup(env(&[("API_TOKEN", " tok3n\n")])).unwrap();
        assert_eq!(
            s.api_token.map(|t| t.expose().to_owned()),
            Some("tok3n".into())
        );
    }

    #[test]
    fn secrets_are_never_echoed() {
        let err =
            LoggerSettings::from_lookup(env(&[("AMQP_URL", "http://u:hunter2@h")])).unwrap_err();
        assert_eq!(err.var, "AMQP_URL");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let s = LoggerSettings::from_lookup(env(&[
            ("AMQP_URL", "amqp://u:hun%40ter2@h:5672/%2f"),
            ("API_TOKEN", "tok3n"),
        ]))
        .unwrap();
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("hun") && !debug.contains("tok3n"),
            "{debug}"
        );
        let amqp = s.amqp.unwrap();
        assert_eq!(amqp.display_url(), "amqp://u:***@h:5672/%2f");
    }

    #[test]
    fn empty_means_unset() {
        let s = LoggerSettings::from_lookup(env(&[("PORT", ""), ("API_TOKEN", " ")])).unwrap();
        assert_eq!(s.port, 8000);
        assert!(s.api_token.is_none());
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let text = env::help("event-logger", "x", LOGGER_VARS);
        for v in LOGGER_VARS {
            let row = text
                .lines()
                .find(|l| l.trim_start().starts_with(v.name))
                .unwrap();
            assert!(row.contains(v.default), "{row}");
        }
    }
}
