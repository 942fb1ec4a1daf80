//! The segment files across restarts, crashes and retention (the port's behaviour is
//! checked by the contract suite; segments here are 4 KB, so a few records roll them).

use std::{fs, path::Path};

use super::SegmentLog;
use crate::{
    domain::Timestamp,
    ports::{Content, LogSpec, MessageLog, ReadLimit, Record},
};

fn record(i: u64) -> Record {
    Record {
        key: None,
        routing_key: None,
        content: Content::Text(format!("{i:0>1000}")),
        headers: Default::default(),
        priority: None,
        ttl_ms: 60_000,
        persistent: true,
        published_at: Timestamp(1_000 + i as i64),
    }
}

async fn filled(root: &Path, n: u64) -> SegmentLog {
    let log = SegmentLog::open(root).unwrap();
    log.create_log(7, &LogSpec { partitions: 2, replication: 1, retention_ms: None, max_bytes: None }).await.unwrap();
    for i in 0..n {
        log.append(7, vec![(0, record(i))]).await.unwrap().remove(0).unwrap();
    }
    log
}

async fn offsets(log: &SegmentLog, partition: u32) -> Vec<u64> {
    let all = ReadLimit { records: 1000, bytes: u64::MAX };
    log.read_range(7, partition, 0, all).await.unwrap().into_iter().map(|(o, _)| o).collect()
}

fn segments(root: &Path) -> usize {
    fs::read_dir(root.join("7/0")).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some()).count()
}

#[tokio::test]
async fn records_and_trims_survive_a_restart_and_segments_roll() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 20).await;
    assert!(segments(dir.path()) > 3, "4 KB segments roll every few records");
    assert_eq!(log.trim(7, Timestamp(1_010), None).await.unwrap(), 10);
    drop(log);
    let log = SegmentLog::open(dir.path()).unwrap();
    assert_eq!(offsets(&log, 0).await, (10..20).collect::<Vec<_>>());
    assert_eq!(
        log.read(crate::domain::MessageId { queue_id: 7, partition: 0, offset: 12 }).await.unwrap(),
        Some(record(12))
    );
    let info = log.partitions(7).await.unwrap();
    assert_eq!((info[0].start_offset, info[0].end_offset, info[1].end_offset), (10, 20, 0));
    assert_eq!(log.append(7, vec![(0, record(20))]).await.unwrap().remove(0).unwrap(), 20, "offsets go on");
}

#[tokio::test]
async fn trimmed_segments_are_removed_but_never_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 20).await;
    let before = segments(dir.path());
    log.trim(7, Timestamp(i64::MAX), None).await.unwrap();
    assert_eq!(segments(dir.path()), 1, "from {before}");
    assert!(offsets(&log, 0).await.is_empty());
    drop(log);
    let log = SegmentLog::open(dir.path()).unwrap();
    assert_eq!(log.append(7, vec![(0, record(1))]).await.unwrap().remove(0).unwrap(), 20, "the end is kept");
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_at_the_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled(dir.path(), 3).await);
    let seg = fs::read_dir(dir.path().join("7/0")).unwrap().map(|e| e.unwrap().path()).max().unwrap();
    let mut frame = Vec::new();
    super::frame::encode(0, &record(0), &mut frame);
    // The third record's frame loses its last bytes, as a crash in the middle of its write would leave it.
    let torn = vec![0; 10];
    std::os::unix::fs::FileExt::write_all_at(
        &fs::File::options().write(true).open(&seg).unwrap(),
        &torn,
        3 * frame.len() as u64 - 10,
    )
    .unwrap();
    let log = SegmentLog::open(dir.path()).unwrap();
    assert_eq!(offsets(&log, 0).await, [0, 1]);
    assert_eq!(
        log.append(7, vec![(0, record(9))]).await.unwrap().remove(0).unwrap(),
        2,
        "the torn record's offset is reused"
    );
    assert_eq!(offsets(&log, 0).await, [0, 1, 2]);
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SegmentLog::open(dir.path()).unwrap();
    let second = SegmentLog::open(dir.path()).unwrap_err();
    assert!(second.to_string().contains("another process"), "{second}");
}

#[tokio::test]
async fn a_deleted_log_stays_deleted_and_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 2).await;
    log.delete_log(7).await.unwrap();
    assert!(log.append(7, vec![(0, record(1))]).await.is_err());
    drop(log);
    let log = SegmentLog::open(dir.path()).unwrap();
    assert!(log.partitions(7).await.unwrap().is_empty());
}

#[test]
fn a_write_taken_back_leaves_no_trace_on_disk() {
    use super::{
        frame,
        partition::{Entry, Partition},
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0");
    let mut p = Partition::create(&path, 0).unwrap();
    let frames = |offset: u64| {
        let mut out = Vec::new();
        frame::encode(offset, &record(offset), &mut out);
        (out, [Entry { position: 0, content: 1000, published_at: 1_000 + offset as i64 }])
    };
    let (bytes, entries) = frames(0);
    p.write(&bytes, &entries).unwrap();
    p.commit();
    let (bytes, entries) = frames(1);
    let (_, undo) = p.write(&bytes, &entries).unwrap();
    p.undo(undo);
    assert_eq!((p.next_offset(), p.info().end_offset), (1, 1));
    let reopened = Partition::open(&path, 0).unwrap();
    assert_eq!(reopened.info().end_offset, 1, "the taken-back frame is zeros, not a record");
}
