//! The log's one writer thread: appends queue up while a group is being synced, and the next
//! group takes them all. Each partition's frames of a group go to its file in one write, each
//! file touched is synced once (`fdatasync`), and only then are the records readable and the
//! appends answered.

use std::{
    fs::File,
    sync::{Arc, Mutex, mpsc},
};

use tokio::sync::oneshot;

use super::{
    frame,
    partition::{Entry, Partition, Undo},
};
use crate::{
    error::StoreError,
    ports::{Record, StoreResult},
};

/// Most appends one group takes.
const MAX_GROUP: usize = 1024;

pub(super) type Answer = oneshot::Sender<Vec<StoreResult<u64>>>;

/// One append: records for partitions already checked to exist.
pub(super) struct Job {
    pub(super) records: Vec<(Arc<Mutex<Partition>>, Record)>,
    pub(super) answer: Answer,
}

/// Starts the writer; it ends when every sender is dropped.
pub(super) fn spawn() -> std::io::Result<mpsc::Sender<Job>> {
    let (jobs, rx) = mpsc::channel();
    std::thread::Builder::new().name("log-writer".into()).spawn(move || run(&rx))?;
    Ok(jobs)
}

/// A partition's share of a group.
struct Pending {
    partition: Arc<Mutex<Partition>>,
    next: u64,
    frames: Vec<u8>,
    entries: Vec<Entry>,
    written: Option<(Arc<File>, Undo)>,
    failure: Option<String>,
}

fn run(rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut pending: Vec<Pending> = Vec::new();
        let mut placed: Vec<Vec<(usize, u64)>> = Vec::with_capacity(jobs.len());
        for job in &jobs {
            placed.push(job.records.iter().map(|(partition, record)| place(&mut pending, partition, record)).collect());
        }
        write_and_sync(&mut pending);
        for (job, placed) in jobs.into_iter().zip(placed) {
            let results = placed
                .into_iter()
                .map(|(p, offset)| match &pending[p].failure {
                    Some(reason) => Err(StoreError::unavailable(reason.clone())),
                    None => Ok(offset),
                })
                .collect();
            let _ = job.answer.send(results);
        }
    }
}

/// Encodes a record into its partition's share; answers the share and the record's offset.
fn place(pending: &mut Vec<Pending>, partition: &Arc<Mutex<Partition>>, record: &Record) -> (usize, u64) {
    let index = match pending.iter().position(|p| Arc::ptr_eq(&p.partition, partition)) {
        Some(i) => i,
        None => {
            let next = lock(partition).next_offset();
            pending.push(Pending {
                partition: partition.clone(),
                next,
                frames: Vec::new(),
                entries: Vec::new(),
                written: None,
                failure: None,
            });
            pending.len() - 1
        }
    };
    let share = &mut pending[index];
    let offset = share.next;
    let position = share.frames.len() as u32;
    frame::encode(offset, record, &mut share.frames);
    share.entries.push(Entry { position, content: record.content_bytes() as u32, published_at: record.published_at.0 });
    share.next += 1;
    (index, offset)
}

/// Writes every share, syncs each file once, then commits what reached the disk and takes
/// back what did not.
fn write_and_sync(pending: &mut [Pending]) {
    for share in pending.iter_mut() {
        match lock(&share.partition).write(&share.frames, &share.entries) {
            Ok(written) => share.written = Some(written),
            Err(e) => share.failure = Some(format!("cannot write the log: {e}")),
        }
    }
    let mut synced: Vec<(Arc<File>, Option<String>)> = Vec::new();
    for share in pending.iter_mut() {
        let Some((file, _)) = &share.written else { continue };
        let outcome = match synced.iter().find(|(f, _)| Arc::ptr_eq(f, file)) {
            Some((_, outcome)) => outcome.clone(),
            None => {
                let outcome = file.sync_data().err().map(|e| format!("cannot sync the log: {e}"));
                synced.push((file.clone(), outcome.clone()));
                outcome
            }
        };
        let mut partition = lock(&share.partition);
        match outcome {
            None => partition.commit(),
            Some(reason) => {
                if let Some((_, undo)) = share.written.take() {
                    partition.undo(undo);
                }
                share.failure = Some(reason);
            }
        }
    }
}

pub(super) fn lock(partition: &Mutex<Partition>) -> std::sync::MutexGuard<'_, Partition> {
    partition.lock().unwrap_or_else(|p| p.into_inner())
}
