//! The Notification Processor: consumes the notification queue, "sends" each notification
//! (one line on stdout) and marks the event `Processed` through the logger's API.
//!
//! `PROCESSOR_THREADS` consumer threads share one connection, each with its own channel and
//! `PREFETCH`, so one slow `PUT` holds up only its own thread. A message is acked only after
//! the `PUT` succeeded; what happens otherwise is decided by the pure function `decide`.
//! Delivery is at least once: a message redelivered after a crash is printed again.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amiquip::{Channel, Consumer, ConsumerMessage, ConsumerOptions, Delivery};
use crossbeam_channel::RecvTimeoutError;

use super::api_client::ApiClient;
use super::decide::{Outcome, decide};
use super::metrics;
use super::settings::ProcessorSettings;
use crate::shared::amqp::{self, Backoff};
use crate::shared::env::redact_url;
use crate::shared::event::Event;
use crate::shared::notification;
use crate::shared::shutdown::Shutdown;

/// Where notification lines go (stdout in the binary, a buffer in tests).
pub(crate) type Output = Arc<Mutex<Box<dyn Write + Send>>>;

/// The processor; [`Processor::run`] blocks until the shutdown signal.
pub(crate) struct Processor {
    settings: ProcessorSettings,
    api: ApiClient,
    out: Output,
    shutdown: Shutdown,
}

enum SessionError {
    Connect(Box<amiquip::Error>),
    Lost { why: ConsumeError, lasted: Duration },
}

/// Why a consumer thread stopped consuming before the shutdown signal.
#[derive(Debug)]
enum ConsumeError {
    /// The broker refused a command, or the connection failed under it.
    Amqp(Box<amiquip::Error>),
    /// An ack or nack could not be sent.
    Ack(Box<amiquip::Error>),
    /// The broker cancelled the consumer (the queue was deleted, say).
    Ended(String),
    ConnectionLost,
    Panicked,
}

impl std::fmt::Display for ConsumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsumeError::Amqp(e) => write!(f, "{e}"),
            ConsumeError::Ack(e) => write!(f, "ack/nack failed: {e}"),
            ConsumeError::Ended(how) => write!(f, "consumer ended: {how}"),
            ConsumeError::ConnectionLost => f.write_str("connection lost"),
            ConsumeError::Panicked => f.write_str("a consumer thread panicked"),
        }
    }
}

