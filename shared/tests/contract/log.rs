//! The message log: creation, appends, range reads, partitions, retention, deletion.

use shared::{
    domain::{MessageId, Timestamp},
    error::StoreError,
    ops::Backends,
    ports::*,
};

use crate::common::*;

pub async fn appended_records_read_back_with_dense_offsets(b: &Backends) {
    let q = queue(b, "log", 2).await;
    for i in 0..5u64 {
        assert_eq!(append(b, &q, 1, record(&i.to_string(), T0)).await.unwrap(), i);
    }
    let id = MessageId { queue_id: q.id, partition: 1, offset: 3 };
    assert_eq!(b.log.read(id).await.unwrap(), Some(record("3", T0)));
    assert!(b.log.read(MessageId { offset: 5, ..id }).await.unwrap().is_none());
    assert!(b.log.read(MessageId { partition: 0, ..id }).await.unwrap().is_none());
    let batch: Vec<(u32, Record)> = (0..4).map(|i| (i % 2, record(&format!("b{i}"), T0))).collect();
    let results = b.log.append(q.id, batch).await.unwrap();
    let offsets: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(offsets, [0, 5, 1, 6], "offsets per partition, in the order given");
}

pub async fn a_log_is_created_with_its_partitions_and_grows(b: &Backends) {
    let q = queue(b, "made", 3).await;
    let parts = b.log.partitions(q.id).await.unwrap();
    let empty: Vec<(u32, u64, u64)> = (0..3).map(|p| (p, 0, 0)).collect();
    assert_eq!(parts.iter().map(|p| (p.partition, p.start_offset, p.end_offset)).collect::<Vec<_>>(), empty);
    append(b, &q, 2, record("x", T0)).await.unwrap();
    b.log.create_log(q.id, &spec(3)).await.unwrap();
    let parts = b.log.partitions(q.id).await.unwrap();
    assert_eq!((parts[2].end_offset, parts[2].last_published_at), (1, Some(T0)), "creating again keeps what is there");
    assert_eq!(parts[0].last_published_at, None);
    assert!(matches!(append(b, &q, 3, record("y", T0)).await, Err(StoreError::NotFound)), "no partition 3 yet");
}

pub async fn a_log_grows_by_partitions_and_never_shrinks(b: &Backends) {
    let q = queue(b, "grown", 3).await;
    b.log.create_log(q.id, &spec(5)).await.unwrap();
    assert_eq!(append(b, &q, 4, record("y", T0)).await.unwrap(), 0);
    let parts = b.log.partitions(q.id).await.unwrap();
    assert_eq!(parts.len(), 5);
    assert_eq!(parts[4].last_published_at, Some(T0));
    b.log.create_log(q.id, &spec(2)).await.unwrap();
    assert_eq!(b.log.partitions(q.id).await.unwrap().len(), 5, "partitions are never removed");
}

pub async fn an_append_to_a_deleted_log_is_refused(b: &Backends) {
    let q = queue(b, "gone", 1).await;
    append(b, &q, 0, record("x", T0)).await.unwrap();
    b.log.delete_log(q.id).await.unwrap();
    assert!(matches!(b.log.append(q.id, vec![(0, record("x", T0))]).await, Err(StoreError::NotFound)));
    assert!(b.log.partitions(q.id).await.unwrap().is_empty());
    assert!(b.log.read(MessageId { queue_id: q.id, partition: 0, offset: 0 }).await.unwrap().is_none());
    assert!(matches!(b.log.append(q.id + 1000, vec![(0, record("x", T0))]).await, Err(StoreError::NotFound)));
}

pub async fn range_reads_follow_offsets_within_their_limits(b: &Backends) {
    let q = queue(b, "ranges", 2).await;
    for i in 0..10u64 {
        append(b, &q, 0, record(&"a".repeat(10 + i as usize), T0)).await.unwrap();
        append(b, &q, 1, record(&format!("p1-{i}"), T0)).await.unwrap();
    }
    let read = |partition, from, records, bytes| async move {
        let got = b.log.read_range(q.id, partition, from, ReadLimit { records, bytes }).await.unwrap();
        got.into_iter().map(|(offset, r)| (offset, r.content_bytes())).collect::<Vec<_>>()
    };
    assert_eq!(read(0, 3, 4, u64::MAX).await, [(3, 13), (4, 14), (5, 15), (6, 16)]);
    assert_eq!(read(0, 8, 10, u64::MAX).await, [(8, 18), (9, 19)], "up to the end");
    assert!(read(0, 10, 10, u64::MAX).await.is_empty(), "nothing past the end");
    assert_eq!(read(0, 0, 10, 25).await, [(0, 10), (1, 11)], "stops before passing the byte limit");
    assert_eq!(read(0, 0, 10, 1).await, [(0, 10)], "the first record whatever its size");
    let other = b.log.read_range(q.id, 1, 9, ReadLimit::ONE).await.unwrap();
    assert_eq!(other, vec![(9, record("p1-9", T0))], "partitions are apart");
    assert!(b.log.read_range(q.id, 7, 0, ReadLimit::ONE).await.unwrap().is_empty(), "no such partition");
}

pub async fn retention_trims_the_oldest_and_reads_skip_them(b: &Backends) {
    let q = queue(b, "trim", 1).await;
    for i in 0..6 {
        append(b, &q, 0, record(&"x".repeat(10), Timestamp(T0.0 + i))).await.unwrap();
    }
    assert_eq!(b.log.trim(q.id, Timestamp(T0.0 + 3), None).await.unwrap(), 3);
    let parts = b.log.partitions(q.id).await.unwrap();
    assert_eq!((parts[0].start_offset, parts[0].end_offset), (3, 6));
    assert_eq!(parts[0].retained_from(0), 3);
    let from_zero = b.log.read_range(q.id, 0, 0, ReadLimit { records: 2, bytes: u64::MAX }).await.unwrap();
    assert_eq!(from_zero.iter().map(|(o, _)| *o).collect::<Vec<_>>(), [3, 4], "trimmed offsets are skipped");
    assert_eq!(b.log.trim(q.id, Timestamp(0), Some(25)).await.unwrap(), 1, "down to 25 bytes: one of three goes");
    assert_eq!(b.log.partitions(q.id).await.unwrap()[0].start_offset, 4);
    assert_eq!(b.log.trim(q.id, Timestamp(0), None).await.unwrap(), 0);
}

pub async fn the_backend_describes_itself(b: &Backends) {
    let info = b.log.describe().await.unwrap();
    assert!(!info.kind.is_empty() && !info.version.is_empty(), "{info:?}");
}
