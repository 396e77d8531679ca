//! The Notification Processor: consumes the notification queue, "sends" each notification
//! (one line on stdout) and marks the event `Processed` through the logger's API.
//!
//! `PROCESSOR_THREADS` consumer threads share one connection, each with its own channel and
//! `PREFETCH`, so one slow request holds up only its own thread. For each message the event is
//! read from the API (a message says only which event), printed as stored if its status says
//! so, and marked `Processed` at the version read; the message is acked only once that is
//! settled. What each answer means is decided by the pure functions of `decide`; while the API
//! cannot answer, the thread holds its message and waits, logged through the shared `Outage`.
//! Delivery is at least once: a message redelivered after a crash between the line and the
//! `PUT` is printed again.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amiquip::{Channel, Consumer, ConsumerMessage, ConsumerOptions, Delivery};
use crossbeam_channel::RecvTimeoutError;
use uuid::Uuid;

use super::api_client::{ApiAnswer, ApiClient};
use super::decide::{Notice, Outcome, decide, notice};
use super::message::Message;
use super::metrics;
use super::outage::Outage;
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
    outage: Outage,
}

/// How a request to the API ended for a message.
enum Settled<T> {
    Done(T),
    /// An outcome other than success that ends the message's handling (ack or dead-letter).
    Final(Outcome),
    /// The shutdown signal came while waiting to try again.
    Stopping,
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
            outage: Outage::new(redact_url(&settings.api_url)),
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

    /// Read the event, print it if its status says so, `PUT` it `Processed` at the version
    /// read, then ack; or pause, retry or dead-letter, as [`decide`] says.
    fn handle(&self, consumer: &Consumer<'_>, delivery: Delivery) -> amiquip::Result<()> {
        metrics::DELIVERIES.inc();
        let id = match Message::parse(&delivery.body) {
            Ok(message) => message.event_id,
            Err(why) => {
                log::warn!(
                    "dead-lettering message {:?}: {why}",
                    delivery.properties.message_id()
                );
                metrics::DEAD_LETTERS.inc();
                return consumer.nack(delivery, false);
            }
        };
        let stored = match self.settle(&id, "reading", || self.api.read(&id)) {
            Settled::Done(stored) => stored,
            Settled::Final(outcome) => return self.finish(consumer, delivery, &id, outcome),
            Settled::Stopping => return consumer.nack(delivery, true),
        };
        match notice(&stored.event.status) {
            Notice::Send => {}
            Notice::AlreadySent => {
                log::info!("event {id} is Processed already (a redelivery): not notified again");
                return self.ack(consumer, delivery);
            }
            Notice::Skip => {
                log::info!(
                    "event {id} has status {:?}, set by a client: not notified",
                    stored.event.status
                );
                return self.ack(consumer, delivery);
            }
        }
        if let Err(e) = self.print(&stored.event) {
            log::error!("cannot write notification for {id}: {e}");
            self.shutdown.wait_timeout(Duration::from_secs(1));
            return consumer.nack(delivery, true);
        }
        // From here on only the `PUT` is repeated, never the printed line.
        let outcome = match self.settle(&id, "marking", || {
            self.api.mark_processed(&id, &stored.etag)
        }) {
            Settled::Done(()) => Outcome::Ack,
            Settled::Final(outcome) => outcome,
            // Stopping: leave it to the next consumer (it will be printed again).
            Settled::Stopping => return consumer.nack(delivery, true),
        };
        self.finish(consumer, delivery, &id, outcome)
    }

    /// Sends `request` until its answer is final: while the API is unavailable or refuses the
    /// token, pauses with backoff without counting attempts; retries other failures up to
    /// `MAX_ATTEMPTS`.
    fn settle<T>(
        &self,
        id: &Uuid,
        doing: &str,
        mut request: impl FnMut() -> Result<T, ApiAnswer>,
    ) -> Settled<T> {
        let mut attempt = 1;
        let mut pauses = Backoff::new();
        loop {
            let answer = match metrics::timed(&metrics::API_SECONDS, &mut request) {
                Ok(done) => {
                    self.answered();
                    return Settled::Done(done);
                }
                Err(answer) => answer,
            };
            let delay = match decide(&answer, attempt, self.settings.max_attempts) {
                Outcome::Pause(pause) => {
                    if let Some((level, line)) = self.outage.paused(pause, &answer, Instant::now())
                    {
                        log::log!(level, "{line}");
                    }
                    log::debug!("{doing} event {id}: {answer}; pausing");
                    pauses.next_delay()
                }
                Outcome::Retry(delay) => {
                    metrics::RETRIES.inc();
                    self.answered();
                    log::warn!(
                        "{doing} event {id} failed ({answer}), attempt {attempt} of {}; retrying in {delay:?}",
                        self.settings.max_attempts
                    );
                    attempt += 1;
                    delay
                }
                outcome => {
                    self.answered();
                    return Settled::Final(outcome);
                }
            };
            if self.shutdown.wait_timeout(delay) {
                return Settled::Stopping;
            }
        }
    }

    /// The API answered something: ends a pause, if one was on.
    fn answered(&self) {
        if let Some((level, line)) = self.outage.answered(Instant::now()) {
            log::log!(level, "{line}");
        }
    }

    /// Acks or dead-letters a message whose outcome is final.
    fn finish(
        &self,
        consumer: &Consumer<'_>,
        delivery: Delivery,
        id: &Uuid,
        outcome: Outcome,
    ) -> amiquip::Result<()> {
        match outcome {
            Outcome::Changed => {
                log::info!(
                    "event {id} changed since it was read (412): not marked Processed, the \
                     client's update stands"
                );
                self.ack(consumer, delivery)
            }
            Outcome::DeadLetter(why) => {
                log::warn!("dead-lettering the message of event {id}: {why}");
                metrics::DEAD_LETTERS.inc();
                consumer.nack(delivery, false)
            }
            _ => self.ack(consumer, delivery),
        }
    }

    /// Acks a message that needs no more work, and counts it.
    fn ack(&self, consumer: &Consumer<'_>, delivery: Delivery) -> amiquip::Result<()> {
        consumer.ack(delivery).inspect(|()| metrics::ACKS.inc())
    }

    fn print(&self, event: &Event) -> std::io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        notification::send(&mut **out, event)
    }
}
