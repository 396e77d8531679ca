//! Reading settings from the environment: the typed reader both services' settings use, the
//! variables table that `--help` prints, and the start-up rule for a bad value.
//!
//! Each service lists its variables in one table (`logger::settings::LOGGER_VARS`,
//! `processor::settings::PROCESSOR_VARS`). A bad value is a [`ConfigError`] naming the
//! variable; the binaries print it on one line and exit with code 2. An empty variable counts
//! as unset. Secret values (`AMQP_URL`, `API_TOKEN`) are never echoed in errors and are kept in
//! [`Secret`], whose `Debug` hides them.

use std::time::Duration;

use log::LevelFilter;

use crate::shared::amqp::{AmqpSettings, QueueType};
use crate::shared::tls::CaFile;

/// One documented environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

pub(crate) const fn var(name: &'static str, default: &'static str, meaning: &'static str) -> Var {
    Var {
        name,
        default,
        meaning,
    }
}

pub(crate) const AMQP_EXCHANGE: Var =
    var("AMQP_EXCHANGE", "events", "exchange name (direct, durable)");
pub(crate) const AMQP_QUEUE: Var = var("AMQP_QUEUE", "notifications", "queue name (durable)");
pub(crate) const AMQP_ROUTING_KEY: Var = var(
    "AMQP_ROUTING_KEY",
    "event.created",
    "routing key of the messages and of the queue's binding",
);
pub(crate) const AMQP_QUEUE_TYPE: Var = var(
    "AMQP_QUEUE_TYPE",
    "classic",
    "classic or quorum (replicated across a cluster): type of the queue and of its dead-letter queue",
);
pub(crate) const AMQP_TLS_CA_FILE: Var = var(
    "AMQP_TLS_CA_FILE",
    "unset (the system's CAs)",
    "PEM file of CAs trusted for amqps:// beside the system's",
);
pub(crate) const API_TOKEN: Var = var(
    "API_TOKEN",
    "unset (no authentication)",
    "bearer token required on /events routes",
);
pub(crate) const SHUTDOWN_TIMEOUT: Var = var(
    "SHUTDOWN_TIMEOUT_SECS",
    "10",
    "on SIGINT/SIGTERM, how long to finish in-flight work",
);
pub(crate) const LOG_LEVEL: Var = var(
    "LOG_LEVEL",
    "info",
    "off, error, warn, info, debug or trace (logs go to stderr)",
);

/// What a binary does with its command line and environment before it runs: `--help` (or
/// `-h`) prints the variables and exits 0; a bad setting prints one line naming it and exits 2
/// (`openapi/API.md`). `Err` holds the exit code.
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

/// `--help` text: usage and the variables table.
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

/// A string that must not be logged: `Debug` and `Display` print `***`; only [`Secret::expose`]
/// gives the value, to the code that sends it.
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
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
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

/// Reads variables through a lookup function, so tests need not touch the process
/// environment.
pub(crate) struct Env<F: Fn(&str) -> Option<String>> {
    pub(crate) lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    pub(crate) fn string(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
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
    pub(crate) fn int<T>(
        &self,
        name: &'static str,
        default: T,
        min: u64,
        max: u64,
    ) -> Result<T, ConfigError>
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

    pub(crate) fn seconds(
        &self,
        name: &'static str,
        default: u64,
    ) -> Result<Duration, ConfigError> {
        self.int(name, default, 0, 86_400).map(Duration::from_secs)
    }

    /// Trimmed, as the token a client presents is: a stray space in a `.env` file must not
    /// make every request (and every processor `PUT`) fail with `401`.
    pub(crate) fn secret(&self, name: &'static str) -> Option<Secret> {
        self.get(name).map(|s| Secret(s.trim().to_owned()))
    }

    pub(crate) fn log_level(&self) -> Result<LevelFilter, ConfigError> {
        let Some(text) = self.get("LOG_LEVEL") else {
            return Ok(LevelFilter::Info);
        };
        text.trim().parse().map_err(|_| ConfigError {
            var: "LOG_LEVEL",
            value: Some(text.clone()),
            problem: "expected one of off, error, warn, info, debug, trace".into(),
        })
    }

    pub(crate) fn amqp(
        &self,
        default_url: Option<&str>,
    ) -> Result<Option<AmqpSettings>, ConfigError> {
        let Some(url) = self.get("AMQP_URL").or(default_url.map(str::to_owned)) else {
            return Ok(None);
        };
        check_url(
            "AMQP_URL",
            &url,
            if url.starts_with("amqps:") {
                "amqps"
            } else {
                "amqp"
            },
            "expected amqp://user:password@host:port/vhost or amqps://...",
            true,
        )?;
        let options = crate::shared::amqp::parse_url(&url).map_err(|problem| ConfigError {
            var: "AMQP_URL",
            value: None,
            problem,
        })?;
        Ok(Some(AmqpSettings {
            url: Secret(url),
            exchange: self.name("AMQP_EXCHANGE", "events")?,
            queue: self.name("AMQP_QUEUE", "notifications")?,
            routing_key: self.string("AMQP_ROUTING_KEY", crate::shared::amqp::ROUTING_KEY)?,
            queue_type: self.parsed("AMQP_QUEUE_TYPE", QueueType::default())?,
            tls_ca: self.ca_file(options.tls)?,
        }))
    }

    /// A value read with its type's `FromStr` (whose error is the problem to report).
    pub(crate) fn parsed<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr<Err = String>,
    {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        text.parse().map_err(|problem| ConfigError {
            var: name,
            value: Some(text),
            problem,
        })
    }

    /// `AMQP_TLS_CA_FILE`, read now: a missing or unreadable file stops the service at start
    /// rather than failing every handshake later. Set with a plain `amqp://` URL it would do
    /// nothing, which is a mistake worth stopping for too.
    fn ca_file(&self, tls: bool) -> Result<Option<CaFile>, ConfigError> {
        let Some(path) = self.get("AMQP_TLS_CA_FILE") else {
            return Ok(None);
        };
        let problem = |problem: String| ConfigError {
            var: "AMQP_TLS_CA_FILE",
            value: Some(path.clone()),
            problem,
        };
        if !tls {
            return Err(problem(
                "set, but AMQP_URL is not amqps:// (a CA file is for TLS only)".into(),
            ));
        }
        CaFile::read(std::path::Path::new(&path))
            .map(Some)
            .map_err(problem)
    }

    /// An exchange or queue name: AMQP short strings, minus room for `.dlx`/`.dead`.
    pub(crate) fn name(&self, var: &'static str, default: &str) -> Result<String, ConfigError> {
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

pub(crate) fn check_url(
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

pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    /// A lookup over fixed pairs, for the settings tests of both services.
    pub(crate) fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }
}
