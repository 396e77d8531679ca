//! What both services share about RabbitMQ: connecting, the topology of `openapi/API.md`, the message
//! format, and the reconnect backoff.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use amiquip::{
    AmqpProperties, AmqpValue, Auth, Channel, Connection, ConnectionOptions, ConnectionTuning,
    ExchangeDeclareOptions, ExchangeType, FieldTable, Publish, QueueDeclareOptions,
};

use crate::shared::env::{Secret, redact_url};
use crate::shared::event::Event;
use crate::shared::tls::{self, CaFile};

/// Routing key of "event created" messages unless `AMQP_ROUTING_KEY` says otherwise.
pub const ROUTING_KEY: &str = "event.created";

/// How long opening a connection may take when the URL does not say (`connection_timeout`).
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// TCP keepalive: first probe after this much idleness (heartbeats are the main detector; this
/// catches a peer that vanished while heartbeats are off).
const KEEPALIVE_TIME: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// What `AMQP_URL` says, parsed once and checked at settings time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlOptions {
    /// `amqps://`: TLS over the TCP connection, the certificate checked against `host`.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// `heartbeat` query parameter, seconds (`None`: amiquip's 60 s, or the server's if lower).
    pub heartbeat: Option<u16>,
    /// `connection_timeout` query parameter (ms), for the TCP connect and the AMQP handshake.
    pub connection_timeout: Duration,
    /// `channel_max` query parameter.
    pub channel_max: Option<u16>,
}

/// The query parameters [`parse_url`] accepts.
pub const URL_PARAMETERS: &[&str] = &["heartbeat", "connection_timeout", "channel_max"];

/// Parses an `amqp[s]://user:password@host:port/vhost?heartbeat=N&connection_timeout=MS&channel_max=N`
/// URL (RabbitMQ's URI spec: user and password default to `guest`, the port to 5672, or 5671
/// for `amqps`, an absent vhost to `/`; all percent-decoded). The error never contains the
/// password.
pub fn parse_url(text: &str) -> Result<UrlOptions, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    let (tls, default_port) = match url.scheme() {
        "amqp" => (false, 5672),
        "amqps" => (true, 5671),
        other => return Err(format!("scheme {other:?}: expected amqp or amqps")),
    };
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => return Err("no host".into()),
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "percent-encoding that is not UTF-8".to_owned())
    };
    let user = match url.username() {
        "" => "guest".to_owned(),
        user => decode(user)?,
    };
    let password = match url.password() {
        None => "guest".to_owned(),
        Some(password) => decode(password)?,
    };
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    if path.contains('/') {
        return Err("more than one path segment (the vhost is one segment; write / as %2f)".into());
    }
    let vhost = if path.is_empty() {
        "/".to_owned()
    } else {
        decode(path)?
    };
    let mut options = UrlOptions {
        tls,
        host,
        port: url.port().unwrap_or(default_port),
        user,
        password,
        vhost,
        heartbeat: None,
        connection_timeout: Duration::from_millis(CONNECT_TIMEOUT_MS),
        channel_max: None,
    };
    for (key, value) in url.query_pairs() {
        let number = |max: u64| {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{key}={value:?}: expected a whole number from 0 to {max}"))
        };
        match key.as_ref() {
            "heartbeat" => options.heartbeat = Some(number(u16::MAX.into())? as u16),
            "channel_max" => options.channel_max = Some(number(u16::MAX.into())? as u16),
            "connection_timeout" => {
                options.connection_timeout = Duration::from_millis(number(86_400_000)?.max(1))
            }
            other => {
                return Err(format!(
                    "unknown query parameter {other:?} (known: {})",
                    URL_PARAMETERS.join(", ")
                ));
            }
        }
    }
    Ok(options)
}

/// Opens a connection, over TLS for `amqps://`. The TCP connection is ours (amiquip's would not
/// set `TCP_NODELAY`, and small AMQP frames would wait for delayed ACKs): resolved, connected
/// with the `connection_timeout` (5 s by default: without one a peer that accepts TCP but never
/// speaks AMQP would hang us), `TCP_NODELAY`, TCP keepalive; then the TLS handshake, if any, and
/// the AMQP handshake.
pub fn connect(settings: &AmqpSettings) -> amiquip::Result<Connection> {
    let shown = || url::Url::parse(&settings.display_url()).expect("a redacted URL still parses");
    let io = |source: std::io::Error| amiquip::Error::FailedToConnect {
        url: shown(),
        source,
    };
    let options = parse_url(settings.url.expose())
        .map_err(|why| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, why)))?;
    let addrs: Vec<SocketAddr> = (options.host.as_str(), options.port)
        .to_socket_addrs()
        .map_err(|source| amiquip::Error::ResolveUrlToSocketAddr {
            url: shown(),
            source,
        })?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match open_tcp(addr, options.connection_timeout) {
            Ok(stream) => return handshake(stream, &options, settings),
            Err(e) => last = Some(io(e)),
        }
    }
    Err(last.unwrap_or_else(|| amiquip::Error::UrlNoSocketAddrs { url: shown() }))
}

