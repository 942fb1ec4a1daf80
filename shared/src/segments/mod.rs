//! The message log in append-only segment files: each partition a directory of files
//! written once, sequentially, by one writer thread that group-commits with one
//! `fdatasync` per file (Kafka's shape, on one machine). The embedded default keeps its
//! log here and everything else in SQLite. One process owns a log directory at a time.

mod frame;
mod import;
mod partition;
#[cfg(test)]
mod tests;
mod writer;

use std::{
    collections::HashMap,
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock, mpsc},
};

use async_trait::async_trait;

use crate::{
    domain::Timestamp,
    error::StoreError,
    ports::{BackendInfo, LogSpec, MessageLog, PartitionInfo, QueueId, ReadLimit, Record, StoreResult},
};
pub use import::move_records;
use partition::{Partition, read_run, sync_dir};
use writer::lock;

/// The segment-file log under one directory: `<root>/<queue id>/<partition>/`.
#[derive(Debug, Clone)]
pub struct SegmentLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    queues: RwLock<HashMap<QueueId, Arc<QueueLog>>>,
    writer: mpsc::Sender<writer::Job>,
    /// Held (locked) while the log is open, so a second process cannot write it too.
    _owner: File,
}

#[derive(Debug, Default)]
struct QueueLog {
    partitions: RwLock<Vec<Arc<Mutex<Partition>>>>,
}

impl SegmentLog {
    /// Opens (creating if needed) the log under `root`, checking every segment; refuses a
    /// directory another process has open.
    pub fn open(root: &Path) -> StoreResult<Self> {
        let fail = |e: io::Error| StoreError::unavailable(format!("cannot open the log in {}: {e}", root.display()));
        fs::create_dir_all(root).map_err(fail)?;
        let owner = File::create(root.join(".lock")).map_err(fail)?;
        owner.try_lock().map_err(|_| {
            StoreError::unavailable(format!("the log in {} is open in another process", root.display()))
        })?;
        let mut queues = HashMap::new();
        for entry in fs::read_dir(root).map_err(fail)? {
            let entry = entry.map_err(fail)?;
            if entry.file_name().to_string_lossy().starts_with("deleted-") {
                fs::remove_dir_all(entry.path()).map_err(fail)?;
                continue;
            }
            let Some(queue) = entry.file_name().to_str().and_then(|n| n.parse::<QueueId>().ok()) else { continue };
            queues.insert(queue, Arc::new(open_queue(&entry.path()).map_err(fail)?));
        }
        let writer = writer::spawn().map_err(fail)?;
        let inner = Inner { root: root.to_owned(), queues: RwLock::new(queues), writer, _owner: owner };
        Ok(Self { inner: Arc::new(inner) })
    }

    fn queue(&self, queue: QueueId) -> StoreResult<Arc<QueueLog>> {
        let queues = self.inner.queues.read().unwrap_or_else(|p| p.into_inner());
        queues.get(&queue).cloned().ok_or(StoreError::NotFound)
    }

    /// One partition of a queue's log; `None` when either does not exist.
    fn partition(&self, queue: QueueId, partition: u32) -> Option<Arc<Mutex<Partition>>> {
        self.partitions_of(queue).get(partition as usize).cloned()
    }

    /// The partitions of a queue's log; none when it has no log.
    fn partitions_of(&self, queue: QueueId) -> Vec<Arc<Mutex<Partition>>> {
        self.queue(queue)
            .map_or_else(|_| Vec::new(), |log| log.partitions.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Makes an empty partition start at `offset` (a log moved from elsewhere keeps its offsets).
    fn begin_at(&self, queue: QueueId, partition: u32, offset: u64) -> StoreResult<()> {
        let partition = self.partition(queue, partition).ok_or(StoreError::NotFound)?;
        lock(&partition).begin_at(offset).map_err(io_error)
    }

    /// Checks a moved partition ends where its old log did.
    fn end_at(&self, queue: QueueId, partition: u32, offset: u64) -> StoreResult<()> {
        let partition = self.partition(queue, partition).ok_or(StoreError::NotFound)?;
        let end = lock(&partition).info().end_offset;
        if end == offset {
            Ok(())
        } else {
            Err(StoreError::Failed(format!("a moved partition ends at {end}, not {offset}")))
        }
    }

    /// Bytes of every file under the root.
    fn disk_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = fs::read_dir(dir) else { return 0 };
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        }
        walk(&self.inner.root)
    }
}

/// Opens every partition directory (`0`, `1`, ...) of a queue's log.
fn open_queue(dir: &Path) -> io::Result<QueueLog> {
    let mut numbers: Vec<u32> = fs::read_dir(dir)?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    numbers.sort_unstable();
    let mut partitions = Vec::new();
    for (expected, number) in numbers.into_iter().enumerate() {
        if number as usize != expected {
            return Err(io::Error::other(format!("{}: partition {expected} is missing", dir.display())));
        }
        partitions.push(Arc::new(Mutex::new(Partition::open(&dir.join(number.to_string()), number)?)));
    }
    Ok(QueueLog { partitions: RwLock::new(partitions) })
}

