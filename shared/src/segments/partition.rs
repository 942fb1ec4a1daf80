//! One partition of a queue's log: a directory of segment files named by the offset of
//! their first record, and a `start` file holding the first retained offset. The offsets,
//! positions, content sizes and publish times of retained records are kept in memory
//! (16 bytes a record), so reads, limits and retention never scan a file.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::frame;
use crate::{
    domain::Timestamp,
    ports::{PartitionInfo, ReadLimit, Record},
};

/// A new segment is begun once the current one holds this many bytes (a few records in unit tests).
const SEGMENT_BYTES: u64 = if cfg!(test) { 4096 } else { 64 << 20 };
/// Zeros written ahead of the frames, so that syncing a frame never has to sync a new file size too:
/// `fdatasync` of data written over zeros is one flush; of data that grows the file, a journal commit
/// as well (about 40% more time and CPU per sync, measured on this project's machines).
const ZEROS_AHEAD: u64 = if cfg!(test) { 4096 } else { 1 << 20 };
/// A page of zeros.
const PAGE: [u8; 4096] = [0; 4096];

/// Where a retained record is and what limits and retention need of it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// Where its frame begins in its segment.
    pub(super) position: u32,
    /// Bytes of content.
    pub(super) content: u32,
    pub(super) published_at: i64,
}

#[derive(Debug)]
struct Segment {
    base: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes of frames written, including frames not yet committed.
    len: u64,
    /// Bytes of the file: the frames, then zeros.
    allocated: u64,
    /// Entry `i` is offset `base + i`.
    entries: Vec<Entry>,
}

impl Segment {
    fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Bytes of frame `i`: up to the next frame, or to the end of what was written.
    fn frame_len(&self, i: usize) -> u64 {
        let next = self.entries.get(i + 1).map_or(self.len, |e| u64::from(e.position));
        next - u64::from(self.entries[i].position)
    }
}

/// What [`Partition::write`] changed, so [`Partition::undo`] can take it back.
#[derive(Debug, Clone, Copy)]
pub(super) struct Undo {
    /// The first offset of the segment written (retention may remove segments before it meanwhile).
    segment: u64,
    len: u64,
    entries: usize,
}

#[derive(Debug)]
pub(super) struct Partition {
    number: u32,
    dir: PathBuf,
    segments: Vec<Segment>,
    /// First retained offset.
    start: u64,
    /// Offsets below this are committed (on disk) and readable.
    end: u64,
    /// Content bytes of the records `start..end`.
    retained_bytes: u64,
}