/// The TLS handshake (for `amqps`) and the AMQP handshake on a connected `stream`.
fn handshake(
    stream: mio::net::TcpStream,
    options: &UrlOptions,
    settings: &AmqpSettings,
) -> amiquip::Result<Connection> {
    let mut amqp = ConnectionOptions::<Auth>::default()
        .auth(Auth::Plain {
            username: options.user.clone(),
            password: options.password.clone(),
        })
        .virtual_host(options.vhost.clone())
        .connection_timeout(Some(options.connection_timeout))
        .information(Some(format!(
            "{} {}",
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION")
        )));
    if let Some(heartbeat) = options.heartbeat {
        amqp = amqp.heartbeat(heartbeat);
    }
    if let Some(channel_max) = options.channel_max {
        amqp = amqp.channel_max(channel_max);
    }
    if !options.tls {
        return Connection::insecure_open_stream(stream, amqp, ConnectionTuning::default());
    }
    let connector = tls::connector(settings.tls_ca.as_ref())
        .map_err(|source| amiquip::Error::CreateTlsConnector { source })?;
    Connection::open_tls_stream(
        connector,
        &options.host,
        stream,
        amqp,
        ConnectionTuning::default(),
    )
}

fn open_tcp(addr: &SocketAddr, timeout: Duration) -> std::io::Result<mio::net::TcpStream> {
    let stream = std::net::TcpStream::connect_timeout(addr, timeout)?;
    stream.set_nodelay(true)?;
    socket2::SockRef::from(&stream).set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_TIME)
            .with_interval(KEEPALIVE_INTERVAL),
    )?;
    mio::net::TcpStream::from_stream(stream)
}

/// How often a problem that lasts is logged again.
pub const REMINDER_PERIOD: Duration = Duration::from_secs(60);

/// A failed attempt to connect and declare, as an operator should read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub level: log::Level,
    /// Same kind as the previous failure: no new log line (only the reminder).
    pub kind: &'static str,
    /// The log line.
    pub line: String,
    /// What `/health` shows as `broker_error`.
    pub short: String,
}

/// Reads an error from [`connect`] or [`declare`]: broker unreachable (`warn`), bad credentials
/// (`error`, with a hint) or an object that exists with other arguments (`error`, naming it,
/// our arguments and the remedy).
pub fn classify(error: &amiquip::Error, settings: &AmqpSettings) -> Failure {
    let text = error.to_string();
    let (code, message) = match error {
        amiquip::Error::ServerClosedConnection { code, message }
        | amiquip::Error::ServerClosedChannel { code, message, .. } => (*code, message.as_str()),
        amiquip::Error::InvalidCredentials => (403, "ACCESS_REFUSED (invalid credentials)"),
        _ => (0, ""),
    };
    if code == 403 || message.contains("ACCESS_REFUSED") {
        return Failure {
            level: log::Level::Error,
            kind: "access-refused",
            line: format!(
                "cannot connect: RabbitMQ at {} refused the login ({message}): check the user and password in \
                 AMQP_URL and that the user may access the vhost; retrying with backoff",
                settings.display_url()
            ),
            short: message.to_owned(),
        };
    }
    if let amiquip::Error::TlsHandshake { source } = error {
        return Failure {
            level: log::Level::Error,
            kind: "tls-handshake",
            line: format!(
                "cannot connect: the TLS handshake with RabbitMQ at {} failed ({source}): {}; \
                 retrying with backoff",
                settings.display_url(),
                tls::handshake_hint(settings.tls_ca.as_ref())
            ),
            short: format!("TLS handshake failed: {source}"),
        };
    }
    if code == 406 || message.contains("PRECONDITION_FAILED") {
        let names = Names::of(settings);
        let (object, ours) = if let Some(name) = quoted_after(message, "for queue '") {
            let kind = settings.queue_type.as_str();
            let ours = if name == names.dead_letter_queue {
                format!("durable, x-queue-type={kind}")
            } else {
                format!(
                    "durable, x-queue-type={kind}, x-dead-letter-exchange={}",
                    names.dead_letter_exchange
                )
            };
            (format!("queue '{name}'"), ours)
        } else if let Some(name) = quoted_after(message, "for exchange '") {
            let ours = if name == names.dead_letter_exchange {
                "fanout, durable"
            } else {
                "direct, durable"
            };
            (format!("exchange '{name}'"), ours.to_owned())
        } else {
            (
                "an exchange or queue".to_owned(),
                "see openapi/API.md, Topology".to_owned(),
            )
        };
        // A queue of the other type (classic vs quorum) cannot be converted in place.
        let also = if message.contains("'x-queue-type'") {
            "Set AMQP_QUEUE_TYPE to the existing queue's type, or move its messages and recreate it. "
        } else {
            ""
        };
        return Failure {
            level: log::Level::Error,
            kind: "precondition-failed",
            line: format!(
                "cannot set up the topology: RabbitMQ refused to declare {object}: it exists with other arguments than ours \
                 ({ours}): {message}. {also}Choose other names with AMQP_EXCHANGE/AMQP_QUEUE, or delete \
                 the old {object} (rabbitmqctl delete_queue / delete_exchange); retrying with backoff"
            ),
            short: format!("{object} exists with other arguments: {message}"),
        };
    }
    Failure {
        level: log::Level::Warn,
        kind: "unavailable",
        line: format!(
            "RabbitMQ unavailable (cannot connect: {text}) at {}; retrying with backoff",
            settings.display_url()
        ),
        short: text,
    }
}

