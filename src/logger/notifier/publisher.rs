//! The RabbitMQ publisher: the logger's one notifier thread when `AMQP_URL` is set.
//!
//! It owns the blocking amiquip connection. Events arrive from the [`outbox`](crate::logger::outbox) in
//! creation order and stay *unconfirmed* (in a queue, in order) until the broker confirms them
//! (publisher confirms); only then is the outbox's pending count lowered. Publishing is
//! pipelined: every event that arrives is published at once and confirms are consumed as they
//! come, so throughput does not pay one round trip per event.
//!
//! Every message is published `mandatory`. One that no queue takes (the queue was deleted, say)
//! comes back as a `basic.return`, which RabbitMQ sends before its confirm: such an event is not
//! delivered, so it stays pending; the publisher re-declares the topology (queue, bindings,
//! dead-letter objects) and publishes it again. An event counts as handed over only when the
//! broker confirmed it *and* did not return it. `/health` counts the returns.
//!
//! Any failure (broker down at start, connection cut, a `Nack`, a confirm that does not come
//! within [`CONFIRM_TIMEOUT`]) closes what is left, reconnects with capped exponential backoff,
//! re-declares the topology and publishes every unconfirmed event again, in order. A
//! republished event may reach the queue twice (delivery is at least once); none is lost while
//! the process lives.

use std::collections::{HashSet, VecDeque};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use amiquip::{Confirm, ConfirmSmoother, Connection, Return};
use crossbeam_channel::{Receiver, RecvTimeoutError, select};

use crate::logger::metrics;
use crate::logger::outbox::{BrokerState, OutboxReceiver};
use crate::shared::amqp::{self, AmqpSettings, Backoff, Reporter};
use crate::shared::event::Event;

/// How long the oldest published event may wait for its confirm before the connection is
/// considered dead.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// At most one `warn` line about returned messages per this period (the rest go to `debug`).
const RETURN_LOG_PERIOD: Duration = Duration::from_secs(60);

/// How often the publisher wakes up to check timeouts when nothing happens.
const TICK: Duration = Duration::from_millis(250);

/// Starts the publisher thread. It ends once the outbox is closed (every `Outbox` dropped) and
/// every event is confirmed, or `shutdown_timeout` after the outbox closed, whichever is first.
/// The outbox closing is the stop signal: it comes only after the HTTP workers have answered
/// their last request, so no accepted event can arrive after it.
pub(super) fn spawn(
    receiver: OutboxReceiver,
    settings: AmqpSettings,
    shutdown_timeout: Duration,
) -> std::io::Result<JoinHandle<()>> {
    let publisher = Publisher {
        receiver,
        settings,
        shutdown_timeout,
        unconfirmed: VecDeque::new(),
        closed_at: None,
        state: BrokerState::Disconnected,
        returns_logged_at: None,
    };
    std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || publisher.run())
}

struct Publisher {
    receiver: OutboxReceiver,
    settings: AmqpSettings,
    shutdown_timeout: Duration,
    /// Taken from the outbox, not yet confirmed, in creation order.
    unconfirmed: VecDeque<Event>,
    /// When the outbox closed (the service is stopping).
    closed_at: Option<Instant>,
    state: BrokerState,
    /// When returned messages were last logged at `warn`.
    returns_logged_at: Option<Instant>,
}

/// Why a session with the broker ended.
enum SessionEnd {
    /// Outbox closed and everything confirmed, or the shutdown deadline passed.
    Finished,
    Failed(String),
}