impl Partition {
    /// Makes the directory of a new, empty partition.
    pub(super) fn create(dir: &Path, number: u32) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        sync_dir(dir.parent().unwrap_or(dir))?;
        Ok(Self { number, dir: dir.to_owned(), segments: Vec::new(), start: 0, end: 0, retained_bytes: 0 })
    }

    /// Opens a partition's directory, checking every frame: a torn or damaged tail (a crash
    /// in the middle of a write) is cut off, and what follows it is dropped.
    pub(super) fn open(dir: &Path, number: u32) -> io::Result<Self> {
        let start = match fs::read_to_string(dir.join("start")) {
            Ok(s) => s.trim().parse().map_err(|_| io::Error::other(format!("{}: bad start file", dir.display())))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut bases: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        bases.sort_unstable();
        let mut p = Self { number, dir: dir.to_owned(), segments: Vec::new(), start, end: start, retained_bytes: 0 };
        for base in bases {
            let path = segment_path(dir, base);
            if p.segments.last().is_some_and(|s| s.end() != base) {
                tracing::error!("{}: a gap before this segment; it and later ones are dropped", path.display());
                fs::remove_file(&path)?;
                continue;
            }
            let (segment, complete) = recover(&path, base)?;
            p.segments.push(segment);
            if !complete {
                tracing::warn!("{}: cut off a torn or damaged tail", path.display());
            }
        }
        p.end = p.segments.last().map_or(start, Segment::end).max(start);
        p.start = start.min(p.end);
        p.retained_bytes = p.entries(p.start, p.end).map(|e| u64::from(e.content)).sum();
        p.drop_trimmed_segments()?;
        Ok(p)
    }

    pub(super) fn info(&self) -> PartitionInfo {
        let last = self.end.checked_sub(1).and_then(|o| self.entries(o, self.end).next());
        PartitionInfo {
            partition: self.number,
            start_offset: self.start,
            end_offset: self.end,
            last_published_at: last.filter(|_| self.end > self.start).map(|e| Timestamp(e.published_at)),
        }
    }

    /// The offset the next record written gets.
    pub(super) fn next_offset(&self) -> u64 {
        self.segments.last().map_or(self.end, Segment::end).max(self.end)
    }

    pub(super) fn retained_bytes(&self) -> u64 {
        self.retained_bytes
    }

    /// Writes frames (`entries` positioned from the start of `frames`) after the last one,
    /// beginning a segment first when the current one is full. Not readable until [`Partition::commit`].
    pub(super) fn write(&mut self, frames: &[u8], entries: &[Entry]) -> io::Result<(Arc<File>, Undo)> {
        if self.segments.last().is_none_or(|s| s.len >= SEGMENT_BYTES) {
            let base = self.next_offset();
            let path = segment_path(&self.dir, base);
            let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
            sync_dir(&self.dir)?;
            let segment = Segment { base, path, file: Arc::new(file), len: 0, allocated: 0, entries: Vec::new() };
            self.segments.push(segment);
        }
        let index = self.segments.len() - 1;
        let segment = &mut self.segments[index];
        let undo = Undo { segment: segment.base, len: segment.len, entries: segment.entries.len() };
        let needed = segment.len + frames.len() as u64;
        if needed > segment.allocated {
            let allocated = (needed + ZEROS_AHEAD).next_multiple_of(ZEROS_AHEAD);
            // A page per write: one large write would make a large page-cache folio, and every later
            // sync would write all of it back for a few bytes changed in it.
            for at in (segment.allocated..allocated).step_by(PAGE.len()) {
                segment.file.write_all_at(&PAGE, at)?;
            }
            segment.allocated = allocated;
        }
        if let Err(e) = segment.file.write_all_at(frames, segment.len) {
            let _ = segment.file.write_all_at(&vec![0; frames.len()], segment.len);
            return Err(e);
        }
        let at = u32::try_from(segment.len).map_err(|_| io::Error::other("segment too large"))?;
        segment.entries.extend(entries.iter().map(|e| Entry { position: e.position + at, ..*e }));
        segment.len += frames.len() as u64;
        Ok((segment.file.clone(), undo))
    }

    /// Takes back an uncommitted [`Partition::write`]: its frames become zeros again.
    pub(super) fn undo(&mut self, undo: Undo) {
        if let Some(segment) = self.segments.iter_mut().find(|s| s.base == undo.segment) {
            segment.entries.truncate(undo.entries);
            let _ = segment.file.write_all_at(&vec![0; (segment.len - undo.len) as usize], undo.len);
            segment.len = undo.len;
        }
    }

    /// Makes everything written readable (its frames are on disk).
    pub(super) fn commit(&mut self) {
        let end = self.next_offset();
        self.retained_bytes += self.entries(self.end, end).map(|e| u64::from(e.content)).sum::<u64>();
        self.end = end;
    }

    /// Where the frames of up to `limit` records from `from` on are: runs of (file, position, lengths).
    pub(super) fn plan_read(&self, from: u64, limit: ReadLimit) -> Vec<(Arc<File>, u64, Vec<u64>)> {
        let mut runs: Vec<(Arc<File>, u64, Vec<u64>)> = Vec::new();
        let (mut count, mut bytes) = (0u32, 0u64);
        let from = from.max(self.start);
        for segment in self.segments.iter().filter(|s| s.end() > from && s.base < self.end) {
            let first = (from.max(segment.base) - segment.base) as usize;
            let last = (self.end.min(segment.end()) - segment.base) as usize;
            for i in first..last {
                let content = u64::from(segment.entries[i].content);
                if count >= limit.records || (count > 0 && bytes + content > limit.bytes) {
                    return runs;
                }
                if i == first {
                    runs.push((segment.file.clone(), u64::from(segment.entries[i].position), Vec::new()));
                }
                if let Some(run) = runs.last_mut() {
                    run.2.push(segment.frame_len(i));
                }
                count += 1;
                bytes += content;
            }
        }
        runs
    }

    /// The oldest retained record's publish time and content bytes.
    pub(super) fn head(&self) -> Option<(i64, u64)> {
        self.entries(self.start, self.end).next().map(|e| (e.published_at, u64::from(e.content)))
    }

    /// Stops retaining the oldest record (readers skip it from now on).
    pub(super) fn drop_head(&mut self) {
        if let Some((_, content)) = self.head() {
            self.start += 1;
            self.retained_bytes -= content;
        }
    }

    /// Makes an empty partition start (and end) at `offset`.
    pub(super) fn begin_at(&mut self, offset: u64) -> io::Result<()> {
        if !self.segments.is_empty() {
            return Err(io::Error::other("the partition already holds records"));
        }
        (self.start, self.end) = (offset, offset);
        self.save_start()
    }

    /// Writes the first retained offset to disk, then removes segments wholly before it
    /// (never the last, whose end is the next offset).
    pub(super) fn save_start(&mut self) -> io::Result<()> {
        let tmp = self.dir.join("start.tmp");
        fs::write(&tmp, self.start.to_string())?;
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, self.dir.join("start"))?;
        sync_dir(&self.dir)?;
        self.drop_trimmed_segments()
    }

    fn drop_trimmed_segments(&mut self) -> io::Result<()> {
        while self.segments.len() > 1 && self.segments[0].end() <= self.start {
            let gone = self.segments.remove(0);
            fs::remove_file(&gone.path)?;
        }
        Ok(())
    }

    /// Entries of offsets `from..to`.
    fn entries(&self, from: u64, to: u64) -> impl Iterator<Item = &Entry> {
        self.segments.iter().flat_map(move |s| {
            let first = from.saturating_sub(s.base).min(s.entries.len() as u64) as usize;
            let last = to.saturating_sub(s.base).min(s.entries.len() as u64) as usize;
            s.entries.get(first..last.max(first)).unwrap_or_default().iter()
        })
    }
}

