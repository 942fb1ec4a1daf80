//! Leases and settlements of delivery groups.

use std::{collections::HashSet, sync::Arc};

use shared::{domain::Timestamp, ops::Backends, ports::*};

use crate::common::*;

pub async fn a_group_gets_each_record_once_while_leases_hold(b: &Backends) {
    let q = queue(b, "once", 2).await;
    fill(b, &q, 3).await;
    let g = group("g");
    let first = acquire(b, &q, &g, "c1", 4, T0).await;
    let second = acquire(b, &q, &g, "c2", 4, T0).await;
    assert_eq!((first.len(), second.len()), (4, 2));
    let all: HashSet<(u32, u64)> = offsets(&first).into_iter().chain(offsets(&second)).collect();
    assert_eq!(all.len(), 6);
    assert!(first.iter().chain(&second).all(|l| l.delivery_count == 1 && l.until == T0.plus_ms(1000)));
    assert!(acquire(b, &q, &g, "c3", 4, T0).await.is_empty());
    let rows = b.leases.deliveries(q.id, 0, 0).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].state, rows[0].first_delivered_at, rows[0].until),
        (DeliveryState::Leased, Some(T0), Some(T0.plus_ms(1000)))
    );
}

pub async fn groups_are_independent(b: &Backends) {
    let q = queue(b, "fanout", 1).await;
    fill(b, &q, 3).await;
    for name in ["a", "b"] {
        assert_eq!(acquire(b, &q, &group(name), "c", 10, T0).await.len(), 3);
    }
    let sub = GroupRef::Subscription("a".into());
    assert_eq!(acquire(b, &q, &sub, "c", 10, T0).await.len(), 3, "a subscription is not the group of the same name");
    let positions = b.leases.groups(q.id).await.unwrap();
    assert_eq!(positions.len(), 3);
    assert!(positions.iter().all(|p| p.leased == 3 && p.available == 0 && p.fetch_offsets == vec![(0, 3)]));
    let per_record = b.leases.deliveries(q.id, 0, 1).await.unwrap();
    assert_eq!(per_record.len(), 3, "one state per group");
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
    let rows = b.leases.deliveries(q.id, 0, 0).await.unwrap();
    assert_eq!(rows[0].consumer.as_deref(), Some("c2"));
    assert_eq!((rows[0].first_delivered_at, rows[0].last_delivered_at), (Some(T0), Some(T0.plus_ms(1000))));
}

pub async fn a_finished_record_refuses_every_settlement(b: &Backends) {
    let q = queue(b, "ack", 1).await;
    fill(b, &q, 1).await;
    let g = group("g");
    let lease = acquire(b, &q, &g, "c", 1, T0).await[0];
    let done = settle(b, &q, &g, &lease, Settlement::Acknowledge, T0.plus_ms(10)).await.unwrap();
    assert_eq!(
        (done.state, done.finished_at, done.consumer),
        (DeliveryState::Acknowledged, Some(T0.plus_ms(10)), None)
    );
    let again = settle(b, &q, &g, &lease, Settlement::Acknowledge, T0.plus_ms(20)).await;
    assert!(matches!(again, Err(SettleRefusal::Finished(d)) if d.finished_at == Some(T0.plus_ms(10))));
    let release = settle(b, &q, &g, &lease, Settlement::Release { at: T0 }, T0.plus_ms(30)).await;
    assert!(matches!(release, Err(SettleRefusal::Finished(d)) if d.state == DeliveryState::Acknowledged));
    assert!(acquire(b, &q, &g, "c", 1, T0.plus_ms(5000)).await.is_empty(), "finished records are not redelivered");
    let other = settle(b, &q, &group("other"), &lease, Settlement::Acknowledge, T0).await;
    assert_eq!(other, Err(SettleRefusal::NotDelivered));
}

pub async fn a_stale_delivery_cannot_settle(b: &Backends) {
    let q = queue(b, "stale", 1).await;
    fill(b, &q, 1).await;
    let g = group("g");
    let old = acquire(b, &q, &g, "c1", 1, T0).await[0];
    let new = acquire(b, &q, &g, "c2", 1, T0.plus_ms(1500)).await[0];
    let stale = settle(b, &q, &g, &old, Settlement::Acknowledge, T0.plus_ms(1600)).await;
    assert!(matches!(stale, Err(SettleRefusal::Superseded(d)) if d.delivery_count == 2));
    let reason = SettleRequest {
        reason: Some("done".into()),
        ..SettleRequest::new(
            shared::domain::MessageId { queue_id: q.id, partition: 0, offset: 0 },
            &g,
            Settlement::Acknowledge,
            T0.plus_ms(1600),
            None,
        )
    };
    let done = b.leases.settle(&reason).await.unwrap().unwrap();
    assert_eq!((done.delivery_count, done.reason.as_deref()), (2, Some("done")), "no expectation: the current one");
    assert!(matches!(settle(b, &q, &g, &new, Settlement::Acknowledge, T0).await, Err(SettleRefusal::Finished(_))));
}