fn quoted_after(text: &str, prefix: &str) -> Option<String> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    Some(rest[..rest.find('\'')?].to_owned())
}

/// Logs failed attempts the way an operator wants them: one line when the problem starts or
/// changes, a reminder every [`REMINDER_PERIOD`] while it lasts, `debug` otherwise.
#[derive(Debug, Default)]
pub struct Reporter {
    /// The current problem's kind, when it was last logged, and attempts since.
    current: Option<(&'static str, std::time::Instant, u32)>,
}

impl Reporter {
    pub fn failed(&mut self, failure: &Failure) {
        match &mut self.current {
            Some((kind, logged, attempts)) if *kind == failure.kind => {
                *attempts += 1;
                if logged.elapsed() >= REMINDER_PERIOD {
                    log::log!(
                        failure.level,
                        "still failing after {attempts} attempts: {}",
                        failure.line
                    );
                    *logged = std::time::Instant::now();
                } else {
                    log::debug!("RabbitMQ attempt {attempts} failed: {}", failure.line);
                }
            }
            _ => {
                log::log!(failure.level, "{}", failure.line);
                self.current = Some((failure.kind, std::time::Instant::now(), 1));
            }
        }
    }

    /// The problem is over (connected, or a session ran and ended otherwise).
    pub fn reset(&mut self) {
        self.current = None;
    }
}

/// What kind of queues [`declare`] creates (`AMQP_QUEUE_TYPE`): RabbitMQ's default `classic`, or
/// `quorum`, replicated across the nodes of a cluster (a single node serves it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
}

impl QueueType {
    pub const NAMES: &'static str = "classic or quorum";

    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(text: &str) -> Result<QueueType, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "classic" => Ok(QueueType::Classic),
            "quorum" => Ok(QueueType::Quorum),
            _ => Err(format!("expected {}", QueueType::NAMES)),
        }
    }
}

/// Names of everything [`declare`] creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub exchange: String,
    pub queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
}

impl Names {
    pub fn of(settings: &AmqpSettings) -> Names {
        Names {
            exchange: settings.exchange.clone(),
            queue: settings.queue.clone(),
            dead_letter_exchange: format!("{}.dlx", settings.exchange),
            dead_letter_queue: format!("{}.dead", settings.queue),
        }
    }
}

