//! Durable events (`DATA_DIR`): the SQLite file that holds every event, opened and locked at
//! start ([`open`]), and the one writer thread that commits every change before it reaches
//! the in-memory [`Store`] ([`writer`]).
//!
//! The `Store` stays the working set that serves every read; this module only decides when a
//! change may enter it: after its transaction committed. Creates and updates from the HTTP
//! workers and the notifier's `notified` marks all go through the writer, which batches what
//! queued up into one transaction (group commit).

mod db;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) use self::writer::{Writer, WriterThread};
use crate::logger::store::Store;
use crate::shared::event::Event;

/// What `SYNC` asks of SQLite at each commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// WAL with `synchronous=NORMAL`: a commit survives a crash or `kill -9` of the process.
    Normal,
    /// `synchronous=FULL`: a commit is also fsynced, so it survives a power loss.
    Full,
    /// `synchronous=OFF`: no waits for the disk; for tests and benchmarks.
    Off,
}

impl Sync {
    pub fn parse(text: &str) -> Option<Sync> {
        match text.trim().to_ascii_lowercase().as_str() {
            "normal" => Some(Sync::Normal),
            "full" => Some(Sync::Full),
            "off" => Some(Sync::Off),
            _ => None,
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            Sync::Normal => "NORMAL",
            Sync::Full => "FULL",
            Sync::Off => "OFF",
        }
    }
}

/// Why `DATA_DIR` cannot be used at start; the process exits 1 with this one line.
#[derive(Debug)]
pub enum OpenError {
    /// The directory or its lock file cannot be created or opened.
    Dir {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Another process holds the directory's lock.
    Locked { dir: PathBuf },
    /// SQLite refused the file (not a database, corrupt, unreadable, read-only).
    Sqlite {
        file: PathBuf,
        error: rusqlite::Error,
    },
    /// The schema was written by a newer event-logger.
    Newer { file: PathBuf, found: i64 },
    /// A row that this version cannot read back (hand-edited or damaged).
    Row { file: PathBuf, why: String },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Dir { path, error } => {
                write!(f, "DATA_DIR: cannot use {}: {error}", path.display())
            }
            OpenError::Locked { dir } => write!(
                f,
                "DATA_DIR {} is in use by another event-logger; stop it first (two processes must not share one store)",
                dir.display()
            ),
            OpenError::Sqlite { file, error } => write!(
                f,
                "cannot open the event database {}: {error} (the file is left as it is)",
                file.display()
            ),
            OpenError::Newer { file, found } => write!(
                f,
                "the event database {} has schema version {found}, newer than this event-logger's {}: run the newer event-logger or restore a backup",
                file.display(),
                db::SCHEMA_VERSION
            ),
            OpenError::Row { file, why } => write!(
                f,
                "the event database {} holds a row this event-logger cannot read: {why} (the file is left as it is)",
                file.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {}

/// A write that did not reach the disk: nothing of it was acknowledged or applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError(pub String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the event database cannot be written: {}", self.0)
    }
}

impl std::error::Error for StorageError {}

/// What `/health` reports as `storage`: `memory`, `ok` or `failing` (with why).
#[derive(Debug, Clone, Default)]
pub struct StorageStatus {
    /// `None`: no `DATA_DIR`.
    durable: Option<Arc<Mutex<Option<String>>>>,
}

impl StorageStatus {
    pub fn memory() -> StorageStatus {
        StorageStatus::default()
    }

    fn durable() -> StorageStatus {
        StorageStatus {
            durable: Some(Arc::default()),
        }
    }

    pub fn state(&self) -> &'static str {
        match &self.durable {
            None => "memory",
            Some(_) if self.error().is_some() => "failing",
            Some(_) => "ok",
        }
    }

    /// Why the last commit failed, until one succeeds again.
    pub fn error(&self) -> Option<String> {
        let error = self.durable.as_ref()?;
        error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the outcome of a commit; logs only changes, not every failed attempt.
    fn set(&self, outcome: Option<String>) {
        let Some(error) = &self.durable else { return };
        let mut error = error.lock().unwrap_or_else(|e| e.into_inner());
        match (&*error, &outcome) {
            (None, Some(why)) => log::error!(
                "writes to the event database fail ({why}); answering 503 until they succeed again"
            ),
            (Some(_), None) => log::info!("the event database accepts writes again"),
            _ => {}
        }
        *error = outcome;
    }
}

/// A store opened from `DATA_DIR`: the loaded working set, the events still to notify (in
/// creation order) and the writer thread, not yet started.
pub struct Opened {
    pub store: Store,
    pub unnotified: Vec<Event>,
    pub status: StorageStatus,
    pub(crate) thread: WriterThread,
}

/// Locks `dir`, opens (or creates) `dir/events.db` and loads every event, logging the count
/// and how long it took.
pub fn open(dir: &Path, sync: Sync) -> Result<Opened, OpenError> {
    let started = Instant::now();
    // A file size limit (`RLIMIT_FSIZE`) must fail a write with EFBIG, answered `503` like a
    // full disk, instead of killing the process with SIGXFSZ.
    let ignored = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGXFSZ, ignored) {
        log::warn!("cannot catch SIGXFSZ ({e}): exceeding a file size limit stops the process");
    }
    let lock = db::lock(dir)?;
    let file = dir.join(db::FILE);
    let (connection, loaded) = db::open(&file, sync)?;
    let elapsed = started.elapsed();
    log::info!(
        "loaded {} events from {} in {} ms ({} to notify); SYNC={}",
        loaded.events.len(),
        file.display(),
        elapsed.as_millis(),
        loaded.unnotified.len(),
        sync.pragma().to_ascii_lowercase()
    );
    let store = Store::from_loaded(loaded.events);
    let status = StorageStatus::durable();
    let thread = WriterThread::new(connection, lock, store.clone(), status.clone());
    Ok(Opened {
        store,
        unnotified: loaded.unnotified,
        status,
        thread,
    })
}

/// How long a write waits for SQLite's lock held by another connection (an operator's
/// `sqlite3 .backup`, say) before it fails with `503`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_parses_its_three_values_in_any_case() {
        assert_eq!(Sync::parse("normal"), Some(Sync::Normal));
        assert_eq!(Sync::parse(" FULL "), Some(Sync::Full));
        assert_eq!(Sync::parse("Off"), Some(Sync::Off));
        assert_eq!(Sync::parse("always"), None);
    }

    #[test]
    fn status_is_memory_ok_or_failing_with_why() {
        assert_eq!(StorageStatus::memory().state(), "memory");
        let durable = StorageStatus::durable();
        assert_eq!((durable.state(), durable.error()), ("ok", None));
        durable.set(Some("database or disk is full".into()));
        assert_eq!(durable.state(), "failing");
        assert_eq!(durable.error().as_deref(), Some("database or disk is full"));
        durable.set(None);
        assert_eq!(durable.state(), "ok");
    }
}