pub async fn a_release_waits_until_its_time(b: &Backends) {
    let q = queue(b, "delay", 1).await;
    fill(b, &q, 1).await;
    let g = group("g");
    let lease = acquire(b, &q, &g, "c", 1, T0).await[0];
    let released = settle(b, &q, &g, &lease, Settlement::Release { at: T0.plus_ms(500) }, T0).await.unwrap();
    assert_eq!(
        (released.state, released.retry_count, released.until),
        (DeliveryState::Available, 1, Some(T0.plus_ms(500)))
    );
    assert_eq!(b.leases.groups(q.id).await.unwrap()[0].available, 1);
    assert!(acquire(b, &q, &g, "c", 1, T0.plus_ms(499)).await.is_empty());
    let again = acquire(b, &q, &g, "c", 1, T0.plus_ms(500)).await;
    assert_eq!((again[0].delivery_count, again[0].retry_count), (2, 1));
}

pub async fn extend_needs_a_live_lease_and_hold_takes_any_open_record(b: &Backends) {
    let q = queue(b, "extend", 1).await;
    fill(b, &q, 2).await;
    let g = group("g");
    let leases = acquire(b, &q, &g, "c", 2, T0).await;
    let extended = settle(b, &q, &g, &leases[0], Settlement::Extend { until: T0.plus_ms(5000) }, T0.plus_ms(900)).await;
    assert_eq!(extended.unwrap().until, Some(T0.plus_ms(5000)));
    assert_eq!(acquire(b, &q, &g, "other", 2, T0.plus_ms(4000)).await.len(), 1, "only the lapsed one");
    let late = settle(b, &q, &g, &leases[0], Settlement::Extend { until: T0.plus_ms(9000) }, T0.plus_ms(5000)).await;
    assert!(matches!(late, Err(SettleRefusal::NotLeased(_))));
    let held = settle(b, &q, &g, &leases[0], Settlement::Hold { until: T0.plus_ms(60_000) }, T0.plus_ms(5000)).await;
    assert_eq!(held.unwrap().state, DeliveryState::Leased);
    let later = acquire(b, &q, &g, "c", 2, T0.plus_ms(59_000)).await;
    assert_eq!(offsets(&later), [(0, 1)], "the held one stays held; the other had lapsed");
}

pub async fn drops_end_in_their_final_state(b: &Backends) {
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
        let d = settle(b, &q, &g, lease, Settlement::Drop { cause, dead_lettered }, T0.plus_ms(7)).await.unwrap();
        assert_eq!((d.state, d.finished_at), (state, Some(T0.plus_ms(7))));
    }
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
                    got.extend(offsets(&leases));
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
    b.leases.start_group(q.id, &g, &[(0, 2)]).await.unwrap();
    assert!(acquire(b, &q, &g, "d", 10, T0).await.is_empty());
    b.leases.start_group(q.id, &g, &[(0, 0)]).await.unwrap();
    assert!(acquire(b, &q, &g, "d", 10, T0).await.is_empty(), "a started group keeps its position");
    append(b, &q, 0, record("new", T0)).await.unwrap();
    assert_eq!(offsets(&acquire(b, &q, &g, "d", 10, T0).await), [(0, 2)]);
}

