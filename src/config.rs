//! Settings of both services, read once from the environment into typed values.
//!
//! Every variable, its default and its meaning are listed in one table per service
//! ([`LOGGER_VARS`], [`PROCESSOR_VARS`]), which is also what `--help` prints. A bad value is a
//! [`ConfigError`] naming the variable; the binaries print it on one line and exit with code 2.
//! An empty variable counts as unset. Secret values (`AMQP_URL`, `API_TOKEN`) are never
//! echoed in errors and are kept in [`Secret`], whose `Debug` hides them.

use std::time::Duration;

use log::LevelFilter;

/// One documented environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: &'static str, meaning: &'static str) -> Var {
    Var {
        name,
        default,
        meaning,
    }
}

const AMQP_URL_LOGGER: Var = var(
    "AMQP_URL",
    "unset (embedded mode)",
    "RabbitMQ URL; unset: no broker, an in-process notifier prints and marks events",
);
const AMQP_EXCHANGE: Var = var("AMQP_EXCHANGE", "events", "exchange name (direct, durable)");
const AMQP_QUEUE: Var = var("AMQP_QUEUE", "notifications", "queue name (durable)");
const API_TOKEN: Var = var(
    "API_TOKEN",
    "unset (no authentication)",
    "bearer token required on /events routes",
);
const SHUTDOWN_TIMEOUT: Var = var(
    "SHUTDOWN_TIMEOUT_SECS",
    "10",
    "on SIGINT/SIGTERM, how long to finish in-flight work",
);
const LOG_LEVEL: Var = var(
    "LOG_LEVEL",
    "info",
    "off, error, warn, info, debug or trace (logs go to stderr)",
);

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
        "worker threads answering requests",
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
    AMQP_URL_LOGGER,
    AMQP_EXCHANGE,
    AMQP_QUEUE,
    API_TOKEN,
    LOG_LEVEL,
];

/// The Notification Processor's variables.
pub const PROCESSOR_VARS: &[Var] = &[
    var(
        "AMQP_URL",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "RabbitMQ URL (add ?heartbeat=N to tune dead-connection detection)",
    ),
    AMQP_EXCHANGE,
    AMQP_QUEUE,
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
        "tries of the PUT before a message is dead-lettered",
    ),
    var(
        "PROCESSOR_THREADS",
        "4",
        "consumer threads (each its own channel), so one slow PUT does not stall the rest",
    ),
    SHUTDOWN_TIMEOUT,
    LOG_LEVEL,
];

/// `--help` text: usage and the variables table.
/// What a binary does with its command line and environment before it runs: `--help` (or
/// `-h`) prints the variables and exits 0; a bad setting prints one line naming it and exits 2
/// (`API.md`). `Err` holds the exit code.
pub fn settings_or_exit<S>(
    binary: &str,
    summary: &str,
    vars: &[Var],
    from_env: impl FnOnce() -> Result<S, ConfigError>,
) -> Result<S, std::process::ExitCode> {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        print!("{}", help(binary, summary, vars));
        return Err(std::process::ExitCode::SUCCESS);
    }
    from_env().map_err(|e| {
        eprintln!("{binary}: {e}");
        std::process::ExitCode::from(2)
    })
}

pub fn help(binary: &str, summary: &str, vars: &[Var]) -> String {
    let mut out = format!(
        "{binary} {}: {summary}\n\nUsage: {binary} [--help]\n\nConfiguration (environment variables):\n",
        env!("CARGO_PKG_VERSION")
    );
    let width = vars.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let dwidth = vars.iter().map(|v| v.default.len()).max().unwrap_or(0);
    out.push_str(&format!(
        "  {:width$}  {:dwidth$}  {}\n",
        "VARIABLE", "DEFAULT", "MEANING"
    ));
    for v in vars {
        out.push_str(&format!(
            "  {:width$}  {:dwidth$}  {}\n",
            v.name, v.default, v.meaning
        ));
    }
    out
}

/// A bad configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    /// The value, unless it is a secret.
    pub value: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(value) => write!(f, "invalid {}={value:?}: {}", self.var, self.problem),
            None => write!(f, "invalid {}: {}", self.var, self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A string that must not be logged; `Debug` prints `***` and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where the broker is and what to call things there.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub url: Secret,
    pub exchange: String,
    pub queue: String,
}

