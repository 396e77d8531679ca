//! The embedded notifier: with no broker configured, the notifier thread *is* the processor.
//! It prints each event's notification line and marks the event `Processed` in the store.

use std::io::Write;
use std::thread::{self, JoinHandle};

use crate::event::EventUpdate;
use crate::notification;
use crate::outbox::OutboxReceiver;
use crate::store::Store;

/// Starts the embedded notifier. It runs until every [`crate::outbox::Outbox`] is dropped and
/// the channel is drained, so a shutdown never loses an accepted event.
pub fn spawn_embedded(
    receiver: OutboxReceiver,
    store: Store,
    mut out: Box<dyn Write + Send>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("notifier".into())
        .spawn(move || {
            for event in receiver.receiver().iter() {
                match notification::send(&mut out, &event) {
                    Ok(()) => {
                        store.update(&event.event_id, EventUpdate::processed());
                    }
                    // Not marked Processed: the event stays visibly unsent.
                    Err(e) => log::error!(
                        "could not write the notification for event {}: {e}",
                        event.event_id
                    ),
                }
                receiver.done(1);
            }
            log::debug!("embedded notifier drained and stopped");
        })
}
