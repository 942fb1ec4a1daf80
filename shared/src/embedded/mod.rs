//! The embedded default: one SQLite file in WAL mode holds both the message
//! log and the metadata, so several local processes can share it. Writes go
//! through one group-committing writer per process, with `synchronous=FULL`,
//! so an answered write has been fsync'd. Reads use a small connection pool.

mod buckets;
mod consumers;
mod lease_store;
mod leases;
mod log;
mod meta;
mod push;
mod schema;
mod stats;
mod writer;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rusqlite::{Connection, OpenFlags};

use crate::{
    error::StoreError,
    ports::{QueueId, StoreResult},
};
use writer::{Durability, Writer, backend};

/// Most idle read connections kept.
const MAX_IDLE_READERS: usize = 8;
/// When the WAL is checkpointed and started over.
#[derive(Debug, Clone, Copy)]
struct Checkpoints {
    /// How often while writes come in: often, so each checkpoint's fsync is short and
    /// the commits queued behind it on the disk wait little.
    every: Duration,
    /// How often once a pass found nothing new: still often, as a burst after a quiet
    /// spell would otherwise pile up a long first checkpoint.
    idle_every: Duration,
    /// WAL frames (pages) after which the writer takes a pause (a few ms) to start the WAL over.
    restart_after_frames: i64,
}

const CHECKPOINTS: Checkpoints = Checkpoints {
    every: Duration::from_millis(20),
    idle_every: Duration::from_millis(100),
    restart_after_frames: 32_768,
};
/// How long a write waits for another process holding the file's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite store; implements both [`crate::ports::MessageLog`] and [`crate::ports::MetadataStore`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer.
    pub fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, CHECKPOINTS)
    }

    fn open_with(path: &Path, checkpoints: Checkpoints) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = connect(path)?;
        schema::migrate(&conn)?;
        // Checkpoints run on their own thread; commits wait only for the rare restart.
        // A WAL that grew under a burst is cut back to 256 MiB once it starts over. The limit is
        // above the size at which it starts over, so under steady load the file keeps its blocks
        // and commits overwrite them, instead of a truncation (freeing blocks) and regrowth
        // (allocating them again) at every restart.
        conn.execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=268435456").map_err(backend)?;
        let checkpointed = Arc::new(AtomicBool::new(false));
        let writer = Writer::spawn(conn, Arc::clone(&checkpointed))?;
        let inner = Arc::new(Inner { path: path.to_owned(), writer, readers: Mutex::new(Vec::new()) });
        spawn_checkpointer(connect(path)?, Arc::downgrade(&inner), checkpointed, path, checkpoints)?;
        Ok(Self { inner })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A write answered once it is fsync'd.
    async fn writing<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        self.inner.writer.write(Durability::Durable, f).await
    }

    /// A write answered once it is in the WAL (delivery state; see [`writer`]).
    async fn writing_relaxed<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        self.inner.writer.write(Durability::Relaxed, f).await
    }

    /// A relaxed write queued without waiting for it (see [`Writer::submit`]).
    fn queue_write(&self, f: impl FnOnce(&Connection) -> StoreResult<()> + Send + 'static) -> StoreResult<()> {
        self.inner.writer.submit(f)
    }

    /// Deletes a queue's rows (of one group, when given) from each table.
    async fn delete_rows(&self, tables: &[&'static str], queue: QueueId, group: Option<String>) -> StoreResult<()> {
        let tables = tables.to_vec();
        self.writing_relaxed(move |conn| {
            for table in tables {
                match &group {
                    Some(grp) => conn.execute(
                        &format!("DELETE FROM {table} WHERE queue_id = ?1 AND grp = ?2"),
                        rusqlite::params![queue, grp],
                    ),
                    None => conn.execute(&format!("DELETE FROM {table} WHERE queue_id = ?1"), [queue]),
                }
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    /// A point read (an indexed lookup of a few rows), run on the calling thread:
    /// cheaper than a hand-off to the blocking pool for microseconds of work.
    fn reading_now<R>(&self, f: impl FnOnce(&Connection) -> StoreResult<R>) -> StoreResult<R> {
        let conn = self.inner.take_reader()?;
        let result = f(&conn);
        self.inner.give_back(conn);
        result
    }

    /// SQLite's version and the file's size (with its WAL), after a read of the file itself: a
    /// file removed or unreadable under the running process answers `Unavailable`.
    async fn info(&self) -> StoreResult<crate::ports::BackendInfo> {
        let path = self.path().to_owned();
        let version = self
            .reading(|conn| {
                conn.query_row("SELECT sqlite_version() FROM sqlite_schema LIMIT 1", [], |r| r.get(0)).map_err(backend)
            })
            .await?;
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len());
        let file = size(&path).map_err(|e| StoreError::unavailable(format!("{}: {e}", path.display())))?;
        let wal = size(&PathBuf::from(format!("{}-wal", path.display()))).unwrap_or(0);
        Ok(crate::ports::BackendInfo { kind: "sqlite", version, disk_bytes: Some(file + wal) })
    }

    /// A read that may scan, run on the blocking pool.
    async fn reading<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let conn = inner.take_reader()?;
            let result = f(&conn);
            inner.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Failed(format!("read task failed: {e}")))?
    }
}

impl Inner {
    fn take_reader(&self) -> StoreResult<Connection> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        pooled.map_or_else(|| connect(&self.path), Ok)
    }

    fn give_back(&self, conn: Connection) {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
    }
}

