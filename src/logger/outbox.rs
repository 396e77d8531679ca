//! The hand-off between HTTP handlers and the one notifier thread: a channel plus a bounded
//! count of *pending* events (accepted, not yet confirmed as handed on).
//!
//! Handlers [`Outbox::reserve`] a slot before storing an event, so a full outbox is known
//! before anything is stored (`503`, nothing lost). The consumer side ([`OutboxReceiver`]) is
//! either the embedded notifier (`notifier::embedded`) or the RabbitMQ publisher
//! (`notifier::publisher`); handlers cannot tell which, and never block on it.
//!
//! With `DATA_DIR` the consumer also reports what it handed on as [`Mark`]s to the storage
//! writer, which saves them as the events' `notified` mark; an event stored but never marked
//! goes back into the outbox at the next start.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};
use uuid::Uuid;

use crate::shared::event::Event;

/// A notifier's word that events were handed on, for the storage writer to save.
#[derive(Debug)]
pub enum Mark {
    /// The broker confirmed them.
    Notified(Vec<Uuid>),
    /// The embedded notifier printed them: also marked `Processed` if unchanged since stored.
    Printed(Vec<Uuid>),
}

/// What `/health` reports as `broker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    /// No broker configured: the in-process notifier prints and marks events.
    Embedded,
    Connected,
    Disconnected,
}

impl BrokerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerState::Embedded => "embedded",
            BrokerState::Connected => "connected",
            BrokerState::Disconnected => "disconnected",
        }
    }
}

/// Why an event could not be handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOffError {
    /// `OUTBOX_CAPACITY` events are pending already.
    Full,
    /// The notifier thread is gone (the service is shutting down).
    Closed,
}

impl std::fmt::Display for HandOffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HandOffError::Full => "the outbox holds OUTBOX_CAPACITY pending events",
            HandOffError::Closed => "the notifier thread has stopped",
        })
    }
}

impl std::error::Error for HandOffError {}

#[derive(Debug)]
struct Shared {
    pending: AtomicUsize,
    capacity: usize,
    broker: AtomicU8,
    /// Messages the broker returned as unroutable (`basic.return`), since start.
    returns: AtomicU64,
    /// Why the broker cannot be used, while that lasts (for `/health`).
    broker_error: Mutex<Option<String>>,
}

/// The producer side, held by the HTTP handlers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: Sender<Event>,
    shared: Arc<Shared>,
}

/// The consumer side, owned by the notifier thread.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: Receiver<Event>,
    shared: Arc<Shared>,
    /// With `DATA_DIR`: where the marks go.
    marks: Option<Sender<Mark>>,
}

/// A pending slot taken by [`Outbox::reserve`]; released again if dropped without
/// [`Reservation::send`]. Owned, so that the storage writer can send it after its commit.
#[must_use]
pub struct Reservation {
    outbox: Outbox,
    sent: bool,
}

/// A read-only view of the outbox for `/health`.
#[derive(Debug, Clone)]
pub struct OutboxStatus {
    shared: Arc<Shared>,
}

/// A new outbox holding at most `capacity` pending events, initially in `broker` state.
pub fn outbox(capacity: usize, broker: BrokerState) -> (Outbox, OutboxReceiver) {
    // Unbounded channel: the bound is the pending count, which also covers events the
    // consumer has taken but not yet confirmed.
    let (tx, rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared {
        pending: AtomicUsize::new(0),
        capacity,
        broker: AtomicU8::new(broker as u8),
        returns: AtomicU64::new(0),
        broker_error: Mutex::new(None),
    });
    (
        Outbox {
            tx,
            shared: shared.clone(),
        },
        OutboxReceiver {
            rx,
            shared,
            marks: None,
        },
    )
}

impl Outbox {
    /// Takes a pending slot, or fails with [`HandOffError::Full`].
    pub fn reserve(&self) -> Result<Reservation, HandOffError> {
        let capacity = self.shared.capacity;
        self.shared
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .map_err(|_| HandOffError::Full)?;
        Ok(Reservation {
            outbox: self.clone(),
            sent: false,
        })
    }

    /// Puts `events` (stored, not yet notified before the last stop) back in the outbox, in
    /// this order. They count as pending, even beyond the capacity.
    pub fn requeue(&self, events: Vec<Event>) -> Result<(), HandOffError> {
        for event in events {
            self.shared.pending.fetch_add(1, Ordering::AcqRel);
            if self.tx.send(event).is_err() {
                self.shared.pending.fetch_sub(1, Ordering::AcqRel);
                return Err(HandOffError::Closed);
            }
        }
        Ok(())
    }