impl Publisher {
    fn run(mut self) {
        let mut backoff = Backoff::new();
        let mut reporter = Reporter::default();
        while !self.finished() {
            match self.open() {
                Ok((connection, channel)) => {
                    self.set_state(BrokerState::Connected, "");
                    self.receiver.set_broker_error(None);
                    reporter.reset();
                    let end = self.session(&channel, &mut backoff);
                    let _ = channel.close();
                    let _ = connection.close();
                    if let SessionEnd::Failed(why) = end {
                        metrics::RECONNECTS.inc();
                        self.set_state(BrokerState::Disconnected, &why);
                        // A broker that accepts connections but keeps failing them (nacks, say)
                        // must not get the whole backlog republished in a tight loop.
                        self.wait(backoff.next_delay());
                    }
                }
                Err(e) => {
                    // Logged by the reporter: once per kind of problem, then a reminder.
                    let failure = amqp::classify(&e, &self.settings);
                    reporter.failed(&failure);
                    self.receiver.set_broker_error(Some(failure.short));
                    self.state = BrokerState::Disconnected;
                    self.receiver.set_broker(BrokerState::Disconnected);
                    self.wait(backoff.next_delay());
                }
            }
        }
        let left = self.unconfirmed.len() + self.receiver.receiver().len();
        if left > 0 {
            log::error!(
                "publisher stopped with {left} events not confirmed by RabbitMQ (SHUTDOWN_TIMEOUT_SECS passed)"
            );
        } else {
            log::info!("publisher stopped: every accepted event was confirmed by RabbitMQ");
        }
    }

    fn open(&self) -> amiquip::Result<(Connection, amiquip::Channel)> {
        let mut connection = amqp::connect(&self.settings)?;
        let channel = connection.open_channel(None)?;
        amqp::declare(&channel, &self.settings)?;
        Ok((connection, channel))
    }

    /// Logs a change of state (once per change, not once per attempt) and shows it in `/health`.
    fn set_state(&mut self, state: BrokerState, why: &str) {
        if state == self.state {
            return;
        }
        self.state = state;
        self.receiver.set_broker(state);
        match state {
            BrokerState::Connected => log::info!(
                "connected to RabbitMQ at {}; {} events to publish",
                self.settings.display_url(),
                self.unconfirmed.len() + self.receiver.receiver().len()
            ),
            _ => log::warn!(
                "RabbitMQ unavailable ({why}); {} events pending, reconnecting with backoff",
                self.unconfirmed.len() + self.receiver.receiver().len()
            ),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.closed_at.map(|t| t + self.shutdown_timeout)
    }

    fn finished(&self) -> bool {
        match self.deadline() {
            None => false,
            Some(deadline) => self.unconfirmed.is_empty() || Instant::now() >= deadline,
        }
    }

    fn input(&self) -> Receiver<Event> {
        match self.closed_at {
            None => self.receiver.receiver().clone(),
            Some(_) => crossbeam_channel::never(),
        }
    }

    /// Waits `delay` (less if the shutdown deadline is nearer) while still taking events in, so
    /// that a closing outbox is noticed during an outage.
    fn wait(&mut self, delay: Duration) {
        let until = Instant::now() + delay;
        let until = self.deadline().map_or(until, |d| d.min(until));
        while self.closed_at.is_none() {
            match self
                .receiver
                .receiver()
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(event) => self.unconfirmed.push_back(event),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => self.closed_at = Some(Instant::now()),
            }
        }
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }

