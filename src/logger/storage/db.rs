//! The SQLite file: the lock on its directory, the schema (versioned with `PRAGMA
//! user_version`), loading every event at start, and the statements the writer runs.
//!
//! A row's `seq` is its position in the store's `Vec` plus one: rows are never deleted and
//! only the writer inserts, so an update finds its row by that integer key and the table
//! needs no second index.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, Transaction, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{BUSY_TIMEOUT, OpenError, Sync};
use crate::shared::event::{Event, Timestamp};

/// The database file in `DATA_DIR`.
pub(super) const FILE: &str = "events.db";
/// Held (`flock`) while a process uses the directory.
const LOCK_FILE: &str = "events.lock";
/// The schema this version writes and reads.
pub(super) const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL,
    user_id TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    notified INTEGER NOT NULL DEFAULT 0
)";

/// Everything read at start, in creation order.
pub(super) struct Loaded {
    pub(super) events: Vec<(Event, u64)>,
    pub(super) unnotified: Vec<Event>,
}

/// Creates `dir` if needed and takes its lock; the lock lasts as long as the returned file.
pub(super) fn lock(dir: &Path) -> Result<File, OpenError> {
    let dir_error = |path: PathBuf| move |error| OpenError::Dir { path, error };
    std::fs::create_dir_all(dir).map_err(dir_error(dir.to_owned()))?;
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(dir_error(path.clone()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::Locked {
            dir: dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(error)) => Err(OpenError::Dir { path, error }),
    }
}

/// Opens `file` in WAL mode with `sync`, creates or checks the schema and loads every row.
pub(super) fn open(file: &Path, sync: Sync) -> Result<(Connection, Loaded), OpenError> {
    let sqlite = |error| OpenError::Sqlite {
        file: file.to_owned(),
        error,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(file, flags).map_err(sqlite)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    let found: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite)?;
    if found > SCHEMA_VERSION {
        return Err(OpenError::Newer {
            file: file.to_owned(),
            found,
        });
    }
    let mode: String = connection
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Row {
            file: file.to_owned(),
            why: format!("SQLite keeps journal mode {mode:?} instead of WAL"),
        });
    }
    connection
        .execute_batch(&format!(
            "PRAGMA synchronous={}; {SCHEMA}; PRAGMA user_version={SCHEMA_VERSION};",
            sync.pragma()
        ))
        .map_err(sqlite)?;
    let loaded = load(&connection).map_err(|e| match e {
        LoadError::Sqlite(error) => sqlite(error),
        LoadError::Row(why) => OpenError::Row {
            file: file.to_owned(),
            why,
        },
    })?;
    Ok((connection, loaded))
}

enum LoadError {
    Sqlite(rusqlite::Error),
    Row(String),
}

impl From<rusqlite::Error> for LoadError {
    fn from(e: rusqlite::Error) -> LoadError {
        LoadError::Sqlite(e)
    }
}

fn load(connection: &Connection) -> Result<Loaded, LoadError> {
    let count: i64 = connection.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    let mut events = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut unnotified = Vec::new();
    let mut statement = connection.prepare(
        "SELECT seq, id, user_id, description, status, created_at, updated_at, version, notified \
         FROM events ORDER BY seq",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let expected = events.len() as i64 + 1;
        if seq != expected {
            return Err(LoadError::Row(format!(
                "row {seq} where {expected} was expected (rows are never deleted)"
            )));
        }
        let id: [u8; 16] = row.get(1)?;
        let event = Event {
            event_id: Uuid::from_bytes(id),
            user_id: row.get(2)?,
            description: row.get(3)?,
            status: row.get(4)?,
            created_at: timestamp(row.get(5)?)?,
            updated_at: timestamp(row.get(6)?)?,
        };
        let version: i64 = row.get(7)?;
        let version = u64::try_from(version)
            .map_err(|_| LoadError::Row(format!("row {seq} has version {version}")))?;
        if row.get::<_, i64>(8)? == 0 {
            unnotified.push(event.clone());
        }
        events.push((event, version));
    }
    Ok(Loaded { events, unnotified })
}

fn timestamp(micros: i64) -> Result<Timestamp, LoadError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map(Timestamp)
        .map_err(|e| LoadError::Row(format!("timestamp {micros}: {e}")))
}

fn micros(t: Timestamp) -> i64 {
    i64::try_from(t.unix_micros()).unwrap_or(i64::MAX)
}

/// The row of the event at `position` in the store.
fn seq(position: usize) -> i64 {
    position as i64 + 1
}

pub(super) fn insert(tx: &Transaction<'_>, position: usize, e: &Event) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (seq, id, user_id, description, status, created_at, updated_at, version) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)",
    )?
    .execute(params![
        seq(position),
        e.event_id.as_bytes(),
        e.user_id,
        e.description,
        e.status,
        micros(e.created_at),
        micros(e.updated_at),
    ])?;
    Ok(())
}

pub(super) fn update(
    tx: &Transaction<'_>,
    position: usize,
    e: &Event,
    version: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE events SET user_id = ?2, description = ?3, status = ?4, updated_at = ?5, \
         version = ?6 WHERE seq = ?1",
    )?
    .execute(params![
        seq(position),
        e.user_id,
        e.description,
        e.status,
        micros(e.updated_at),
        i64::try_from(version).unwrap_or(i64::MAX),
    ])?;
    Ok(())
}

pub(super) fn mark_notified(tx: &Transaction<'_>, position: usize) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE events SET notified = 1 WHERE seq = ?1")?
        .execute([seq(position)])?;
    Ok(())
}