/// Reads the frames of a planned run back into records; `None` when a frame does not check out.
pub(super) fn read_run(file: &File, position: u64, lengths: &[u64]) -> io::Result<Vec<(u64, Record)>> {
    let mut buf = vec![0; lengths.iter().sum::<u64>() as usize];
    file.read_exact_at(&mut buf, position)?;
    let mut out = Vec::with_capacity(lengths.len());
    let mut at = 0;
    for &len in lengths {
        let frame = &buf[at..at + len as usize];
        let decoded = frame::decode(&frame[..frame::HEADER], &frame[frame::HEADER..]);
        out.push(decoded.ok_or_else(|| io::Error::other("a record's frame does not check out"))?);
        at += len as usize;
    }
    Ok(out)
}

/// Reads a segment, keeping its frames up to the first that is torn, damaged or out of
/// sequence, and zeroing the rest. Answers whether nothing but zeros followed the frames.
fn recover(path: &Path, base: u64) -> io::Result<(Segment, bool)> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let bytes = fs::read(path)?;
    let mut entries = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + frame::HEADER) {
        let Some(len) = frame::body_len(header) else { break };
        let Some(body) = bytes.get(at + frame::HEADER..at + frame::HEADER + len) else { break };
        match frame::decode(header, body) {
            Some((offset, record)) if offset == base + entries.len() as u64 => entries.push(Entry {
                position: u32::try_from(at).map_err(|_| io::Error::other("segment too large"))?,
                content: record.content_bytes() as u32,
                published_at: record.published_at.0,
            }),
            _ => break,
        }
        at += frame::HEADER + len;
    }
    let complete = bytes[at..].iter().all(|b| *b == 0);
    if !complete {
        file.write_all_at(&vec![0; bytes.len() - at], at as u64)?;
        file.sync_data()?;
    }
    let (len, allocated) = (at as u64, bytes.len() as u64);
    Ok((Segment { base, path: path.to_owned(), file: Arc::new(file), len, allocated, entries }, complete))
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

/// Makes a directory's entries (files made, renamed or removed in it) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
