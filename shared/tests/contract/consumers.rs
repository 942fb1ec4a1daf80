//! Registered consumers, their activity, and rate limits.

use shared::{ops::Backends, ports::*};

use crate::common::*;

fn consumer(group: &str, name: &str, topics: &[&str]) -> ConsumerRecord {
    ConsumerRecord {
        group: group.into(),
        consumer: name.into(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        max_concurrency: Some(2),
        rate_limit: Some(4),
        registered_at: T0,
        last_seen_at: None,
    }
}

pub async fn consumers_register_and_are_seen(b: &Backends) {
    let q = queue(b, "limited", 1).await;
    let c = consumer("g", "c", &["limited"]);
    b.registry.register_consumer(&c).await.unwrap();
    assert_eq!(b.registry.consumer("g", "c").await.unwrap(), Some(c.clone()));
    assert!(b.registry.consumer("g", "nobody").await.unwrap().is_none());
    let replaced = ConsumerRecord { max_concurrency: None, topics: vec!["other".into()], ..c.clone() };
    b.registry.register_consumer(&replaced).await.unwrap();
    assert_eq!(b.registry.consumer("g", "c").await.unwrap(), Some(replaced));
    b.registry.register_consumer(&c).await.unwrap();
    assert_eq!(b.registry.active_consumers(q.id, "limited", T0).await.unwrap(), 1, "registered for it");
    b.registry.seen(q.id, "h", "other", T0.plus_ms(10)).await.unwrap();
    b.registry.seen(q.id, "g", "c", T0.plus_ms(20)).await.unwrap();
    assert_eq!(b.registry.active_consumers(q.id, "limited", T0).await.unwrap(), 2, "the same consumer counts once");
    assert_eq!(b.registry.active_consumers(q.id, "limited", T0.plus_ms(15)).await.unwrap(), 1, "seen too long ago");
    assert_eq!(b.registry.consumer("g", "c").await.unwrap().unwrap().last_seen_at, Some(T0.plus_ms(20)));
    b.registry.seen(q.id, "g", "c", T0.plus_ms(5)).await.unwrap();
    assert_eq!(b.registry.consumer("g", "c").await.unwrap().unwrap().last_seen_at, Some(T0.plus_ms(20)), "never back");
    b.registry.forget_group(q.id, "h").await.unwrap();
    assert_eq!(b.registry.active_consumers(q.id, "limited", T0).await.unwrap(), 1);
    b.registry.forget_queue(q.id).await.unwrap();
    assert_eq!(b.registry.active_consumers(q.id, "limited", T0).await.unwrap(), 1, "registrations stay");
    assert_eq!(b.registry.consumer("g", "c").await.unwrap().unwrap().last_seen_at, None);
}

pub async fn rate_limits_spend_and_refill_tokens(b: &Backends) {
    let take = |want, at| b.limiter.take_tokens("g", "c", want, 4, at);
    assert_eq!(take(3, T0).await.unwrap(), 3, "a bucket starts full: one second of the rate");
    assert_eq!(take(3, T0).await.unwrap(), 1);
    assert_eq!(take(3, T0).await.unwrap(), 0);
    assert_eq!(take(3, T0.plus_ms(500)).await.unwrap(), 2, "refilled at 4 per second");
    assert_eq!(take(10, T0.plus_ms(60_000)).await.unwrap(), 4, "never more than one second's worth");
    assert_eq!(b.limiter.take_tokens("g", "d", 2, 4, T0.plus_ms(60_000)).await.unwrap(), 2, "buckets are per consumer");
    b.limiter.reset("g", "c").await.unwrap();
    assert_eq!(take(4, T0.plus_ms(60_000)).await.unwrap(), 4, "a reset bucket is full");
}
