//! Scenarios every backend must pass.

use std::{collections::HashSet, sync::Arc};

use shared::{
    domain::{MessageId, QueueName, Timestamp},
    error::StoreError,
    ops::Backends,
    ports::*,
};

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn settings(partitions: u32) -> QueueSettings {
    QueueSettings {
        durable: true,
        auto_delete: false,
        exclusive: false,
        arguments: QueueArguments::default(),
        partitions,
        replication: 1,
        retention_ms: None,
        max_bytes: None,
    }
}

fn record(text: &str, at: Timestamp) -> Record {
    Record {
        key: None,
        routing_key: Some("a.b".into()),
        content: Content::Text(text.into()),
        headers: Default::default(),
        priority: None,
        ttl_ms: 3_600_000,
        persistent: true,
        published_at: at,
    }
}

async fn queue(b: &Backends, name: &str, partitions: u32) -> Queue {
    b.meta.create_queue(&QueueName::parse(name).unwrap(), &settings(partitions), None).await.unwrap()
}

async fn fill(b: &Backends, q: &Queue, per_partition: u64) {
    for p in 0..q.settings.partitions {
        for i in 0..per_partition {
            b.log.append(q.id, p, record(&format!("{p}/{i}"), T0)).await.unwrap();
        }
    }
}

fn group(name: &str) -> GroupRef {
    GroupRef::Consumers(name.into())
}

async fn acquire(b: &Backends, q: &Queue, g: &GroupRef, consumer: &str, max: u32, now: Timestamp) -> Vec<Lease> {
    let partitions = b.log.partitions(q.id).await.unwrap();
    let req = AcquireRequest {
        queue: q.id,
        group: g.clone(),
        consumer: consumer.into(),
        max,
        lease_ms: 1000,
        now,
        partitions,
        per_partition: None,
    };
    b.delivery.acquire(&req).await.unwrap()
}

async fn settle(
    b: &Backends,
    q: &Queue,
    g: &GroupRef,
    l: &Lease,
    s: Settlement,
    now: Timestamp,
) -> Result<Delivery, SettleRefusal> {
    let req = SettleRequest {
        queue: q.id,
        group: g.clone(),
        partition: l.partition,
        offset: l.offset,
        settlement: s,
        now,
        expect_delivery: Some(l.delivery_count),
        reason: None,
    };
    b.delivery.settle(&req).await.unwrap()
}

pub async fn appended_records_read_back_with_dense_offsets(b: &Backends) {
    let q = queue(b, "log", 2).await;
    for i in 0..5u64 {
        assert_eq!(b.log.append(q.id, 1, record(&i.to_string(), T0)).await.unwrap(), i);
    }
    let id = MessageId { queue_id: q.id, partition: 1, offset: 3 };
    let got = b.log.read(id).await.unwrap().unwrap();
    assert_eq!(got, record("3", T0));
    assert!(b.log.read(MessageId { offset: 5, ..id }).await.unwrap().is_none());
    let parts = b.log.partitions(q.id).await.unwrap();
    assert_eq!(parts.iter().find(|p| p.partition == 1).map(|p| (p.start_offset, p.end_offset)), Some((0, 5)));
    assert_eq!(b.log.count_live(q.id, T0, &[(1, 2)]).await.unwrap(), 3);
    assert_eq!(b.log.count_live(q.id, T0.plus_ms(3_600_000), &[]).await.unwrap(), 0);
}

pub async fn an_append_to_a_deleted_queue_is_refused(b: &Backends) {
    let q = queue(b, "gone", 1).await;
    assert!(b.meta.delete_queue(q.id).await.unwrap());
    b.log.delete_log(q.id).await.unwrap();
    assert!(matches!(b.log.append(q.id, 0, record("x", T0)).await, Err(StoreError::NotFound)));
    assert!(!b.meta.delete_queue(q.id).await.unwrap());
}