    pub fn status(&self) -> OutboxStatus {
        OutboxStatus {
            shared: self.shared.clone(),
        }
    }
}

impl Reservation {
    /// Hands `event` to the notifier thread. Never blocks.
    pub fn send(mut self, event: Event) -> Result<(), HandOffError> {
        self.outbox
            .tx
            .send(event)
            .map_err(|_| HandOffError::Closed)?;
        self.sent = true;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.sent {
            self.outbox.shared.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl OutboxReceiver {
    pub fn receiver(&self) -> &Receiver<Event> {
        &self.rx
    }

    /// Reports what is handed on to `marks` from now on (the storage writer).
    pub fn with_marks(mut self, marks: Sender<Mark>) -> OutboxReceiver {
        self.marks = Some(marks);
        self
    }

    /// `count` events are now handed on (printed, or confirmed by the broker).
    pub fn done(&self, count: usize) {
        self.shared.pending.fetch_sub(count, Ordering::AcqRel);
    }

    /// The broker confirmed `ids`: no longer pending, and marked notified when durable.
    pub fn confirmed(&self, ids: Vec<Uuid>) {
        let count = ids.len();
        if let Some(marks) = &self.marks
            && !ids.is_empty()
        {
            // The writer outlives every notifier; if not, the events are sent again at start.
            let _ = marks.send(Mark::Notified(ids));
        }
        self.done(count);
    }

    /// The embedded notifier printed `events`. When durable, the writer saves that and marks
    /// them `Processed` (returns `true`); otherwise the caller marks them in memory.
    pub fn printed(&self, events: &[Event]) -> bool {
        let Some(marks) = &self.marks else {
            return false;
        };
        let ids = events.iter().map(|e| e.event_id).collect();
        let _ = marks.send(Mark::Printed(ids));
        true
    }

    pub fn set_broker(&self, state: BrokerState) {
        self.shared.broker.store(state as u8, Ordering::Release);
    }

    /// Why the broker cannot be used (`None`: it can, or nothing is known).
    pub fn set_broker_error(&self, error: Option<String>) {
        *self
            .shared
            .broker_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = error;
    }

    /// `count` more messages came back unroutable (they stay pending and are published again).
    pub fn returned(&self, count: usize) {
        self.shared
            .returns
            .fetch_add(count as u64, Ordering::AcqRel);
    }
}

impl OutboxStatus {
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Why the broker cannot be used, if known.
    pub fn broker_error(&self) -> Option<String> {
        self.shared
            .broker_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Messages returned unroutable by the broker since start.
    pub fn returns(&self) -> u64 {
        self.shared.returns.load(Ordering::Acquire)
    }

    pub fn broker(&self) -> BrokerState {
        match self.shared.broker.load(Ordering::Acquire) {
            0 => BrokerState::Embedded,
            1 => BrokerState::Connected,
            _ => BrokerState::Disconnected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::event::sample;

    fn event() -> Event {
        sample("u", "d")
    }

    #[test]
    fn capacity_bounds_pending_and_unsent_reservations_are_released() {
        let (outbox, receiver) = outbox(2, BrokerState::Embedded);
        let status = outbox.status();
        outbox.reserve().unwrap().send(event()).unwrap();
        {
            let _dropped = outbox.reserve().unwrap();
            assert_eq!(status.pending(), 2);
            assert_eq!(outbox.reserve().err(), Some(HandOffError::Full));
        }
        assert_eq!(status.pending(), 1);
        outbox.reserve().unwrap().send(event()).unwrap();
        assert_eq!(outbox.reserve().err(), Some(HandOffError::Full));
        assert_eq!(receiver.receiver().len(), 2);
        receiver.done(2);
        assert_eq!(status.pending(), 0);
    }

    #[test]
    fn send_after_the_consumer_is_gone_fails_and_releases_the_slot() {
        let (outbox, receiver) = outbox(1, BrokerState::Connected);
        drop(receiver);
        let err = outbox.reserve().unwrap().send(event()).unwrap_err();
        assert_eq!(err, HandOffError::Closed);
        assert_eq!(outbox.status().pending(), 0);
    }

    #[test]
    fn broker_state_is_shared() {
        let (outbox, receiver) = outbox(1, BrokerState::Disconnected);
        assert_eq!(outbox.status().broker(), BrokerState::Disconnected);
        receiver.set_broker(BrokerState::Connected);
        assert_eq!(outbox.status().broker().as_str(), "connected");
        receiver.returned(3);
        assert_eq!(outbox.status().returns(), 3);
    }
}
