//! The embedded notifier: with no broker configured, the notifier thread *is* the processor.
//! It prints each event's notification line and marks the event `Processed` in the store, but
//! only if the event is unchanged since it was queued (still at the version it was stored
//! with, checked under the store's write lock): a status a client set meanwhile, `Cancelled`
//! say, is never replaced.

use std::io::Write;
use std::thread::{self, JoinHandle};

use crate::logger::outbox::OutboxReceiver;
use crate::logger::store::{INITIAL_VERSION, Store};
use crate::shared::event::{Event, EventUpdate};
use crate::shared::notification;

/// Events printed and marked together at most, when they queue up faster than one at a time.
const BATCH: usize = 256;

/// Starts the embedded notifier. It runs until every [`Outbox`](crate::logger::outbox::Outbox) is dropped and
/// the channel is drained, so a shutdown never loses an accepted event.
pub(super) fn spawn(
    receiver: OutboxReceiver,
    store: Store,
    mut out: Box<dyn Write + Send>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("notifier".into())
        .spawn(move || {
            let events = receiver.receiver();
            while let Ok(first) = events.recv() {
                // What queued up meanwhile goes out together: one write, one lock.
                let batch: Vec<Event> = std::iter::once(first)
                    .chain(events.try_iter().take(BATCH - 1))
                    .collect();
                match notification::send_all(&mut out, &batch) {
                    // With DATA_DIR the storage writer marks them, after saving the print.
                    Ok(()) if receiver.printed(&batch) => {}
                    Ok(()) => {
                        // Queued together with the insert, so at the version it was stored with.
                        let marked = store.update_each_unchanged(
                            batch.iter().map(|e| (&e.event_id, INITIAL_VERSION)),
                            EventUpdate::processed,
                        );
                        if marked < batch.len() {
                            log::info!(
                                "{} of {} events changed by a client before they were marked; left as they are",
                                batch.len() - marked,
                                batch.len()
                            );
                        }
                    }
                    // Not marked Processed: the events stay visibly unsent.
                    Err(e) => log::error!(
                        "could not write the notifications of {} events (first {}): {e}",
                        batch.len(),
                        batch[0].event_id
                    ),
                }
                receiver.done(batch.len());
            }
            log::debug!("embedded notifier drained and stopped");
        })
}