pub async fn queue_names_are_unique_and_ids_never_reused(b: &Backends) {
    let first = queue(b, "same", 1).await;
    let again = b.meta.create_queue(&first.name, &settings(1), None).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))));
    b.meta.delete_queue(first.id).await.unwrap();
    let second = queue(b, "same", 1).await;
    assert_ne!(first.id, second.id);
    assert_eq!(b.meta.queue(&second.name).await.unwrap().map(|q| q.id), Some(second.id));
    assert!(b.meta.queue_by_id(first.id).await.unwrap().is_none());
    let mut changed = settings(1);
    changed.arguments.message_ttl_ms = Some(5);
    assert_eq!(b.meta.update_queue(second.id, &changed).await.unwrap().settings, changed);
    assert!(matches!(b.meta.update_queue(first.id, &changed).await, Err(StoreError::NotFound)));
}

pub async fn subscriptions_belong_to_their_queue(b: &Backends) {
    let q = queue(b, "subs", 1).await;
    let sub = Subscription {
        id: "sub_1".into(),
        queue_id: q.id,
        queue: q.name.clone(),
        routing_key: shared::domain::RoutingPattern::all(),
        callback_url: "https://example.com/h".into(),
        headers: Default::default(),
        retry_policy: RetryPolicy { max_retries: 3, retry_delay: 1000, backoff_multiplier: 2.0 },
        dead_letter_queue: None,
        prefetch_count: 10,
        match_headers: None,
        paused_reason: None,
        secret: "whsec_c2VjcmV0".into(),
        status: "active".into(),
        owner: None,
        created_at: T0.0,
        updated_at: T0.0,
    };
    b.meta.create_subscription(&sub).await.unwrap();
    assert_eq!(b.meta.subscription("sub_1").await.unwrap(), Some(sub.clone()));
    assert_eq!(b.meta.subscriptions(Some(q.id)).await.unwrap().len(), 1);
    assert!(matches!(
        b.meta.create_subscription(&Subscription { id: "sub_2".into(), queue_id: q.id + 99, ..sub }).await,
        Err(StoreError::NotFound)
    ));
    b.meta.delete_queue(q.id).await.unwrap();
    assert!(b.meta.subscription("sub_1").await.unwrap().is_none());
}

pub async fn a_group_gets_each_record_once_while_leases_hold(b: &Backends) {
    let q = queue(b, "once", 2).await;
    fill(b, &q, 3).await;
    let g = group("g");
    let first = acquire(b, &q, &g, "c1", 4, T0).await;
    let second = acquire(b, &q, &g, "c2", 4, T0).await;
    assert_eq!((first.len(), second.len()), (4, 2));
    let all: HashSet<(u32, u64)> = first.iter().chain(&second).map(|l| (l.partition, l.offset)).collect();
    assert_eq!(all.len(), 6);
    assert!(first.iter().chain(&second).all(|l| l.delivery_count == 1 && l.until == T0.plus_ms(1000)));
    assert!(acquire(b, &q, &g, "c3", 4, T0).await.is_empty());
    let counters = b.delivery.counters(q.id).await.unwrap();
    assert_eq!((counters.consumed, counters.redelivered), (6, 0));
}

pub async fn groups_are_independent(b: &Backends) {
    let q = queue(b, "fanout", 1).await;
    fill(b, &q, 3).await;
    for name in ["a", "b"] {
        assert_eq!(acquire(b, &q, &group(name), "c", 10, T0).await.len(), 3);
    }
    let sub = GroupRef::Subscription("a".into());
    assert_eq!(acquire(b, &q, &sub, "c", 10, T0).await.len(), 3, "a subscription is not the group of the same name");
    let positions = b.delivery.groups(q.id).await.unwrap();
    assert_eq!(positions.len(), 3);
    assert!(positions.iter().all(|p| p.leased == 3 && p.fetch_offsets == vec![(0, 3)]));
}

