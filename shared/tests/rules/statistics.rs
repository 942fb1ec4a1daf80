//! Figures through their life: recorded, flushed, read over ranges, rolled up and expired.

use shared::{
    clock::Clock,
    domain::{Count, Latency, Timestamp},
    ops::KEEP_MS,
};

use crate::Harness;

const HOUR: i64 = 3_600_000;

async fn published_between(h: &Harness, from: Timestamp, to: Timestamp) -> u64 {
    let figures = h.service.figures(None, from, to).await.unwrap();
    figures.values().map(|f| f.count(Count::Published)).sum()
}

#[tokio::test]
async fn rolled_up_figures_keep_their_counts_and_expire_after_thirty_days() {
    let h = Harness::new();
    let start = h.clock.now();
    // 3 publishes in each of 12 ten-second buckets over two minutes, flushed as they go.
    for _ in 0..12 {
        for n in 0..3 {
            h.publish("kept", n).await;
        }
        h.service.flush_statistics().await.unwrap();
        h.clock.advance_ms(10_000);
    }
    let end = h.clock.now();
    assert_eq!(published_between(&h, start, end).await, 36);
    // Past a day: ten-second buckets become minutes, then hours; the range still counts all 36.
    h.clock.advance_ms(25 * HOUR);
    h.service.statistics_retention().await.unwrap();
    assert_eq!(published_between(&h, start, end).await, 36);
    let all = h.service.figures(None, start, end).await.unwrap();
    let publish = all.values().next().unwrap().distribution(Latency::Publish);
    assert_eq!(publish.count, 36, "the histograms merged too");
    // Past the retention nothing is left.
    h.clock.advance_ms(KEEP_MS as i64);
    h.service.statistics_retention().await.unwrap();
    assert_eq!(published_between(&h, start, end).await, 0);
}

#[tokio::test]
async fn unflushed_figures_count_once_before_and_after_their_flush() {
    let h = Harness::new();
    let start = h.clock.now();
    for n in 0..4 {
        h.publish("pending", n).await;
    }
    let end = Timestamp(start.0 + 1);
    assert_eq!(published_between(&h, start, end).await, 4, "read from this process before any flush");
    h.service.flush_statistics().await.unwrap();
    assert_eq!(published_between(&h, start, end).await, 4, "read from the store after it");
    h.service.flush_statistics().await.unwrap();
    assert_eq!(published_between(&h, start, end).await, 4, "an empty flush adds nothing");
}
