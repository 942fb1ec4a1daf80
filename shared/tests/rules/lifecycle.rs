//! One rule at a time: leases, requeues, delivery limits, TTL, dead-lettering.

use shared::{
    error::Error,
    ops::{MessageStatus, SettleKind},
    ports::QueueArguments,
};

use super::*;

fn with_dlq(limit: Option<u32>, ttl: Option<u64>) -> QueueArguments {
    QueueArguments {
        dead_letter_queue: Some(name("work.dlq")),
        delivery_limit: limit,
        message_ttl_ms: ttl,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_lapsed_lease_is_redelivered_with_a_higher_count() {
    let h = Harness::new();
    let id = h.publish("work", 1).await;
    assert_eq!(h.consume("work", "g", "a", 1).await[0].lease.delivery_count, 1);
    assert!(h.consume("work", "g", "b", 1).await.is_empty(), "the lease holds");
    h.clock.advance_ms(1000);
    let again = h.consume("work", "g", "b", 1).await;
    assert_eq!((again[0].id.to_string(), again[0].lease.delivery_count), (id.clone(), 2));
    let view = h.service.message(&h.caller, &id).await.unwrap();
    assert_eq!((view.status, view.redelivery_count()), (MessageStatus::Delivered, 1));
}

#[tokio::test]
async fn past_the_delivery_limit_a_message_is_dead_lettered() {
    let h = Harness::new();
    h.declare("work", with_dlq(Some(2), None)).await;
    let id = h.publish("work", 1).await;
    for _ in 0..2 {
        assert_eq!(h.consume("work", "g", "a", 1).await.len(), 1);
        h.clock.advance_ms(1000);
    }
    assert!(h.consume("work", "g", "a", 1).await.is_empty());
    let view = h.service.message(&h.caller, &id).await.unwrap();
    assert_eq!(view.status, MessageStatus::DeadLettered);
    let dead = h.consume("work.dlq", "audit", "x", 10).await;
    assert_eq!(dead.len(), 1);
    let headers = &dead[0].record.headers;
    assert_eq!(headers["x-dead-letter-reason"], "delivery_limit");
    assert_eq!(headers["x-original-message-id"], id.as_str());
    assert_eq!(headers["x-delivery-count"], 3);
}

#[tokio::test]
async fn an_expired_message_is_never_delivered() {
    let h = Harness::new();
    h.declare("work", with_dlq(None, Some(500))).await;
    h.declare("plain", QueueArguments::default()).await;
    let dead = h.publish("work", 1).await;
    let dropped = h.publish_with_ttl("plain", 2, Some(500)).await;
    h.clock.advance_ms(500);
    assert!(h.consume("work", "g", "a", 10).await.is_empty());
    assert!(h.consume("plain", "g", "a", 10).await.is_empty());
    assert_eq!(h.service.message(&h.caller, &dead).await.unwrap().status, MessageStatus::DeadLettered);
    assert_eq!(h.service.message(&h.caller, &dropped).await.unwrap().status, MessageStatus::Expired);
    let in_dlq = h.consume("work.dlq", "audit", "x", 10).await;
    assert_eq!(in_dlq[0].record.headers["x-dead-letter-reason"], "expired");
    let status = h.service.queue_status(&h.caller, &name("plain")).await.unwrap();
    assert_eq!((status.counters.expired, status.message_count), (1, 0));
}

#[tokio::test]
async fn reject_without_requeue_dead_letters_or_drops() {
    let h = Harness::new();
    h.declare("work", with_dlq(None, None)).await;
    let a = h.publish("work", 1).await;
    let b = h.publish("plain", 2).await;
    h.consume("work", "g", "c", 1).await;
    h.consume("plain", "g", "c", 1).await;
    let reject = || SettleKind::Reject { reason: Some("bad".into()) };
    assert!(h.settle(&a, "g", reject()).await.unwrap().dead_lettered);
    assert!(!h.settle(&b, "g", reject()).await.unwrap().dead_lettered);
    assert_eq!(h.service.message(&h.caller, &b).await.unwrap().status, MessageStatus::Rejected);
    assert_eq!(h.consume("work.dlq", "audit", "x", 10).await[0].record.headers["x-dead-letter-detail"], "bad");
    let again = h.settle(&a, "g", reject()).await.unwrap_err();
    assert!(matches!(again, Error::DeliveryConflict { code: "already_settled", .. }));
}

#[tokio::test]
async fn a_delayed_requeue_waits_and_counts_a_retry() {
    let h = Harness::new();
    let id = h.publish("work", 1).await;
    h.consume("work", "g", "c", 1).await;
    h.settle(&id, "g", SettleKind::Requeue { delay_ms: 300 }).await.unwrap();
    assert!(h.consume("work", "g", "c", 1).await.is_empty());
    h.clock.advance_ms(300);
    let again = h.consume("work", "g", "c", 1).await;
    assert_eq!((again[0].lease.delivery_count, again[0].lease.retry_count), (2, 1));
    assert_eq!(h.service.message(&h.caller, &id).await.unwrap().retry_count(), 1);
}

#[tokio::test]
async fn extending_a_lease_keeps_others_away() {
    let h = Harness::new();
    let id = h.publish("work", 1).await;
    h.consume("work", "g", "slow", 1).await;
    h.clock.advance_ms(900);
    h.settle(&id, "g", SettleKind::Extend { lease_ms: 5000 }).await.unwrap();
    h.clock.advance_ms(4000);
    assert!(h.consume("work", "g", "other", 1).await.is_empty());
    h.clock.advance_ms(1000);
    let err = h.settle(&id, "g", SettleKind::Extend { lease_ms: 5000 }).await.unwrap_err();
    assert!(matches!(err, Error::DeliveryConflict { code: "lease_expired", .. }));
    assert_eq!(h.consume("work", "g", "other", 1).await.len(), 1);
}

#[tokio::test]
async fn settling_for_another_group_or_an_unknown_id_is_refused() {
    let h = Harness::new();
    let id = h.publish("work", 1).await;
    h.consume("work", "g", "c", 1).await;
    let other = h.settle(&id, "h", SettleKind::Acknowledge).await.unwrap_err();
    assert!(matches!(other, Error::DeliveryConflict { code: "not_delivered", .. }));
    let unknown = h.settle("msg_123456789", "g", SettleKind::Acknowledge).await.unwrap_err();
    assert!(matches!(unknown, Error::MessageNotFound { .. }));
    let first = h.settle(&id, "g", SettleKind::Acknowledge).await.unwrap();
    h.clock.advance_ms(50);
    let repeat = h.settle(&id, "g", SettleKind::Acknowledge).await.unwrap();
    assert_eq!(first.delivery.finished_at, repeat.delivery.finished_at);
}

#[tokio::test]
async fn a_full_queue_refuses_publishes_until_consumers_finish_some() {
    let h = Harness::new();
    h.declare("small", QueueArguments { max_length: Some(2), ..Default::default() }).await;
    let first = h.publish("small", 1).await;
    h.publish("small", 2).await;
    let cmd = |n| shared::ops::Publish {
        queue: name("small"),
        key: None,
        routing_key: None,
        content: shared::ports::Content::Text(format!("{n}")),
        headers: Default::default(),
        priority: None,
        ttl_ms: None,
        persistent: true,
    };
    let full = h.service.publish(&h.caller, cmd(3)).await.unwrap_err();
    assert!(matches!(full, Error::QueueFull { max_length: 2, message_count: 2, .. }));
    h.consume("small", "g", "c", 1).await;
    assert!(h.service.publish(&h.caller, cmd(4)).await.is_err(), "a leased message still counts");
    h.settle(&first, "g", SettleKind::Acknowledge).await.unwrap();
    h.service.publish(&h.caller, cmd(5)).await.unwrap();
}

#[tokio::test]
async fn expired_messages_leave_the_count_once_they_are_at_the_head() {
    let h = Harness::new();
    h.declare("mixed", QueueArguments::default()).await;
    h.publish_with_ttl("mixed", 1, Some(500)).await;
    h.publish("mixed", 2).await;
    h.publish_with_ttl("mixed", 3, Some(500)).await;
    let count = || async { h.service.queue_status(&h.caller, &name("mixed")).await.unwrap().message_count };
    assert_eq!(count().await, 3);
    h.clock.advance_ms(500);
    assert_eq!(count().await, 2, "the expired head is not counted; the one behind a live message is, for now");
    let got = h.consume("mixed", "g", "c", 10).await;
    assert_eq!(got.len(), 1, "only the live message is handed out");
    h.settle(&got[0].id.to_string(), "g", SettleKind::Acknowledge).await.unwrap();
    assert_eq!(count().await, 0, "the group reached and dropped both expired messages");
}