impl Processor {
    pub(crate) fn new(settings: ProcessorSettings, shutdown: Shutdown, out: Output) -> Processor {
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
    pub(crate) fn run(&self) {
        let mut backoff = Backoff::new();
        let mut reporter = amqp::Reporter::default();
        while !self.shutdown.is_triggered() {
            match self.session() {
                Ok(()) => {}
                Err(SessionError::Connect(why)) => {
                    // Once per kind of problem (unreachable, login refused, 406), then reminders.
                    reporter.failed(&amqp::classify(&why, &self.settings.amqp));
                    self.shutdown.wait_timeout(backoff.next_delay());
                }
                Err(SessionError::Lost { why, lasted }) => {
                    log::warn!("lost the RabbitMQ connection ({why}); reconnecting");
                    metrics::RECONNECTS.inc();
                    reporter.reset();
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
        let connect = |e| SessionError::Connect(Box::new(e));
        let mut connection = amqp::connect(&self.settings.amqp).map_err(connect)?;
        let setup = connection.open_channel(None).map_err(connect)?;
        amqp::declare(&setup, &self.settings.amqp).map_err(connect)?;
        let _ = setup.close();
        let channels = (0..self.settings.threads)
            .map(|_| connection.open_channel(None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(connect)?;
        let stop = AtomicBool::new(false);
        let attached = AtomicUsize::new(0);
        let result = std::thread::scope(|scope| {
            let workers: Vec<_> = channels
                .into_iter()
                .map(|channel| {
                    let (stop, attached) = (&stop, &attached);
                    scope.spawn(move || {
                        let result = self.consume(channel, stop, attached);
                        stop.store(true, Ordering::Release);
                        result
                    })
                })
                .collect();
            // Join every worker before looking at the results, then report the first failure.
            let results: Vec<Result<(), ConsumeError>> = workers
                .into_iter()
                .map(|w| w.join().unwrap_or(Err(ConsumeError::Panicked)))
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

    /// Logged once every consumer is attached to the queue: the line tests and operators
    /// take as "ready".
    fn log_consuming(&self) {
        log::info!(
            "connected to RabbitMQ at {}; consuming {} with {} threads, prefetch {} each, API {}",
            self.settings.amqp.display_url(),
            self.settings.amqp.queue,
            self.settings.threads,
            self.settings.prefetch,
            redact_url(&self.settings.api_url)
        );
    }

    fn consume(
        &self,
        channel: Channel,
        stop: &AtomicBool,
        attached: &AtomicUsize,
    ) -> Result<(), ConsumeError> {
        channel
            .qos(0, self.settings.prefetch, false)
            .map_err(|e| ConsumeError::Amqp(Box::new(e)))?;
        let consumer = channel
            .basic_consume(
                self.settings.amqp.queue.as_str(),
                ConsumerOptions::default(),
            )
            .map_err(|e| ConsumeError::Amqp(Box::new(e)))?;
        if attached.fetch_add(1, Ordering::AcqRel) + 1 == self.settings.threads {
            self.log_consuming();
        }
        loop {
            if self.shutdown.is_triggered() || stop.load(Ordering::Acquire) {
                // Prefetched, unhandled messages go back to the queue when the channel closes;
                // they were not printed, so nothing is sent twice.
                let _ = consumer.cancel();
                // Wait for the broker's cancel-ok before dropping the receiver: deliveries still
                // on their way to a dropped receiver make amiquip log an internal error.
                // On shutdown, what arrives meanwhile is not handled; closing the channel
                // requeues it. When a sibling stopped instead (its consumer cancelled because
                // the queue was deleted, say), what is prefetched here is handled: requeued into
                // a deleted queue, it would be lost.
                while let Ok(message) = consumer.receiver().recv_timeout(Duration::from_secs(1)) {
                    match message {
                        ConsumerMessage::Delivery(delivery) if !self.shutdown.is_triggered() => {
                            if self.handle(&consumer, delivery).is_err() {
                                break;
                            }
                        }
                        ConsumerMessage::Delivery(_) => {}
                        _ => break,
                    }
                }
                drop(consumer);
                let _ = channel.close();
                return Ok(());
            }
            match consumer.receiver().recv_timeout(Duration::from_millis(200)) {
                Ok(ConsumerMessage::Delivery(delivery)) => self
                    .handle(&consumer, delivery)
                    .map_err(|e| ConsumeError::Ack(Box::new(e)))?,
                Ok(other) => return Err(ConsumeError::Ended(format!("{other:?}"))),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(ConsumeError::ConnectionLost),
            }
        }
    }

    /// Print, `PUT`, then ack; or retry, or dead-letter, as [`decide`] says.
    fn handle(&self, consumer: &Consumer<'_>, delivery: Delivery) -> amiquip::Result<()> {
        metrics::DELIVERIES.inc();
        let event = match amqp::parse_message(&delivery.body) {
            Ok(event) => event,
            Err(why) => {
                log::warn!(
                    "dead-lettering message {:?}: {why}",
                    delivery.properties.message_id()
                );
                metrics::DEAD_LETTERS.inc();
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
            let answer = metrics::timed(&metrics::API_SECONDS, || {
                self.api.mark_processed(&event.event_id)
            });
            match decide(&answer, attempt, self.settings.max_attempts) {
                Outcome::Ack => return consumer.ack(delivery).inspect(|()| metrics::ACKS.inc()),
                Outcome::DeadLetter(why) => {
                    metrics::DEAD_LETTERS.inc();
                    log::warn!("dead-lettering event {}: {why}", event.event_id);
                    return consumer.nack(delivery, false);
                }
                Outcome::Retry(delay) => {
                    metrics::RETRIES.inc();
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
