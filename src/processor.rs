//! The Notification Processor: consumes the notification queue, "sends" each notification
//! (one line on stdout) and marks the event `Processed` through the logger's API.
//!
//! `PROCESSOR_THREADS` consumer threads share one connection, each with its own channel and
//! `PREFETCH`, so one slow `PUT` holds up only its own thread. A message is acked only after
//! the `PUT` succeeded; what happens otherwise is decided by the pure function [`decide`].
//! Delivery is at least once: a message redelivered after a crash is printed again.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amiquip::{Channel, Consumer, ConsumerMessage, ConsumerOptions, Delivery};
use crossbeam_channel::RecvTimeoutError;

use crate::amqp::{self, Backoff};
use crate::api_client::{ApiAnswer, ApiClient};
use crate::config::ProcessorSettings;
use crate::event::Event;
use crate::notification;
use crate::shutdown::Shutdown;

/// What to do with a message after an answer from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ack,
    /// Try the `PUT` again after this delay, the message still unacked.
    Retry(Duration),
    /// Reject without requeue: the broker moves it to the dead-letter queue.
    DeadLetter(String),
}

/// Delay before the `PUT` numbered `attempt + 1`: 500 ms, 1 s, 2 s, ... capped at 10 s.
pub fn retry_delay(attempt: u32) -> Duration {
    let doubled = 500u64.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    Duration::from_millis(doubled.min(10_000))
}

/// The decision after the `attempt`-th `PUT` (1-based) got `answer`.
///
/// `2xx`: ack. `404`: the event does not exist, and never will: dead-letter. `400`/`413`/`422`:
/// the API rejects the request itself, retrying cannot help: dead-letter. Anything else (`5xx`,
/// `401`/`403` from a token being rotated, `429`, no answer): retry with backoff, and
/// dead-letter after `max_attempts`.
pub fn decide(answer: &ApiAnswer, attempt: u32, max_attempts: u32) -> Outcome {
    match answer {
        ApiAnswer::Status(200..=299) => Outcome::Ack,
        ApiAnswer::Status(404) => {
            Outcome::DeadLetter("the API does not know the event (404)".into())
        }
        ApiAnswer::Status(code @ (400 | 413 | 422)) => {
            Outcome::DeadLetter(format!("the API rejected the update (HTTP {code})"))
        }
        _ if attempt >= max_attempts => Outcome::DeadLetter(format!(
            "gave up after {attempt} attempts; last answer: {answer}"
        )),
        _ => Outcome::Retry(retry_delay(attempt)),
    }
}

/// Parses a message body; the error says why it is not a valid Event.
pub fn parse_message(body: &[u8]) -> Result<Event, String> {
    serde_json::from_slice(body).map_err(|e| format!("not a valid Event: {e}"))
}

/// Where notification lines go (stdout in the binary, a buffer in tests).
pub type Output = Arc<Mutex<Box<dyn Write + Send>>>;

/// The processor; [`Processor::run`] blocks until the shutdown signal.
pub struct Processor {
    settings: ProcessorSettings,
    api: ApiClient,
    out: Output,
    shutdown: Shutdown,
}

enum SessionError {
    Connect(String),
    Lost { why: String, lasted: Duration },
}

impl Processor {
    pub fn new(settings: ProcessorSettings, shutdown: Shutdown, out: Output) -> Processor {
        let api = ApiClient::new(
            &settings.api_url,
            settings.api_token.as_ref(),
            Duration::from_secs(10),
        );
        Processor {
            settings,
            api,
            out,
            shutdown,
        }
    }

    /// Consumes until shutdown, reconnecting with capped exponential backoff.
    pub fn run(&self) {
        let mut backoff = Backoff::new();
        let mut failures = 0u32;
        while !self.shutdown.is_triggered() {
            match self.session() {
                Ok(()) => {}
                Err(SessionError::Connect(why)) => {
                    failures += 1;
                    if failures == 1 {
                        log::warn!("cannot reach RabbitMQ ({why}); retrying with backoff");
                    } else {
                        log::debug!("RabbitMQ attempt {failures} failed: {why}");
                    }
                    self.shutdown.wait_timeout(backoff.next_delay());
                }
                Err(SessionError::Lost { why, lasted }) => {
                    log::warn!("lost the RabbitMQ connection ({why}); reconnecting");
                    failures = 0;
                    // A session that fails at once (consume refused, say) must not turn into
                    // a tight loop; one that ran a while starts over from the shortest delay.
                    if lasted > Backoff::CAP {
                        backoff.reset();
                    }
                    self.shutdown.wait_timeout(backoff.next_delay());
                }
            }
        }
        log::info!("notification processor stopped");
    }