/// Declares the topology of `openapi/API.md`, idempotently: a durable direct exchange, a durable queue
/// bound with the routing key (`AMQP_ROUTING_KEY`) whose rejected messages go to a durable fanout `<exchange>.dlx`
/// bound to a durable `<queue>.dead`. Both queues are of `AMQP_QUEUE_TYPE`, always named in
/// `x-queue-type` (so that a queue of the other type is a `406`, not silently kept); neither is
/// exclusive or auto-delete, which a quorum queue could not be.
pub fn declare(channel: &Channel, settings: &AmqpSettings) -> amiquip::Result<Names> {
    let names = Names::of(settings);
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel.exchange_declare(
        ExchangeType::Direct,
        names.exchange.as_str(),
        durable.clone(),
    )?;
    channel.exchange_declare(
        ExchangeType::Fanout,
        names.dead_letter_exchange.as_str(),
        durable,
    )?;
    let mut arguments = queue_arguments(settings.queue_type);
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AmqpValue::LongString(names.dead_letter_exchange.clone()),
    );
    channel.queue_declare(
        names.queue.as_str(),
        QueueDeclareOptions {
            durable: true,
            arguments,
            ..QueueDeclareOptions::default()
        },
    )?;
    channel.queue_bind(
        names.queue.as_str(),
        names.exchange.as_str(),
        settings.routing_key.as_str(),
        FieldTable::default(),
    )?;
    channel.queue_declare(
        names.dead_letter_queue.as_str(),
        QueueDeclareOptions {
            durable: true,
            arguments: queue_arguments(settings.queue_type),
            ..QueueDeclareOptions::default()
        },
    )?;
    channel.queue_bind(
        names.dead_letter_queue.as_str(),
        names.dead_letter_exchange.as_str(),
        "",
        FieldTable::default(),
    )?;
    Ok(names)
}

fn queue_arguments(queue_type: QueueType) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AmqpValue::LongString(queue_type.as_str().to_owned()),
    );
    arguments
}

/// The message for `event`: its JSON, persistent, `application/json`, `message_id` = its id.
pub fn message(event: &Event) -> (Vec<u8>, AmqpProperties) {
    // Serialising an `Event` cannot fail: every field is a string or a UUID.
    let body = serde_json::to_vec(event).unwrap_or_default();
    let properties = AmqpProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(event.event_id.to_string());
    (body, properties)
}

/// Publishes `event` to the exchange with the routing key of `settings`, `mandatory`: a message no queue is bound for comes back as
/// a `basic.return` (on the channel's return listener, before its confirm) instead of being
/// dropped. Confirms, if enabled, arrive on the channel's confirm listener.
pub fn publish(channel: &Channel, settings: &AmqpSettings, event: &Event) -> amiquip::Result<()> {
    let (body, properties) = message(event);
    let mut publish = Publish::with_properties(&body, settings.routing_key.as_str(), properties);
    publish.mandatory = true;
    channel.basic_publish(settings.exchange.as_str(), publish)
}

/// Capped exponential backoff: 100 ms, 200 ms, ... up to 10 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    /// The longest delay between two attempts.
    pub const CAP: Duration = Duration::from_secs(10);

    pub fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::CAP);
        delay
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// Where the broker is and what to call things there.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub url: Secret,
    pub exchange: String,
    pub queue: String,
    /// Routing key of the messages and of the queue's binding (`AMQP_ROUTING_KEY`).
    pub routing_key: String,
    /// Type of both queues (`AMQP_QUEUE_TYPE`).
    pub queue_type: QueueType,
    /// CAs trusted for `amqps://` beside the system's (`AMQP_TLS_CA_FILE`).
    pub tls_ca: Option<CaFile>,
}