pub async fn a_lapsed_lease_is_delivered_again_with_a_higher_count(b: &Backends) {
    let q = queue(b, "lapse", 1).await;
    fill(b, &q, 1).await;
    let g = group("g");
    let first = acquire(b, &q, &g, "c1", 1, T0).await;
    assert!(acquire(b, &q, &g, "c2", 1, T0.plus_ms(999)).await.is_empty());
    let again = acquire(b, &q, &g, "c2", 1, T0.plus_ms(1000)).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].offset, again[0].delivery_count), (first[0].offset, 2));
    assert_eq!(b.delivery.counters(q.id).await.unwrap().redelivered, 1);
    let rows = b.delivery.deliveries(q.id, 0, 0).await.unwrap();
    assert_eq!(rows[0].consumer.as_deref(), Some("c2"));
    assert_eq!(rows[0].first_delivered_at, Some(T0));
}

pub async fn acknowledging_is_idempotent_and_final(b: &Backends) {
    let q = queue(b, "ack", 1).await;
    fill(b, &q, 1).await;
    let g = group("g");
    let lease = acquire(b, &q, &g, "c", 1, T0).await[0];
    let done = settle(b, &q, &g, &lease, Settlement::Acknowledge, T0.plus_ms(10)).await.unwrap();
    assert_eq!((done.state, done.finished_at), (DeliveryState::Acknowledged, Some(T0.plus_ms(10))));
    let again = settle(b, &q, &g, &lease, Settlement::Acknowledge, T0.plus_ms(20)).await.unwrap();
    assert_eq!(again.finished_at, Some(T0.plus_ms(10)), "the first acknowledgement stands");
    let release = settle(b, &q, &g, &lease, Settlement::Release { at: T0 }, T0.plus_ms(30)).await;
    assert!(matches!(release, Err(SettleRefusal::Finished(d)) if d.state == DeliveryState::Acknowledged));
    assert!(acquire(b, &q, &g, "c", 1, T0.plus_ms(5000)).await.is_empty(), "finished records are not redelivered");
    let other = settle(b, &q, &group("other"), &lease, Settlement::Acknowledge, T0).await;
    assert_eq!(other, Err(SettleRefusal::NotDelivered));
    assert_eq!(b.delivery.counters(q.id).await.unwrap().acknowledged, 1);
}

pub async fn a_stale_delivery_cannot_settle(b: &Backends) {
    let q = queue(b, "stale", 1).await;
    fill(b, &q, 1).await;
    let g = group("g");
    let old = acquire(b, &q, &g, "c1", 1, T0).await[0];
    let new = acquire(b, &q, &g, "c2", 1, T0.plus_ms(1500)).await[0];
    let stale = settle(b, &q, &g, &old, Settlement::Acknowledge, T0.plus_ms(1600)).await;
    assert!(matches!(stale, Err(SettleRefusal::Superseded(d)) if d.delivery_count == 2));
    assert!(settle(b, &q, &g, &new, Settlement::Acknowledge, T0.plus_ms(1600)).await.is_ok());
}

pub async fn release_with_delay_waits(b: &Backends) {
    let q = queue(b, "delay", 1).await;
    fill(b, &q, 1).await;
    let g = group("g");
    let lease = acquire(b, &q, &g, "c", 1, T0).await[0];
    let released = settle(b, &q, &g, &lease, Settlement::Release { at: T0.plus_ms(500) }, T0).await.unwrap();
    assert_eq!((released.state, released.retry_count), (DeliveryState::Available, 1));
    assert!(acquire(b, &q, &g, "c", 1, T0.plus_ms(499)).await.is_empty());
    let again = acquire(b, &q, &g, "c", 1, T0.plus_ms(500)).await;
    assert_eq!((again[0].delivery_count, again[0].retry_count), (2, 1));
    assert_eq!(b.delivery.counters(q.id).await.unwrap().requeued, 1);
}

