//! What both services share about RabbitMQ: connecting, the topology of `openapi/API.md`, the message
//! format, and the reconnect backoff.

use std::time::Duration;

use amiquip::{
    AmqpProperties, AmqpValue, Channel, Connection, ExchangeDeclareOptions, ExchangeType,
    FieldTable, Publish, QueueDeclareOptions,
};

use crate::shared::env::{Secret, redact_url};
use crate::shared::event::Event;

/// Routing key of "event created" messages.
pub const ROUTING_KEY: &str = "event.created";

/// How long opening a connection may take when the URL does not say (`connection_timeout`).
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Opens a plain-TCP connection. Without a `connection_timeout` in the URL, amiquip would wait
/// forever on a peer that accepts TCP but never speaks AMQP, so one is added.
pub fn connect(settings: &AmqpSettings) -> amiquip::Result<Connection> {
    let mut url = settings.url.expose().to_owned();
    if !url.contains("connection_timeout=") {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("connection_timeout={CONNECT_TIMEOUT_MS}"));
    }
    Connection::insecure_open(&url)
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
/// bound with [`ROUTING_KEY`] whose rejected messages go to a durable fanout `<exchange>.dlx`
/// bound to a durable `<queue>.dead`.
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
    let mut arguments = FieldTable::default();
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
        ROUTING_KEY,
        FieldTable::default(),
    )?;
    channel.queue_declare(
        names.dead_letter_queue.as_str(),
        QueueDeclareOptions {
            durable: true,
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

/// Publishes `event` to `exchange`, `mandatory`: a message no queue is bound for comes back as
/// a `basic.return` (on the channel's return listener, before its confirm) instead of being
/// dropped. Confirms, if enabled, arrive on the channel's confirm listener.
pub fn publish(channel: &Channel, exchange: &str, event: &Event) -> amiquip::Result<()> {
    let (body, properties) = message(event);
    let mut publish = Publish::with_properties(&body, ROUTING_KEY, properties);
    publish.mandatory = true;
    channel.basic_publish(exchange, publish)
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

/// Why a message body is not an event.
#[derive(Debug)]
pub struct MessageError(serde_json::Error);

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a valid Event: {}", self.0)
    }
}

impl std::error::Error for MessageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Reads a message body as the event it carries.
pub fn parse_message(body: &[u8]) -> Result<Event, MessageError> {
    serde_json::from_slice(body).map_err(MessageError)
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
    fn only_valid_events_parse() {
        let event = crate::shared::event::sample("u", "d");
        let body = serde_json::to_vec(&event).unwrap();
        assert_eq!(parse_message(&body).unwrap(), event);
        for bad in [&b"not json"[..], b"{}", br#"{"event_id":"x"}"#, b""] {
            assert!(parse_message(bad).is_err());
        }
    }
}