impl AmqpSettings {
    /// The URL with its password replaced by `***`, for logs.
    pub fn display_url(&self) -> String {
        redact_url(self.url.expose())
    }

    /// Strings that must never appear in logs (the URL's password, raw and percent-decoded).
    pub fn secrets(&self) -> Vec<String> {
        url::Url::parse(self.url.expose())
            .ok()
            .and_then(|u| u.password().map(str::to_owned))
            .map(|p| {
                let decoded = percent_encoding::percent_decode_str(&p)
                    .decode_utf8_lossy()
                    .into_owned();
                vec![p, decoded]
            })
            .unwrap_or_default()
    }
}

/// `url` with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// The Event Logger's settings.
#[derive(Debug, Clone)]
pub struct LoggerSettings {
    pub host: String,
    pub port: u16,
    pub http_threads: usize,
    pub max_body_bytes: usize,
    pub outbox_capacity: usize,
    pub idle_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// `None`: embedded mode.
    pub amqp: Option<AmqpSettings>,
    pub api_token: Option<Secret>,
    pub log_level: LevelFilter,
}

/// The Notification Processor's settings.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    pub amqp: AmqpSettings,
    pub api_url: String,
    pub api_token: Option<Secret>,
    pub prefetch: u16,
    pub max_attempts: u32,
    pub threads: usize,
    pub shutdown_timeout: Duration,
    pub log_level: LevelFilter,
}

/// Reads variables through a lookup function, so tests need not touch the process
/// environment.
struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    fn string(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        if value.len() > 200 {
            return Err(ConfigError {
                var: name,
                value: None,
                problem: "longer than 200 characters".into(),
            });
        }
        Ok(value)
    }

    /// An integer in `min..=max`.
    fn int<T>(&self, name: &'static str, default: T, min: u64, max: u64) -> Result<T, ConfigError>
    where
        T: TryFrom<u64> + Copy,
    {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        let problem = || ConfigError {
            var: name,
            value: Some(text.clone()),
            problem: format!("expected a whole number from {min} to {max}"),
        };
        let n: u64 = text.trim().parse().map_err(|_| problem())?;
        if !(min..=max).contains(&n) {
            return Err(problem());
        }
        T::try_from(n).map_err(|_| problem())
    }

    fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.int(name, default, 0, 86_400).map(Duration::from_secs)
    }

    /// Trimmed, as the token a client presents is: a stray space in a `.env` file must not
    /// make every request (and every processor `PUT`) fail with `401`.
    fn secret(&self, name: &'static str) -> Option<Secret> {
        self.get(name).map(|s| Secret(s.trim().to_owned()))
    }

    fn log_level(&self) -> Result<LevelFilter, ConfigError> {
        let Some(text) = self.get("LOG_LEVEL") else {
            return Ok(LevelFilter::Info);
        };
        text.trim().parse().map_err(|_| ConfigError {
            var: "LOG_LEVEL",
            value: Some(text.clone()),
            problem: "expected one of off, error, warn, info, debug, trace".into(),
        })
    }

    fn amqp(&self, default_url: Option<&str>) -> Result<Option<AmqpSettings>, ConfigError> {
        let Some(url) = self.get("AMQP_URL").or(default_url.map(str::to_owned)) else {
            return Ok(None);
        };
        check_url(
            "AMQP_URL",
            &url,
            "amqp",
            "expected amqp://user:password@host:port/vhost (amqps is not supported by this build)",
            true,
        )?;
        Ok(Some(AmqpSettings {
            url: Secret(url),
            exchange: self.name("AMQP_EXCHANGE", "events")?,
            queue: self.name("AMQP_QUEUE", "notifications")?,
        }))
    }

    /// An exchange or queue name: AMQP short strings, minus room for `.dlx`/`.dead`.
    fn name(&self, var: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.string(var, default)?;
        if value.len() > 250 || value.starts_with("amq.") {
            return Err(ConfigError {
                var,
                value: Some(value),
                problem: "expected at most 250 bytes, not starting with the reserved `amq.`".into(),
            });
        }
        Ok(value)
    }
}

