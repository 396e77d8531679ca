//! The Notification Processor's settings: its variables table (what `--help` prints) and the
//! typed values read from the environment once at start.

use std::time::Duration;

use log::LevelFilter;

use crate::shared::amqp::AmqpSettings;
use crate::shared::env::{
    AMQP_EXCHANGE, AMQP_QUEUE, AMQP_QUEUE_TYPE, AMQP_ROUTING_KEY, AMQP_TLS_CA_FILE, API_TOKEN,
    ConfigError, Env, LOG_LEVEL, SHUTDOWN_TIMEOUT, Secret, Var, check_url, var,
};

/// The Notification Processor's variables.
pub const PROCESSOR_VARS: &[Var] = &[
    var(
        "AMQP_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "RabbitMQ URL (add ?heartbeat=N to tune dead-connection detection)",
    ),
    AMQP_EXCHANGE,
    AMQP_QUEUE,
    AMQP_ROUTING_KEY,
    AMQP_QUEUE_TYPE,
    AMQP_TLS_CA_FILE,
    var(
        "API_URL",
        "http://127.0.0.1:8000",
        "base URL of the Event Logger",
    ),
    API_TOKEN,
    var(
        "PREFETCH",
        "64",
        "unacknowledged messages per consumer thread",
    ),
    var(
        "MAX_ATTEMPTS",
        "5",
        "tries of an API request before a message is dead-lettered (an unavailable API counts none)",
    ),
    var(
        "PROCESSOR_THREADS",
        "4",
        "consumer threads (each its own channel), so one slow PUT does not stall the rest",
    ),
    var(
        "METRICS_PORT",
        "unset (no metrics listener)",
        "port of the Prometheus GET /metrics listener (all interfaces; 0: a free one, logged)",
    ),
    SHUTDOWN_TIMEOUT,
    LOG_LEVEL,
];

/// The Notification Processor's settings.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    pub amqp: AmqpSettings,
    pub api_url: String,
    pub api_token: Option<Secret>,
    pub prefetch: u16,
    pub max_attempts: u32,
    pub threads: usize,
    /// `None`: no metrics listener.
    pub metrics_port: Option<u16>,
    pub shutdown_timeout: Duration,
    pub log_level: LevelFilter,
}

impl ProcessorSettings {
    pub fn from_env() -> Result<ProcessorSettings, ConfigError> {
        ProcessorSettings::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup };
        let amqp = env
            .amqp(Some("amqp://guest:guest@127.0.0.1:5672/%2f"))?
            .ok_or(ConfigError {
                var: "AMQP_URL",
                value: None,
                problem: "required".into(),
            })?;
        let api_url = env.string("API_URL", "http://127.0.0.1:8000")?;
        check_url(
            "API_URL",
            &api_url,
            "http",
            "expected http://host:port (https is not supported by this build)",
            false,
        )?;
        Ok(ProcessorSettings {
            amqp,
            api_url: api_url.trim_end_matches('/').to_owned(),
            api_token: env.secret("API_TOKEN"),
            prefetch: env.int("PREFETCH", 64, 1, 65_535)?,
            max_attempts: env.int("MAX_ATTEMPTS", 5, 1, 1000)?,
            threads: env.int("PROCESSOR_THREADS", 4, 1, 256)?,
            metrics_port: match env.get("METRICS_PORT") {
                None => None,
                Some(_) => Some(env.int("METRICS_PORT", 0, 0, 65_535)?),
            },
            shutdown_timeout: env.seconds("SHUTDOWN_TIMEOUT_SECS", 10)?,
            log_level: env.log_level()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::env::tests::env;

    #[test]
    fn processor_defaults_match_the_contract() {
        let s = ProcessorSettings::from_lookup(env(&[])).unwrap();
        assert_eq!(s.amqp.url.expose(), "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(
            (s.amqp.exchange.as_str(), s.amqp.queue.as_str()),
            ("events", "notifications")
        );
        assert_eq!(s.amqp.routing_key, "event.created");
        assert_eq!(s.api_url, "http://127.0.0.1:8000");
        assert_eq!((s.prefetch, s.max_attempts, s.threads), (64, 5, 4));
        assert_eq!(s.metrics_port, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = ProcessorSettings::from_lookup(env(&[("API_URL", "https://x")])).unwrap_err();
        assert_eq!(err.var, "API_URL");
        let err = ProcessorSettings::from_lookup(env(&[("PREFETCH", "0")])).unwrap_err();
        assert_eq!(err.var, "PREFETCH");
        let err = ProcessorSettings::from_lookup(env(&[("METRICS_PORT", "70000")])).unwrap_err();
        assert_eq!(err.var, "METRICS_PORT");
        let s = ProcessorSettings::from_lookup(env(&[("METRICS_PORT", "9100")])).unwrap();
        assert_eq!(s.metrics_port, Some(9100));
    }

    #[test]
    fn queue_type_and_tls_ca_file_are_checked_at_start() {
        use crate::shared::amqp::QueueType;
        let s = ProcessorSettings::from_lookup(env(&[])).unwrap();
        assert_eq!(s.amqp.queue_type, QueueType::Classic);
        assert!(s.amqp.tls_ca.is_none());
        let s = ProcessorSettings::from_lookup(env(&[("AMQP_QUEUE_TYPE", "quorum")])).unwrap();
        assert_eq!(s.amqp.queue_type, QueueType::Quorum);
        let err = ProcessorSettings::from_lookup(env(&[("AMQP_QUEUE_TYPE", "lazy")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid AMQP_QUEUE_TYPE=\"lazy\": expected classic or quorum"
        );
        let err = ProcessorSettings::from_lookup(env(&[("AMQP_TLS_CA_FILE", "/etc/hostname")]))
            .unwrap_err();
        assert!(err.problem.contains("not amqps://"), "{err}");
        let err = ProcessorSettings::from_lookup(env(&[
            ("AMQP_URL", "amqps://broker.example.com/%2f"),
            ("AMQP_TLS_CA_FILE", "/nonexistent/ca.pem"),
        ]))
        .unwrap_err();
        assert!(err.problem.contains("cannot read the file"), "{err}");
        let s = ProcessorSettings::from_lookup(env(&[("AMQP_URL", "amqps://broker.example.com")]))
            .unwrap();
        assert!(s.amqp.tls_ca.is_none());
    }
}
