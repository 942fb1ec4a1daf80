//! The single writer of a process: jobs queue up while a commit is being
//! fsync'd and the next transaction takes them all (group commit). Each job
//! runs in a savepoint, so one failing job does not undo its neighbours.
//!
//! A durable job is answered only after its commit is fsync'd. A relaxed job
//! (delivery state: leases, acknowledgements) is answered once committed to
//! the WAL; it survives a crash of the process, and is fsync'd with the next
//! durable commit. A power loss may undo it, which at-least-once delivery
//! allows: the message is delivered again, never lost.
//!
//! Under a steady stream of writes a checkpoint running beside the writer never
//! catches up, and SQLite only starts the WAL over when every frame has been
//! copied back. So when the checkpoint thread has done the bulk, the writer
//! copies the few frames written meanwhile between two transactions, and its
//! next transaction writes the WAL from its start.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
    mpsc,
};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{error::StoreError, ports::StoreResult};

/// Most jobs one transaction takes.
const MAX_BATCH: usize = 1024;

type Answer = Box<dyn FnOnce(StoreResult<()>) + Send>;
type Job = (Durability, Box<dyn FnOnce(&Connection) -> Answer + Send>);

/// When a write may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// After its commit is fsync'd.
    Durable,
    /// After its commit is in the WAL.
    Relaxed,
}

/// Handle to the writer thread; the thread ends when the last handle drops.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer; the checkpoint thread sets `checkpointed` when the WAL should start over.
    pub(super) fn spawn(conn: Connection, checkpointed: Arc<AtomicBool>) -> StoreResult<Self> {
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&conn, &rx, &checkpointed))
            .map_err(|e| StoreError::unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `f` in the next transaction and answers once that transaction is committed.
    pub(super) async fn write<R, F>(&self, durability: Durability, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = (
            durability,
            Box::new(move |conn| {
                let result = in_savepoint(conn, f);
                Box::new(move |committed: StoreResult<()>| {
                    let _ = tx.send(committed.and(result));
                })
            }),
        );
        self.jobs.send(job).map_err(|_| StoreError::unavailable("the writer thread has stopped"))?;
        rx.await.map_err(|_| StoreError::unavailable("the write could not begin; see the server log"))?
    }

    /// Queues `f` for the next transaction without waiting for it (a relaxed write). Jobs run in
    /// the order they were queued, so a later [`Writer::write`] sees its effect.
    pub(super) fn submit<F>(&self, f: F) -> StoreResult<()>
    where
        F: FnOnce(&Connection) -> StoreResult<()> + Send + 'static,
    {
        let job: Job = (
            Durability::Relaxed,
            Box::new(move |conn| {
                if let Err(e) = in_savepoint(conn, f) {
                    tracing::warn!("a queued write failed: {e}");
                }
                Box::new(|_| {})
            }),
        );
        self.jobs.send(job).map_err(|_| StoreError::unavailable("the writer thread has stopped"))
    }
}

fn run(conn: &Connection, rx: &mpsc::Receiver<Job>, checkpointed: &AtomicBool) {
    let mut synchronous = Durability::Durable;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let wanted = if batch.iter().any(|(d, _)| *d == Durability::Durable) {
            Durability::Durable
        } else {
            Durability::Relaxed
        };
        if wanted != synchronous {
            let pragma =
                if wanted == Durability::Durable { "PRAGMA synchronous=FULL" } else { "PRAGMA synchronous=NORMAL" };
            if let Err(e) = conn.execute_batch(pragma) {
                tracing::error!(jobs = batch.len(), "cannot set the sync mode: {e}");
                continue;
            }
            synchronous = wanted;
        }
        if checkpointed.swap(false, Ordering::AcqRel) {
            catch_up(conn);
        }
        if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
            // Dropping the jobs unrun answers each caller with an error.
            tracing::error!(jobs = batch.len(), "cannot begin a write: {e}");
            continue;
        }
        let answers: Vec<Answer> = batch.into_iter().map(|(_, job)| job(conn)).collect();
        let committed = exec(conn, "COMMIT").map_err(|e| {
            let _ = exec(conn, "ROLLBACK");
            backend(e)
        });
        for answer in answers {
            answer(committed.clone());
        }
    }
}

/// Copies back the frames written since the last checkpoint, so the next
/// transaction can start the WAL over (it can unless a read began before this).
fn catch_up(conn: &Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
        tracing::warn!("checkpoint failed: {e}");
    }
}

fn in_savepoint<R>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<R>) -> StoreResult<R> {
    exec(conn, "SAVEPOINT job").map_err(backend)?;
    let result = f(conn);
    if result.is_err() {
        exec(conn, "ROLLBACK TO job").map_err(backend)?;
    }
    exec(conn, "RELEASE job").map_err(backend)?;
    result
}

/// Runs a statement kept prepared, as every transaction runs the same few.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// A SQLite error, classed: busy, locked, out of disk or memory, or an I/O failure is an outage
/// that may pass; anything else is a failure of the store itself.
pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                DatabaseBusy
                    | DatabaseLocked
                    | OutOfMemory
                    | SystemIoFailure
                    | DiskFull
                    | CannotOpen
                    | FileLockingProtocolFailed
            ) =>
        {
            StoreError::unavailable(e.to_string())
        }
        _ => StoreError::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_or_full_database_is_unavailable_and_a_broken_statement_failed() {
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED, rusqlite::ffi::SQLITE_FULL] {
            assert!(matches!(backend(failure(code)), StoreError::Unavailable { .. }), "{code}");
        }
        assert!(matches!(backend(failure(rusqlite::ffi::SQLITE_CONSTRAINT)), StoreError::Failed(_)));
        assert!(matches!(backend(rusqlite::Error::QueryReturnedNoRows), StoreError::Failed(_)));
    }
}