impl AmqpSettings {
    /// The URL with its password replaced by `***`, for logs.
    pub fn display_url(&self) -> String {
        redact_url(self.url.expose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn message_carries_the_event_json_and_properties() {
        let event = crate::shared::event::sample("u", "d");
        let (body, props) = message(&event);
        assert_eq!(serde_json::from_slice::<Event>(&body).unwrap(), event);
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(
            props.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(
            props.message_id().as_ref().map(|s| s.to_string()),
            Some(event.event_id.to_string())
        );
    }

    #[test]
    fn url_options_are_parsed_with_rabbitmq_defaults() {
        let o = parse_url("amqp://h").unwrap();
        assert_eq!(
            (
                o.host.as_str(),
                o.port,
                o.user.as_str(),
                o.password.as_str()
            ),
            ("h", 5672, "guest", "guest")
        );
        assert_eq!(o.vhost, "/");
        assert_eq!(o.connection_timeout, Duration::from_millis(5_000));
        assert_eq!((o.heartbeat, o.channel_max), (None, None));

        let o = parse_url(
            "amqp://us%40r:p%3Ass@[::1]:5673/my%2fvhost?heartbeat=5&connection_timeout=250&channel_max=8",
        )
        .unwrap();
        assert_eq!((o.host.as_str(), o.port), ("::1", 5673));
        assert_eq!((o.user.as_str(), o.password.as_str()), ("us@r", "p:ss"));
        assert_eq!(o.vhost, "my/vhost");
        assert_eq!(o.heartbeat, Some(5));
        assert_eq!(o.connection_timeout, Duration::from_millis(250));
        assert_eq!(o.channel_max, Some(8));
        assert_eq!(parse_url("amqp://h/%2f").unwrap().vhost, "/");
        assert!(!parse_url("amqp://h").unwrap().tls);
        let o = parse_url("amqps://broker.example.com").unwrap();
        assert!(o.tls);
        assert_eq!((o.host.as_str(), o.port), ("broker.example.com", 5671));
        assert_eq!(parse_url("amqps://h:5672").unwrap().port, 5672);
    }

    #[test]
    fn queue_types_parse_in_any_case_and_nothing_else_does() {
        assert_eq!("classic".parse(), Ok(QueueType::Classic));
        assert_eq!(" Quorum ".parse(), Ok(QueueType::Quorum));
        for bad in ["", "stream", "quorum,classic"] {
            assert_eq!(
                bad.parse::<QueueType>(),
                Err("expected classic or quorum".to_owned())
            );
        }
        assert_eq!(QueueType::default(), QueueType::Classic);
    }

    #[test]
    fn a_406_on_the_queue_type_says_to_set_amqp_queue_type() {
        let error = amiquip::Error::ServerClosedChannel {
            channel_id: 1,
            code: 406,
            message: "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'test' in \
                      vhost '/': received 'quorum' but current is 'classic'"
                .into(),
        };
        let mut settings = settings();
        settings.queue_type = QueueType::Quorum;
        let f = classify(&error, &settings);
        for part in [
            "queue 'test'",
            "x-queue-type=quorum",
            "Set AMQP_QUEUE_TYPE to the existing queue's type",
        ] {
            assert!(f.line.contains(part), "{part}: {}", f.line);
        }
        let other = classify(
            &amiquip::Error::ServerClosedChannel {
                channel_id: 1,
                code: 406,
                message: "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'test'".into(),
            },
            &settings,
        );
        assert!(!other.line.contains("AMQP_QUEUE_TYPE"), "{}", other.line);
    }

    #[test]
    fn bad_url_options_are_errors_that_hide_the_password() {
        let err = parse_url("amqp://u:s3cret@h/?heartbeet=5").unwrap_err();
        assert_eq!(
            err,
            "unknown query parameter \"heartbeet\" (known: heartbeat, connection_timeout, channel_max)"
        );
        for bad in [
            "amqp://u:s3cret@h/?heartbeat=70000",
            "amqp://u:s3cret@h/?channel_max=x",
            "amqp://u:s3cret@h/?connection_timeout=-1",
            "amqp://u:s3cret@h/a/b",
            "amqpx://u:s3cret@h/",
            "http://u:s3cret@h/",
        ] {
            let err = parse_url(bad).unwrap_err();
            assert!(!err.contains("s3cret"), "{bad}: {err}");
        }
    }

    fn settings() -> AmqpSettings {
        AmqpSettings {
            url: Secret::new("amqp://u:s3cret@h/%2f"),
            exchange: "events".into(),
            queue: "test".into(),
            routing_key: ROUTING_KEY.into(),
            queue_type: QueueType::Classic,
            tls_ca: None,
        }
    }

    #[test]
    fn a_406_names_the_object_our_arguments_and_the_remedy() {
        let error = amiquip::Error::ServerClosedChannel {
            channel_id: 1,
            code: 406,
            message:
                "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'test' in vhost '/': \
                      received 'true' but current is 'false'"
                    .into(),
        };
        let f = classify(&error, &settings());
        assert_eq!(
            (f.level, f.kind),
            (log::Level::Error, "precondition-failed")
        );
        for part in [
            "queue 'test'",
            "durable, x-queue-type=classic, x-dead-letter-exchange=events.dlx",
            "AMQP_EXCHANGE/AMQP_QUEUE",
            "delete",
        ] {
            assert!(f.line.contains(part), "{part}: {}", f.line);
        }
        assert!(
            f.short
                .starts_with("queue 'test' exists with other arguments")
        );
    }

    #[test]
    fn refused_logins_are_errors_and_the_rest_warnings_without_the_password() {
        let f = classify(&amiquip::Error::InvalidCredentials, &settings());
        assert_eq!((f.level, f.kind), (log::Level::Error, "access-refused"));
        assert!(f.line.contains("check the user and password in AMQP_URL"));
        let f = classify(&amiquip::Error::UnexpectedSocketClose, &settings());
        assert_eq!((f.level, f.kind), (log::Level::Warn, "unavailable"));
        assert!(!f.line.contains("s3cret"), "{}", f.line);
    }
}