pub async fn leases_are_counted_per_consumer_while_they_hold(b: &Backends) {
    let q = queue(b, "held", 1).await;
    fill(b, &q, 3).await;
    let g = group("g");
    acquire(b, &q, &g, "c", 2, T0).await;
    acquire(b, &q, &g, "d", 1, T0.plus_ms(500)).await;
    assert_eq!(b.leases.leased_by(q.id, &g, "c", T0).await.unwrap(), 2);
    assert_eq!(b.leases.leased_by(q.id, &g, "d", T0.plus_ms(1000)).await.unwrap(), 1);
    assert_eq!(b.leases.leased_by(q.id, &g, "c", T0.plus_ms(1000)).await.unwrap(), 0, "lapsed");
    assert_eq!(b.leases.leased_by(q.id, &group("h"), "c", T0).await.unwrap(), 0);
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
    let got = b.leases.acquire(&req).await.unwrap().leases;
    assert_eq!(offsets(&got), vec![(0, 0), (1, 0), (2, 0)]);
    assert!(b.leases.acquire(&req).await.unwrap().leases.is_empty(), "every partition has one in flight");
    settle(b, &q, &g, &got[1], Settlement::Acknowledge, T0).await.unwrap();
    settle(b, &q, &g, &got[2], Settlement::Release { at: T0 }, T0).await.unwrap();
    let next = b.leases.acquire(&req).await.unwrap().leases;
    assert_eq!(offsets(&next), vec![(2, 0), (1, 1)], "due redeliveries first");
    let only_zero: Vec<_> = partitions.into_iter().filter(|p| p.partition == 0).collect();
    let (lapsed, limited) = (T0.plus_ms(1000), AcquireRequest { partitions: only_zero, ..req });
    let again = b.leases.acquire(&AcquireRequest { now: lapsed, ..limited }).await.unwrap().leases;
    assert_eq!(offsets(&again), vec![(0, 0)], "only the listed partition");
}

pub async fn records_trimmed_unseen_are_skipped_and_forgotten(b: &Backends) {
    let q = queue(b, "trim", 1).await;
    for i in 0..6 {
        append(b, &q, 0, record("x", Timestamp(T0.0 + i))).await.unwrap();
    }
    let g = group("g");
    assert_eq!(offsets(&acquire(b, &q, &g, "c", 1, T0).await), [(0, 0)]);
    b.log.trim(q.id, Timestamp(T0.0 + 3), None).await.unwrap();
    b.leases.forget_below(q.id, &[(0, 3)]).await.unwrap();
    assert!(b.leases.deliveries(q.id, 0, 0).await.unwrap().is_empty());
    let next = acquire_all(b, &q, &g, "c", 10, T0).await;
    assert_eq!(offsets(&next.leases), [(0, 3), (0, 4), (0, 5)]);
    assert_eq!(next.skipped, 2, "offsets 1 and 2 were trimmed before the group reached them");
}

pub async fn a_forgotten_group_or_queue_starts_over(b: &Backends) {
    let q = queue(b, "forget", 1).await;
    fill(b, &q, 2).await;
    let (g, h) = (group("g"), group("h"));
    acquire(b, &q, &g, "c", 2, T0).await;
    acquire(b, &q, &h, "c", 2, T0).await;
    b.leases.forget_group(q.id, &g).await.unwrap();
    let groups: Vec<GroupRef> = b.leases.groups(q.id).await.unwrap().into_iter().map(|p| p.group).collect();
    assert_eq!(groups, std::slice::from_ref(&h));
    assert_eq!(acquire(b, &q, &g, "c", 2, T0).await.len(), 2, "from the start again");
    b.leases.forget_queue(q.id).await.unwrap();
    assert!(b.leases.groups(q.id).await.unwrap().is_empty());
    assert!(b.leases.deliveries(q.id, 0, 0).await.unwrap().is_empty());
}

/// A store that reads the leased records with the leases gives the log's, each with its lease.
pub async fn records_read_with_leases_are_the_logs(b: &Backends) {
    let q = queue(b, "records", 2).await;
    fill(b, &q, 3).await;
    let g = group("g");
    let first = acquire_all(b, &q, &g, "c1", 4, T0).await;
    // The first lease lapses: the next acquire takes it again (due) with two new offsets.
    let again = acquire_all(b, &q, &g, "c2", 3, T0.plus_ms(1000)).await;
    assert_eq!((first.leases.len(), again.leases.len()), (4, 3));
    assert!(again.leases.iter().any(|l| l.delivery_count > 1), "a lapsed lease is due again: {again:?}");
    for acquired in [first, again] {
        let Some(records) = &acquired.records else { continue };
        assert_eq!(records.len(), acquired.leases.len(), "one record per lease");
        for (lease, record) in acquired.leases.iter().zip(records) {
            let limit = ReadLimit { records: 1, bytes: u64::MAX };
            let read = b.log.read_range(q.id, lease.partition, lease.offset, limit).await.unwrap();
            assert_eq!(record.as_ref(), read.first().map(|(_, r)| r), "the record of {lease:?}");
        }
    }
}