pub async fn extend_needs_a_live_lease(b: &Backends) {
    let q = queue(b, "extend", 1).await;
    fill(b, &q, 1).await;
    let g = group("g");
    let lease = acquire(b, &q, &g, "c", 1, T0).await[0];
    let extended = settle(b, &q, &g, &lease, Settlement::Extend { until: T0.plus_ms(5000) }, T0.plus_ms(900)).await;
    assert_eq!(extended.unwrap().until, Some(T0.plus_ms(5000)));
    assert!(acquire(b, &q, &g, "other", 1, T0.plus_ms(4000)).await.is_empty());
    let late = settle(b, &q, &g, &lease, Settlement::Extend { until: T0.plus_ms(9000) }, T0.plus_ms(5000)).await;
    assert!(matches!(late, Err(SettleRefusal::NotLeased(_))));
}

pub async fn drops_count_and_dead_letter(b: &Backends) {
    let q = queue(b, "drops", 1).await;
    fill(b, &q, 3).await;
    let g = group("g");
    let leases = acquire(b, &q, &g, "c", 3, T0).await;
    let outcomes = [
        (DropCause::Rejected, false, DeliveryState::Rejected),
        (DropCause::Expired, true, DeliveryState::DeadLettered),
        (DropCause::DeliveryLimit, false, DeliveryState::Rejected),
    ];
    for (lease, (cause, dead_lettered, state)) in leases.iter().zip(outcomes) {
        let d =
            settle(b, &q, &g, lease, Settlement::Drop { cause, dead_lettered, handed_out: true }, T0).await.unwrap();
        assert_eq!(d.state, state);
    }
    let c = b.delivery.counters(q.id).await.unwrap();
    assert_eq!((c.rejected, c.expired, c.dead_lettered, c.acknowledged), (1, 1, 1, 0));
}

