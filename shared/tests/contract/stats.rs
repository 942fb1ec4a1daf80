//! Queue counters, and time buckets of figures.

use shared::{
    domain::{Count, Figures, Latency, Timestamp},
    ops::Backends,
    ports::*,
};

use crate::common::*;

pub async fn counters_add_up_per_queue(b: &Backends) {
    let (q, other) = (queue(b, "counted", 1).await, queue(b, "apart", 1).await);
    assert_eq!(b.stats.counters(q.id).await.unwrap(), QueueCounters::default());
    let delta = CounterDelta { consumed: 3, redelivered: 1, acknowledged: 2, ..CounterDelta::default() };
    b.stats.add(q.id, &delta).await.unwrap();
    b.stats
        .add(q.id, &CounterDelta { consumed: -1, expired: 4, dead_lettered: 1, ..CounterDelta::default() })
        .await
        .unwrap();
    b.stats.add(other.id, &CounterDelta { rejected: 7, requeued: 2, ..CounterDelta::default() }).await.unwrap();
    let c = b.stats.counters(q.id).await.unwrap();
    assert_eq!(
        c,
        QueueCounters {
            consumed: 2,
            redelivered: 1,
            acknowledged: 2,
            rejected: 0,
            requeued: 0,
            dead_lettered: 1,
            expired: 4
        }
    );
    assert_eq!(b.stats.counters(other.id).await.unwrap().rejected, 7);
    b.stats.forget_queue(q.id).await.unwrap();
    assert_eq!(b.stats.counters(q.id).await.unwrap(), QueueCounters::default());
    assert_eq!(b.stats.counters(other.id).await.unwrap().requeued, 2);
}

pub async fn concurrent_additions_are_all_kept(b: &Backends) {
    let q = queue(b, "busy", 1).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (b, id) = (b.clone(), q.id);
            tokio::spawn(
                async move { b.stats.add(id, &CounterDelta { acknowledged: 1, ..CounterDelta::default() }).await },
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(b.stats.counters(q.id).await.unwrap().acknowledged, 50);
}

fn figures(published: u64, publish_ms: &[u64]) -> Figures {
    let mut f = Figures::default();
    f.add(Count::Published, published);
    for ms in publish_ms {
        f.record(Latency::Publish, std::time::Duration::from_millis(*ms));
    }
    f
}

/// An instant on a whole hour, as bucket starts are.
const BASE: i64 = T0.0 - T0.0 % 3_600_000;

fn bucket(queue: QueueId, start: i64, width_ms: u64, f: Figures) -> StatsBucket {
    StatsBucket { queue, start: Timestamp(BASE + start), width_ms, figures: f }
}

/// Merged figures of the buckets read, per queue.
async fn read(b: &Backends, queue: Option<QueueId>, from: i64, to: i64) -> Vec<(QueueId, i64, u64, Figures)> {
    let mut got: Vec<_> = b
        .statistics
        .buckets(queue, Timestamp(BASE + from), Timestamp(BASE + to))
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.queue, s.start.0 - BASE, s.width_ms, s.figures))
        .collect();
    got.sort_by_key(|(q, start, width, _)| (*q, *start, *width));
    got
}

pub async fn buckets_merge_by_adding_and_read_back_by_range(b: &Backends) {
    let (q, other) = (queue(b, "timed", 1).await, queue(b, "beside", 1).await);
    b.statistics.merge_buckets(vec![bucket(q.id, 0, 10_000, figures(2, &[5, 7]))]).await.unwrap();
    b.statistics
        .merge_buckets(vec![
            bucket(q.id, 0, 10_000, figures(3, &[100])),
            bucket(q.id, 10_000, 10_000, figures(1, &[])),
            bucket(other.id, 0, 10_000, figures(9, &[])),
            bucket(NO_QUEUE, 20_000, 10_000, figures(0, &[1])),
        ])
        .await
        .unwrap();
    let mine = read(b, Some(q.id), 0, 20_000).await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    let first = &mine[0].3;
    assert_eq!((first.count(Count::Published), first.distribution(Latency::Publish).count), (5, 3));
    assert!(first.distribution(Latency::Publish).max_ms >= 99.0, "{first:?}");
    assert_eq!(mine[1].3.count(Count::Published), 1);
    // Half-open ranges, all queues when none is named.
    assert_eq!(read(b, None, 0, 10_000).await.len(), 2);
    assert_eq!(read(b, None, 0, 30_000).await.len(), 4);
    assert_eq!(read(b, None, 10_000, 20_001).await.len(), 2);
    assert!(read(b, None, 30_000, 40_000).await.is_empty());
    b.stats.forget_queue(q.id).await.unwrap();
    assert!(read(b, Some(q.id), 0, 30_000).await.is_empty());
    assert_eq!(read(b, Some(other.id), 0, 30_000).await.len(), 1);
}

pub async fn concurrent_flushes_of_one_bucket_are_all_kept(b: &Backends) {
    let q = queue(b, "flushed", 1).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (b, id) = (b.clone(), q.id);
            tokio::spawn(
                async move { b.statistics.merge_buckets(vec![bucket(id, 0, 10_000, figures(1, &[i + 1]))]).await },
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = read(b, Some(q.id), 0, 10_000).await;
    assert_eq!(got[0].3.count(Count::Published), 20);
    assert_eq!(got[0].3.distribution(Latency::Publish).count, 20);
}

pub async fn roll_up_merges_old_buckets_and_expiry_removes_them(b: &Backends) {
    let q = queue(b, "aged", 1).await;
    let buckets = (0..12).map(|i| bucket(q.id, i * 10_000, 10_000, figures(1, &[i as u64 + 1]))).collect();
    b.statistics.merge_buckets(buckets).await.unwrap();
    // The first minute's six buckets become one; the second minute's stay.
    let merged = b.statistics.roll_up(10_000, 60_000, Timestamp(BASE + 60_000)).await.unwrap();
    assert_eq!(merged, 6);
    let got = read(b, Some(q.id), 0, 120_000).await;
    let widths: Vec<_> = got.iter().map(|(_, start, width, _)| (*start, *width)).collect();
    assert_eq!(widths[0], (0, 60_000), "{widths:?}");
    assert_eq!(widths.len(), 7, "{widths:?}");
    assert_eq!(got[0].3.count(Count::Published), 6);
    assert_eq!(got[0].3.distribution(Latency::Publish).count, 6);
    assert_eq!(b.statistics.roll_up(10_000, 60_000, Timestamp(BASE + 60_000)).await.unwrap(), 0);
    assert_eq!(b.statistics.expire_buckets(Timestamp(BASE + 60_000)).await.unwrap(), 1);
    assert_eq!(read(b, Some(q.id), 0, 120_000).await.len(), 6);
}