fn io_error(e: io::Error) -> StoreError {
    StoreError::unavailable(format!("the log's files: {e}"))
}

#[async_trait]
impl MessageLog for SegmentLog {
    async fn create_log(&self, queue: QueueId, spec: &LogSpec) -> StoreResult<()> {
        let log = {
            let mut queues = self.inner.queues.write().unwrap_or_else(|p| p.into_inner());
            queues.entry(queue).or_default().clone()
        };
        let dir = self.inner.root.join(queue.to_string());
        let mut partitions = log.partitions.write().unwrap_or_else(|p| p.into_inner());
        for number in partitions.len() as u32..spec.partitions {
            let partition = Partition::create(&dir.join(number.to_string()), number).map_err(io_error)?;
            partitions.push(Arc::new(Mutex::new(partition)));
        }
        sync_dir(&self.inner.root).map_err(io_error)
    }

    async fn delete_log(&self, queue: QueueId) -> StoreResult<()> {
        let removed = self.inner.queues.write().unwrap_or_else(|p| p.into_inner()).remove(&queue);
        if removed.is_none() {
            return Ok(());
        }
        // Renamed first, so a crash part way through the removal leaves no half a log behind.
        let dir = self.inner.root.join(queue.to_string());
        let doomed = self.inner.root.join(format!("deleted-{queue}"));
        fs::rename(&dir, &doomed).map_err(io_error)?;
        sync_dir(&self.inner.root).map_err(io_error)?;
        fs::remove_dir_all(&doomed).map_err(io_error)
    }

    async fn append(&self, queue: QueueId, records: Vec<(u32, Record)>) -> StoreResult<Vec<StoreResult<u64>>> {
        let partitions = self.partitions_of(queue);
        let records = records
            .into_iter()
            .map(|(p, record)| Ok((partitions.get(p as usize).cloned().ok_or(StoreError::NotFound)?, record)))
            .collect::<StoreResult<Vec<_>>>()?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        let sent = self.inner.writer.send(writer::Job { records, answer });
        sent.map_err(|_| StoreError::unavailable("the log's writer has stopped"))?;
        answered.await.map_err(|_| StoreError::unavailable("the log's writer has stopped"))
    }

    async fn read_range(
        &self,
        queue: QueueId,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> StoreResult<Vec<(u64, Record)>> {
        let Some(partition) = self.partition(queue, partition) else { return Ok(Vec::new()) };
        let runs = lock(&partition).plan_read(from, limit);
        let mut out = Vec::new();
        for (file, position, lengths) in runs {
            out.extend(read_run(&file, position, &lengths).map_err(io_error)?);
        }
        Ok(out)
    }

    async fn partitions(&self, queue: QueueId) -> StoreResult<Vec<PartitionInfo>> {
        Ok(self.partitions_of(queue).iter().map(|p| lock(p).info()).collect())
    }

    async fn trim(&self, queue: QueueId, before: Timestamp, max_bytes: Option<u64>) -> StoreResult<u64> {
        let partitions = self.partitions_of(queue);
        let mut removed = 0;
        let mut changed = vec![false; partitions.len()];
        for (i, p) in partitions.iter().enumerate() {
            let mut p = lock(p);
            while p.head().is_some_and(|(at, _)| at < before.0) {
                p.drop_head();
                removed += 1;
                changed[i] = true;
            }
        }
        if let Some(max) = max_bytes {
            // The oldest record of all partitions goes first, as a single log would lose it.
            let mut guards: Vec<_> = partitions.iter().map(|p| lock(p)).collect();
            while guards.iter().map(|g| g.retained_bytes()).sum::<u64>() > max {
                let oldest = guards.iter().enumerate().filter_map(|(i, g)| Some((g.head()?.0, i))).min();
                let Some((_, i)) = oldest else { break };
                guards[i].drop_head();
                removed += 1;
                changed[i] = true;
            }
        }
        for (p, _) in partitions.iter().zip(&changed).filter(|(_, c)| **c) {
            lock(p).save_start().map_err(io_error)?;
        }
        Ok(removed)
    }

    async fn describe(&self) -> StoreResult<BackendInfo> {
        let root = self.inner.root.clone();
        fs::metadata(&root).map_err(|e| StoreError::unavailable(format!("{}: {e}", root.display())))?;
        // The files' format is this crate's own, so its version names it.
        let version = env!("CARGO_PKG_VERSION").into();
        Ok(BackendInfo { kind: "segment-files", version, disk_bytes: Some(self.disk_bytes()) })
    }
}