    /// Publishes everything unconfirmed, then every new event, retiring events as confirms come.
    /// The backoff is reset once the broker confirms something: only then is it healthy.
    fn session(&mut self, channel: &amiquip::Channel, backoff: &mut Backoff) -> SessionEnd {
        let confirms = match channel
            .listen_for_publisher_confirms()
            .and_then(|c| channel.enable_publisher_confirms().map(|()| c))
        {
            Ok(confirms) => confirms,
            Err(e) => return SessionEnd::Failed(format!("cannot enable confirms: {e}")),
        };
        let returns = match channel.listen_for_returns() {
            Ok(returns) => returns,
            Err(e) => return SessionEnd::Failed(format!("cannot listen for returns: {e}")),
        };
        // Message ids of returned messages whose confirm has not come yet.
        let mut returned: HashSet<String> = HashSet::new();
        let settings = self.settings.clone();
        let mut smoother = ConfirmSmoother::new();
        for event in &self.unconfirmed {
            if let Err(e) = amqp::publish(channel, &settings, event) {
                return SessionEnd::Failed(format!("publish failed: {e}"));
            }
            metrics::PUBLISHES.inc();
        }
        // When the oldest unconfirmed event was published or last saw progress.
        let mut waiting_since = Instant::now();
        loop {
            if self.finished() {
                return SessionEnd::Finished;
            }
            if !self.unconfirmed.is_empty() && waiting_since.elapsed() > CONFIRM_TIMEOUT {
                return SessionEnd::Failed(format!(
                    "no publisher confirm within {CONFIRM_TIMEOUT:?}"
                ));
            }
            let input = self.input();
            select! {
                recv(input) -> event => match event {
                    Ok(event) => {
                        if self.unconfirmed.is_empty() {
                            waiting_since = Instant::now();
                        }
                        if let Err(e) = amqp::publish(channel, &settings, &event) {
                            self.unconfirmed.push_back(event);
                            return SessionEnd::Failed(format!("publish failed: {e}"));
                        }
                        metrics::PUBLISHES.inc();
                        self.unconfirmed.push_back(event);
                    }
                    Err(_) => self.closed_at = Some(Instant::now()),
                },
                recv(confirms) -> confirm => match confirm {
                    Ok(confirm) => {
                        // A message's return comes before its confirm (the I/O thread hands
                        // them over in that order), so every return due is in by now.
                        self.note_returns(&returns, &mut returned);
                        let mut acked = 0;
                        for confirm in smoother.process(confirm) {
                            match confirm {
                                Confirm::Ack(_) => acked += 1,
                                Confirm::Nack(_) => {
                                    if let Err(why) = self.retire(channel, acked, &mut returned) {
                                        return SessionEnd::Failed(why);
                                    }
                                    return SessionEnd::Failed("the broker rejected a message (nack)".into());
                                }
                            }
                        }
                        metrics::CONFIRMS.inc_by(acked as u64);
                        if acked > 0 {
                            backoff.reset();
                        }
                        if let Err(why) = self.retire(channel, acked, &mut returned) {
                            return SessionEnd::Failed(why);
                        }
                        waiting_since = Instant::now();
                    }
                    Err(_) => return SessionEnd::Failed("connection lost".into()),
                },
                default(TICK) => {}
            }
        }
    }

    /// Takes in the returns that have arrived: their message ids go to `returned`.
    fn note_returns(&mut self, returns: &Receiver<Return>, returned: &mut HashSet<String>) {
        let mut count = 0;
        let mut why = String::new();
        for r in returns.try_iter() {
            count += 1;
            why = format!(
                "{} {} by exchange {:?}",
                r.reply_code, r.reply_text, r.exchange
            );
            if let Some(id) = r.properties.message_id() {
                returned.insert(id.clone());
            }
        }
        if count == 0 {
            return;
        }
        self.receiver.returned(count);
        metrics::RETURNS.inc_by(count as u64);
        let line = format!(
            "RabbitMQ returned {count} events as unroutable ({why}; was the queue {:?} deleted?): \
             re-declaring the topology and publishing them again",
            self.settings.queue
        );
        if self
            .returns_logged_at
            .is_none_or(|t| t.elapsed() >= RETURN_LOG_PERIOD)
        {
            self.returns_logged_at = Some(Instant::now());
            log::warn!("{line}");
        } else {
            log::debug!("{line}");
        }
    }

    /// The `count` oldest events are confirmed. Those that were returned are not delivered: they
    /// stay pending, the topology is re-declared and they are published again (at the back, so
    /// the order of unconfirmed events still follows the channel's delivery tags).
    fn retire(
        &mut self,
        channel: &amiquip::Channel,
        count: usize,
        returned: &mut HashSet<String>,
    ) -> Result<(), String> {
        let count = count.min(self.unconfirmed.len());
        let mut again = Vec::new();
        let mut delivered = Vec::with_capacity(count);
        for event in self.unconfirmed.drain(..count) {
            if returned.remove(&event.event_id.to_string()) {
                again.push(event);
            } else {
                delivered.push(event.event_id);
            }
        }
        self.receiver.confirmed(delivered);
        if again.is_empty() {
            return Ok(());
        }
        let republish = again.len();
        self.unconfirmed.extend(again);
        amqp::declare(channel, &self.settings)
            .map_err(|e| format!("cannot re-declare the topology after a return: {e}"))?;
        let start = self.unconfirmed.len() - republish;
        for event in self.unconfirmed.range(start..) {
            amqp::publish(channel, &self.settings, event)
                .map_err(|e| format!("publish failed: {e}"))?;
            metrics::PUBLISHES.inc();
        }
        Ok(())
    }
}
