//! The writer thread: the one owner of the SQLite connection and, with `DATA_DIR`, the only
//! thread that changes the [`Store`].
//!
//! HTTP workers send a create or an update with a one-shot reply channel and block on it; the
//! notifier sends `notified` marks without waiting. The writer takes everything queued, works
//! out each outcome against the store as it will be (earlier changes of the same batch
//! included), writes it all in one transaction (group commit), and only after the commit
//! applies the changes to the store under one write lock, in the order they were received,
//! hands the new events to the outbox and replies. The store is only read (briefly) before
//! the commit and written after it, so no lock is held while the disk works and a read never
//! waits for a write. A failed commit changes nothing: every write of the batch gets a
//! [`StorageError`] (`503`), marks are kept and retried, and the next batch tries the disk
//! again, so writes resume by themselves once it recovers.

use std::collections::HashMap;
use std::fs::File;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use rusqlite::Connection;
use uuid::Uuid;

use super::{StorageError, StorageStatus, db};
use crate::logger::metrics;
use crate::logger::outbox::{Mark, Outbox, Reservation};
use crate::logger::store::{Change, Conditional, INITIAL_VERSION, Store, Versioned};
use crate::shared::event::{Event, EventUpdate};

/// Writes committed together at most.
const MAX_BATCH: usize = 1024;
/// How often marks that could not be saved are tried again while nothing else comes.
const RETRY: Duration = Duration::from_secs(1);

type Precondition = Box<dyn FnOnce(u64) -> bool + Send>;

enum Command {
    Create {
        event: Event,
        slot: Reservation,
        reply: Sender<Result<Event, StorageError>>,
    },
    Update {
        id: Uuid,
        update: EventUpdate,
        precondition: Precondition,
        reply: Sender<Result<Conditional, StorageError>>,
    },
}

/// The HTTP workers' handle on the writer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: Sender<Command>,
}

fn stopped() -> StorageError {
    StorageError("the writer thread has stopped".into())
}

impl Writer {
    /// Stores `event` and hands it to the outbox through `slot`; returns once it is committed.
    pub(crate) fn create(&self, event: Event, slot: Reservation) -> Result<Event, StorageError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let command = Command::Create { event, slot, reply };
        self.tx.send(command).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// [`Store::update_if`], committed before it returns (when it changed anything).
    pub(crate) fn update(
        &self,
        id: Uuid,
        update: EventUpdate,
        precondition: impl FnOnce(u64) -> bool + Send + 'static,
    ) -> Result<Conditional, StorageError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let precondition = Box::new(precondition);
        let command = Command::Update {
            id,
            update,
            precondition,
            reply,
        };
        self.tx.send(command).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

/// The writer, opened but not yet running.
pub(crate) struct WriterThread {
    connection: Connection,
    /// Transactions committed, and the creates and updates they held (for the stop log line).
    commits: u64,
    writes: u64,
    /// The directory's lock, held as long as the connection is used.
    _lock: File,
    store: Store,
    status: StorageStatus,
}

/// What one batch does: the changes (in order) and the notified marks to write, and the
/// answers to give once they are committed.
#[derive(Default)]
struct Plan {
    changes: Vec<Change>,
    notified: Vec<usize>,
    replies: Vec<Reply>,
    /// The batch's view of the events it touches: position and state after its changes.
    touched: HashMap<Uuid, (usize, Versioned)>,
    /// Events the store holds once the batch is applied.
    len: usize,
}

enum Reply {
    Created(Event, Reservation, Sender<Result<Event, StorageError>>),
    Updated(Conditional, Sender<Result<Conditional, StorageError>>),
}

impl WriterThread {
    pub(super) fn new(
        connection: Connection,
        lock: File,
        store: Store,
        status: StorageStatus,
    ) -> WriterThread {
        WriterThread {
            connection,
            commits: 0,
            writes: 0,
            _lock: lock,
            store,
            status,
        }
    }

    /// Starts the thread. It hands new events to `outbox` and ends once every [`Writer`] and
    /// the returned mark sender are dropped (the notifier's marks are saved to the last).
    pub(crate) fn spawn(
        self,
        outbox: Outbox,
    ) -> std::io::Result<(Writer, Sender<Mark>, JoinHandle<()>)> {
        let (tx, commands) = crossbeam_channel::unbounded();
        let (marks_tx, marks) = crossbeam_channel::unbounded();
        let handle = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || self.run(&commands, &marks, Some(outbox)))?;
        Ok((Writer { tx }, marks_tx, handle))
    }

    fn run(
        mut self,
        commands: &Receiver<Command>,
        marks: &Receiver<Mark>,
        mut outbox: Option<Outbox>,
    ) {
        let (no_commands, no_marks) = (crossbeam_channel::never(), crossbeam_channel::never());
        let (mut commands_open, mut marks_open) = (true, true);
        let mut unsaved: Vec<Mark> = Vec::new();
        while commands_open || marks_open {
            let mut batch = Vec::new();
            select! {
                recv(if commands_open { commands } else { &no_commands }) -> c => match c {
                    Ok(c) => batch.push(c),
                    // The HTTP server stopped: closing the outbox lets the notifier finish.
                    Err(_) => { commands_open = false; outbox = None; }
                },
                recv(if marks_open { marks } else { &no_marks }) -> m => match m {
                    Ok(m) => unsaved.push(m),
                    Err(_) => marks_open = false,
                },
                default(RETRY) => {}
            }
            batch.extend(commands.try_iter().take(MAX_BATCH));
            unsaved.extend(marks.try_iter());
            if !batch.is_empty() || !unsaved.is_empty() {
                self.commit(batch, &mut unsaved, outbox.as_ref());
            }
        }
        if !unsaved.is_empty() {
            log::error!(
                "stopping with {} notified marks not saved: those events are notified again at the next start",
                unsaved.len()
            );
        }
        log::info!(
            "writer stopped after {} commits of {} creates and updates",
            self.commits,
            self.writes
        );
    }