    /// One connection: declare, consume on every thread, end when any thread fails or on
    /// shutdown.
    fn session(&self) -> Result<(), SessionError> {
        let started = Instant::now();
        let connect = |e: amiquip::Error| SessionError::Connect(e.to_string());
        let mut connection = amqp::connect(&self.settings.amqp).map_err(connect)?;
        let setup = connection.open_channel(None).map_err(connect)?;
        amqp::declare(&setup, &self.settings.amqp).map_err(connect)?;
        let _ = setup.close();
        let channels = (0..self.settings.threads)
            .map(|_| connection.open_channel(None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(connect)?;
        log::info!(
            "connected to RabbitMQ at {}; consuming {} with {} threads, prefetch {} each, API {}",
            self.settings.amqp.display_url(),
            self.settings.amqp.queue,
            self.settings.threads,
            self.settings.prefetch,
            crate::config::redact_url(&self.settings.api_url)
        );
        let stop = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            let workers: Vec<_> = channels
                .into_iter()
                .map(|channel| {
                    let stop = &stop;
                    scope.spawn(move || {
                        let result = self.consume(channel, stop);
                        stop.store(true, Ordering::Release);
                        result
                    })
                })
                .collect();
            // Join every worker before looking at the results, then report the first failure.
            let results: Vec<Result<(), String>> = workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err("a consumer thread panicked".into()))
                })
                .collect();
            results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
        });
        let _ = connection.close();
        match result {
            // Stopping closes channels under consumers that may still be acking; what they
            // did not ack is redelivered, so this is no connection loss worth reporting.
            Err(why) if self.shutdown.is_triggered() => {
                log::debug!("while stopping: {why}");
                Ok(())
            }
            other => other.map_err(|why| SessionError::Lost {
                why,
                lasted: started.elapsed(),
            }),
        }
    }

    fn consume(&self, channel: Channel, stop: &AtomicBool) -> Result<(), String> {
        channel
            .qos(0, self.settings.prefetch, false)
            .map_err(|e| e.to_string())?;
        let consumer = channel
            .basic_consume(
                self.settings.amqp.queue.as_str(),
                ConsumerOptions::default(),
            )
            .map_err(|e| e.to_string())?;
        loop {
            if self.shutdown.is_triggered() || stop.load(Ordering::Acquire) {
                // Prefetched, unhandled messages go back to the queue when the channel closes;
                // they were not printed, so nothing is sent twice.
                let _ = consumer.cancel();
                // Wait for the broker's cancel-ok before dropping the receiver: deliveries still
                // on their way to a dropped receiver make amiquip log an internal error.
                // What arrives meanwhile is not handled; closing the channel requeues it.
                while let Ok(message) = consumer.receiver().recv_timeout(Duration::from_secs(1)) {
                    if !matches!(message, ConsumerMessage::Delivery(_)) {
                        break;
                    }
                }
                drop(consumer);
                let _ = channel.close();
                return Ok(());
            }
            match consumer.receiver().recv_timeout(Duration::from_millis(200)) {
                Ok(ConsumerMessage::Delivery(delivery)) => self
                    .handle(&consumer, delivery)
                    .map_err(|e| format!("ack/nack failed: {e}"))?,
                Ok(other) => return Err(format!("consumer ended: {other:?}")),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err("connection lost".into()),
            }
        }
    }

    /// Print, `PUT`, then ack; or retry, or dead-letter, as [`decide`] says.
    fn handle(&self, consumer: &Consumer<'_>, delivery: Delivery) -> amiquip::Result<()> {
        let event = match parse_message(&delivery.body) {
            Ok(event) => event,
            Err(why) => {
                log::warn!(
                    "dead-lettering message {:?}: {why}",
                    delivery.properties.message_id()
                );
                return consumer.nack(delivery, false);
            }
        };
        if let Err(e) = self.print(&event) {
            log::error!("cannot write notification for {}: {e}", event.event_id);
            self.shutdown.wait_timeout(Duration::from_secs(1));
            return consumer.nack(delivery, true);
        }
        let mut attempt = 1;
        loop {
            let answer = self.api.mark_processed(&event.event_id);
            match decide(&answer, attempt, self.settings.max_attempts) {
                Outcome::Ack => return consumer.ack(delivery),
                Outcome::DeadLetter(why) => {
                    log::warn!("dead-lettering event {}: {why}", event.event_id);
                    return consumer.nack(delivery, false);
                }
                Outcome::Retry(delay) => {
                    log::warn!(
                        "marking event {} failed ({answer}), attempt {attempt} of {}; retrying in {delay:?}",
                        event.event_id,
                        self.settings.max_attempts
                    );
                    if self.shutdown.wait_timeout(delay) {
                        // Stopping: leave it to the next consumer (it will be printed again).
                        return consumer.nack(delivery, true);
                    }
                    attempt += 1;
                }
            }
        }
    }

    fn print(&self, event: &Event) -> std::io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        notification::send(&mut **out, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_acks_and_permanent_errors_dead_letter_at_once() {
        for code in [200, 201, 204] {
            assert_eq!(decide(&ApiAnswer::Status(code), 1, 5), Outcome::Ack);
        }
        for code in [404, 400, 422, 413] {
            assert!(
                matches!(
                    decide(&ApiAnswer::Status(code), 1, 5),
                    Outcome::DeadLetter(_)
                ),
                "{code}"
            );
        }
    }

    #[test]
    fn transient_errors_retry_until_max_attempts() {
        for answer in [
            ApiAnswer::Status(500),
            ApiAnswer::Status(503),
            ApiAnswer::Status(401),
            ApiAnswer::Unreachable("refused".into()),
        ] {
            assert_eq!(
                decide(&answer, 1, 5),
                Outcome::Retry(Duration::from_millis(500))
            );
            assert_eq!(
                decide(&answer, 4, 5),
                Outcome::Retry(Duration::from_secs(4))
            );
            let Outcome::DeadLetter(why) = decide(&answer, 5, 5) else {
                panic!("attempt 5 of 5 must dead-letter");
            };
            assert!(why.contains("5 attempts"), "{why}");
        }
        assert_eq!(retry_delay(30), Duration::from_secs(10));
    }

    #[test]
    fn only_valid_events_parse() {
        let event = Event::create(
            crate::event::NewEvent::parse(br#"{"user_id":"u","description":"d"}"#).unwrap(),
        );
        let body = serde_json::to_vec(&event).unwrap();
        assert_eq!(parse_message(&body), Ok(event));
        for bad in [&b"not json"[..], b"{}", br#"{"event_id":"x"}"#, b""] {
            assert!(parse_message(bad).is_err());
        }
    }
}