/// Copies the WAL back into the database now and then without blocking writers
/// (a passive checkpoint); once the WAL is long, tells the writer to finish the
/// job so the WAL starts over (see [`writer`]). Ends when the store is dropped.
fn spawn_checkpointer(
    conn: Connection,
    store: std::sync::Weak<Inner>,
    checkpointed: Arc<AtomicBool>,
    path: &Path,
    checkpoints: Checkpoints,
) -> StoreResult<()> {
    let db = std::fs::File::open(path)
        .map_err(|e| StoreError::unavailable(format!("cannot open {}: {e}", path.display())))?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let mut last = (0, 0);
            let mut wait = checkpoints.every;
            while store.strong_count() > 0 {
                std::thread::sleep(wait);
                match checkpoint(&conn, &db) {
                    Ok(wal) => {
                        wait = if wal == last { checkpoints.idle_every } else { checkpoints.every };
                        last = wal;
                        // A second pass copies what the first left, so the writer's pause is short.
                        if wal.0 >= checkpoints.restart_after_frames && checkpoint(&conn, &db).is_ok() {
                            checkpointed.store(true, Ordering::Release);
                        }
                    }
                    Err(e) => tracing::warn!("checkpoint failed: {e}"),
                }
            }
        })
        .map(|_| ())
        .map_err(|e| StoreError::unavailable(format!("cannot start the checkpoint thread: {e}")))
}

/// A passive checkpoint, then an fsync of what it copied; answers the WAL's length and
/// how much of it is copied, in frames. SQLite syncs the database only when a checkpoint
/// copies the whole WAL, which a steady stream of writes never lets happen; the rest would
/// pile up for the writer's pause.
fn checkpoint(conn: &Connection, db: &std::fs::File) -> rusqlite::Result<(i64, i64)> {
    let wal = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| Ok((row.get(1)?, row.get(2)?)));
    if let Err(e) = db.sync_data() {
        tracing::warn!("cannot sync the database file: {e}");
    }
    wal
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    // A stable plan per statement: without it SQLite prepares a statement again whenever a bound
    // value could change its plan (every `LIMIT ?`), which cost more than the reads themselves.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(backend)?;
    // A 1 MiB page cache per connection keeps a process small; appends touch few pages.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-1024;",
    )
    .map_err(backend)?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