    /// Plans, writes and (once committed) applies one batch, then answers it.
    fn commit(&mut self, commands: Vec<Command>, marks: &mut Vec<Mark>, outbox: Option<&Outbox>) {
        let mut plan = Plan {
            len: self.store.len(),
            ..Plan::default()
        };
        for command in commands {
            plan.command(&self.store, command);
        }
        for mark in marks.iter() {
            plan.mark(&self.store, mark);
        }
        if let Err(e) = self.write(&plan) {
            let error = StorageError(e.to_string());
            self.status.set(Some(error.0.clone()));
            for reply in plan.replies {
                match reply {
                    Reply::Created(_, _, to) => drop(to.send(Err(error.clone()))),
                    Reply::Updated(_, to) => drop(to.send(Err(error.clone()))),
                }
            }
            return;
        }
        self.status.set(None);
        self.commits += 1;
        self.writes += plan.replies.len() as u64;
        marks.clear();
        self.store.apply(plan.changes);
        for reply in plan.replies {
            match reply {
                Reply::Created(event, slot, to) => {
                    if outbox.is_none_or(|_| slot.send(event.clone()).is_err()) {
                        log::warn!(
                            "event {} is stored but the notifier has stopped: it is notified at the next start",
                            event.event_id
                        );
                    }
                    let _ = to.send(Ok(event));
                }
                Reply::Updated(outcome, to) => drop(to.send(Ok(outcome))),
            }
        }
    }

    fn write(&mut self, plan: &Plan) -> rusqlite::Result<()> {
        if plan.changes.is_empty() && plan.notified.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let written = self.transact(plan);
        match &written {
            Ok(()) => {
                metrics::COMMIT_SECONDS.observe(started.elapsed().as_secs_f64());
                metrics::COMMIT_WRITES.observe((plan.changes.len() + plan.notified.len()) as f64);
            }
            Err(_) => metrics::COMMIT_FAILURES.inc(),
        }
        written
    }

    /// The plan's changes and marks in one transaction.
    fn transact(&mut self, plan: &Plan) -> rusqlite::Result<()> {
        let tx = self.connection.transaction()?;
        for change in &plan.changes {
            match change {
                Change::Insert(position, event) => db::insert(&tx, *position, event)?,
                Change::Set(position, v) => db::update(&tx, *position, &v.event, v.version)?,
            }
        }
        for &position in &plan.notified {
            db::mark_notified(&tx, position)?;
        }
        tx.commit()
    }
}

impl Plan {
    /// The event `id` as this batch sees it.
    fn current(&self, store: &Store, id: &Uuid) -> Option<(usize, Versioned)> {
        self.touched.get(id).cloned().or_else(|| store.locate(id))
    }

    fn command(&mut self, store: &Store, command: Command) {
        match command {
            Command::Create { event, slot, reply } => {
                let position = self.len;
                self.len += 1;
                let v = Versioned {
                    event: event.clone(),
                    version: INITIAL_VERSION,
                };
                self.touched.insert(event.event_id, (position, v));
                self.changes.push(Change::Insert(position, event.clone()));
                self.replies.push(Reply::Created(event, slot, reply));
            }
            Command::Update {
                id,
                update,
                precondition,
                reply,
            } => {
                let outcome = match self.current(store, &id) {
                    None => Conditional::NotFound,
                    Some((_, v)) if !precondition(v.version) => {
                        Conditional::Failed { current: v.version }
                    }
                    Some((position, v)) => Conditional::Updated(self.set(position, v, update)),
                };
                self.replies.push(Reply::Updated(outcome, reply));
            }
        }
    }

    /// Applies `update` to `v` (at `position`) as a change of this batch.
    fn set(&mut self, position: usize, mut v: Versioned, update: EventUpdate) -> Versioned {
        if v.event.apply(update) {
            v.version += 1;
            self.changes.push(Change::Set(position, v.clone()));
            self.touched.insert(v.event.event_id, (position, v.clone()));
        }
        v
    }

    fn mark(&mut self, store: &Store, mark: &Mark) {
        let (ids, printed) = match mark {
            Mark::Notified(ids) => (ids, false),
            Mark::Printed(ids) => (ids, true),
        };
        let mut changed = 0;
        for id in ids {
            let Some((position, v)) = self.current(store, id) else {
                continue;
            };
            self.notified.push(position);
            if !printed {
                continue;
            }
            // Queued when stored: a status a client set meanwhile is never replaced.
            if v.version == INITIAL_VERSION {
                self.set(position, v, EventUpdate::processed());
            } else {
                changed += 1;
            }
        }
        if changed > 0 {
            log::info!(
                "{changed} of {} events changed by a client before they were marked; left as they are",
                ids.len()
            );
        }
    }
}