fn check_url(
    var: &'static str,
    text: &str,
    scheme: &str,
    problem: &str,
    secret: bool,
) -> Result<(), ConfigError> {
    match url::Url::parse(text) {
        Ok(url) if url.scheme() == scheme && url.has_host() => Ok(()),
        _ => Err(ConfigError {
            var,
            value: (!secret).then(|| text.to_owned()),
            problem: problem.to_owned(),
        }),
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl LoggerSettings {
    /// What the logs must never show: the broker password and the API token.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = self.amqp.as_ref().map(|a| a.secrets()).unwrap_or_default();
        secrets.extend(self.api_token.iter().map(|t| t.expose().to_owned()));
        secrets
    }

    pub fn from_env() -> Result<LoggerSettings, ConfigError> {
        LoggerSettings::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup };
        Ok(LoggerSettings {
            host: env.string("HOST", "127.0.0.1")?,
            port: env.int("PORT", 8000, 0, 65_535)?,
            http_threads: env.int("HTTP_THREADS", 2 * cpus(), 1, 1024)?,
            max_body_bytes: env.int("MAX_BODY_BYTES", 65_536, 1, 1 << 30)?,
            outbox_capacity: env.int("OUTBOX_CAPACITY", 100_000, 1, 100_000_000)?,
            idle_timeout: env
                .int("HTTP_IDLE_TIMEOUT_SECS", 30, 1, 86_400)
                .map(Duration::from_secs)?,
            shutdown_timeout: env.seconds("SHUTDOWN_TIMEOUT_SECS", 10)?,
            amqp: env.amqp(None)?,
            api_token: env.secret("API_TOKEN"),
            log_level: env.log_level()?,
        })
    }
}

impl ProcessorSettings {
    /// What the logs must never show: the broker password and the API token.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = self.amqp.secrets();
        secrets.extend(self.api_token.iter().map(|t| t.expose().to_owned()));
        secrets
    }

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
            shutdown_timeout: env.seconds("SHUTDOWN_TIMEOUT_SECS", 10)?,
            log_level: env.log_level()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn logger_defaults_match_the_contract() {
        let s = LoggerSettings::from_lookup(env(&[])).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8000));
        assert_eq!(s.http_threads, 2 * cpus());
        assert_eq!(s.max_body_bytes, 65_536);
        assert_eq!(s.outbox_capacity, 100_000);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(s.idle_timeout, Duration::from_secs(30));
        assert!(s.amqp.is_none() && s.api_token.is_none());
        assert_eq!(s.log_level, LevelFilter::Info);
    }

    #[test]
    fn processor_defaults_match_the_contract() {
        let s = ProcessorSettings::from_lookup(env(&[])).unwrap();
        assert_eq!(s.amqp.url.expose(), "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(
            (s.amqp.exchange.as_str(), s.amqp.queue.as_str()),
            ("events", "notifications")
        );
        assert_eq!(s.api_url, "http://127.0.0.1:8000");
        assert_eq!((s.prefetch, s.max_attempts, s.threads), (64, 5, 4));
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
            ("MAX_BODY_BYTES", "-1"),
            ("OUTBOX_CAPACITY", "1.5"),
            ("SHUTDOWN_TIMEOUT_SECS", "x"),
            ("LOG_LEVEL", "loud"),
            ("AMQP_EXCHANGE", "amq.direct"),
        ] {
            let err = LoggerSettings::from_lookup(env(&[(var, value), ("AMQP_URL", "amqp://h")]))
                .unwrap_err();
            assert_eq!(err.var, var, "{var}={value}");
        }
        let err = ProcessorSettings::from_lookup(env(&[("API_URL", "https://x")])).unwrap_err();
        assert_eq!(err.var, "API_URL");
        let err = ProcessorSettings::from_lookup(env(&[("PREFETCH", "0")])).unwrap_err();
        assert_eq!(err.var, "PREFETCH");
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
        assert_eq!(
            amqp.secrets(),
            vec!["hun%40ter2".to_owned(), "hun@ter2".to_owned()]
        );
    }

    #[test]
    fn empty_means_unset() {
        let s = LoggerSettings::from_lookup(env(&[("PORT", ""), ("API_TOKEN", " ")])).unwrap();
        assert_eq!(s.port, 8000);
        assert!(s.api_token.is_none());
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let text = help("event-logger", "x", LOGGER_VARS);
        for v in LOGGER_VARS {
            let row = text
                .lines()
                .find(|l| l.trim_start().starts_with(v.name))
                .unwrap();
            assert!(row.contains(v.default), "{row}");
        }
    }
}