pub async fn concurrent_acquires_never_share_a_record(b: &Backends) {
    let q = queue(b, "race", 3).await;
    fill(b, &q, 20).await;
    let b = Arc::new(b.clone());
    let tasks: Vec<_> = (0..6)
        .map(|c| {
            let (b, q) = (b.clone(), q.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let leases = acquire(&b, &q, &group("g"), &format!("c{c}"), 3, T0).await;
                    if leases.is_empty() {
                        return got;
                    }
                    got.extend(leases.iter().map(|l| (l.partition, l.offset)));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for t in tasks {
        for item in t.await.unwrap() {
            assert!(seen.insert(item), "{item:?} was leased twice");
        }
    }
    assert_eq!(seen.len(), 60);
}

pub async fn a_new_group_can_start_at_the_end(b: &Backends) {
    let q = queue(b, "late", 1).await;
    fill(b, &q, 2).await;
    let g = GroupRef::Subscription("sub_x".into());
    b.delivery.start_group(q.id, &g, &[(0, 2)]).await.unwrap();
    assert!(acquire(b, &q, &g, "d", 10, T0).await.is_empty());
    b.log.append(q.id, 0, record("new", T0)).await.unwrap();
    let got = acquire(b, &q, &g, "d", 10, T0).await;
    assert_eq!(got.iter().map(|l| l.offset).collect::<Vec<_>>(), vec![2]);
}

pub async fn consumers_register_and_spend_tokens(b: &Backends) {
    let q = queue(b, "limited", 1).await;
    let c = ConsumerRecord {
        group: "g".into(),
        consumer: "c".into(),
        topics: vec!["limited".into()],
        max_concurrency: Some(2),
        rate_limit: Some(4),
        registered_at: T0,
        last_seen_at: None,
    };
    b.delivery.register_consumer(&c).await.unwrap();
    assert_eq!(b.delivery.consumer("g", "c").await.unwrap(), Some(c));
    assert_eq!(b.delivery.take_tokens("g", "c", 3, 4, T0).await.unwrap(), 3);
    assert_eq!(b.delivery.take_tokens("g", "c", 3, 4, T0).await.unwrap(), 1);
    assert_eq!(b.delivery.take_tokens("g", "c", 3, 4, T0).await.unwrap(), 0);
    assert_eq!(b.delivery.take_tokens("g", "c", 3, 4, T0.plus_ms(500)).await.unwrap(), 2);
    assert_eq!(b.delivery.active_consumers(q.id, "limited", T0).await.unwrap(), 1);
    fill(b, &q, 2).await;
    acquire(b, &q, &group("g"), "c", 1, T0).await;
    assert_eq!(b.delivery.leased_by(q.id, &group("g"), "c", T0).await.unwrap(), 1);
    assert_eq!(b.delivery.leased_by(q.id, &group("g"), "c", T0.plus_ms(1000)).await.unwrap(), 0);
    acquire(b, &q, &group("h"), "other", 1, T0).await;
    assert_eq!(b.delivery.active_consumers(q.id, "limited", T0).await.unwrap(), 2);
}

pub async fn ordered_acquires_take_one_per_partition(b: &Backends) {
    let q = queue(b, "ordered", 3).await;
    fill(b, &q, 4).await;
    let g = GroupRef::Subscription("sub_o".into());
    let partitions = b.log.partitions(q.id).await.unwrap();
    let req = AcquireRequest {
        queue: q.id,
        group: g.clone(),
        consumer: "d".into(),
        max: 10,
        lease_ms: 1000,
        now: T0,
        partitions: partitions.clone(),
        per_partition: Some(1),
    };
    let got = b.delivery.acquire(&req).await.unwrap();
    assert_eq!(got.iter().map(|l| (l.partition, l.offset)).collect::<Vec<_>>(), vec![(0, 0), (1, 0), (2, 0)]);
    assert!(b.delivery.acquire(&req).await.unwrap().is_empty(), "every partition has one in flight");
    settle(b, &q, &g, &got[1], Settlement::Acknowledge, T0).await.unwrap();
    let release = Settlement::Release { at: T0 };
    settle(b, &q, &g, &got[2], release, T0).await.unwrap();
    let next = b.delivery.acquire(&req).await.unwrap();
    assert_eq!(
        next.iter().map(|l| (l.partition, l.offset)).collect::<Vec<_>>(),
        vec![(2, 0), (1, 1)],
        "due redeliveries first"
    );
    let only_zero: Vec<_> = partitions.into_iter().filter(|p| p.partition == 0).collect();
    let (lapsed, limited) = (T0.plus_ms(1000), AcquireRequest { partitions: only_zero, ..req });
    let again = b.delivery.acquire(&AcquireRequest { now: lapsed, ..limited }).await.unwrap();
    assert_eq!(
        again.iter().map(|l| (l.partition, l.offset)).collect::<Vec<_>>(),
        vec![(0, 0)],
        "only the listed partition"
    );
}

pub async fn retention_trims_and_groups_skip_trimmed_records(b: &Backends) {
    let q = queue(b, "trim", 1).await;
    for i in 0..6 {
        b.log.append(q.id, 0, record(&"x".repeat(10), Timestamp(T0.0 + i))).await.unwrap();
    }
    let g = group("g");
    let early = acquire(b, &q, &g, "c", 1, T0).await;
    assert_eq!(early[0].offset, 0);
    assert_eq!(b.log.trim(q.id, Timestamp(T0.0 + 3), None).await.unwrap(), 3);
    let parts = b.log.partitions(q.id).await.unwrap();
    assert_eq!((parts[0].start_offset, parts[0].end_offset), (3, 6));
    b.delivery.forget_below(q.id, &[(0, 3)]).await.unwrap();
    assert!(b.delivery.deliveries(q.id, 0, 0).await.unwrap().is_empty());
    let next = acquire(b, &q, &g, "c", 10, T0).await;
    assert_eq!(next.iter().map(|l| l.offset).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert_eq!(b.delivery.counters(q.id).await.unwrap().expired, 2, "offsets 1 and 2 were trimmed unseen");
    assert_eq!(b.log.trim(q.id, Timestamp(0), Some(25)).await.unwrap(), 1);
}
