//! Queues and subscriptions.

use shared::{
    callback::CallbackUrl,
    domain::{QueueName, RoutingPattern},
    error::StoreError,
    ops::Backends,
    ports::*,
    routing::HeaderMatch,
};

use crate::common::*;

pub async fn queue_names_are_unique_and_ids_never_reused(b: &Backends) {
    let first = queue(b, "same", 1).await;
    assert_eq!((first.created_at, first.updated_at), (T0, T0), "stamped with the time passed in");
    let again = b.meta.create_queue(&first.name, &settings(1), None, T0).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))));
    assert!(b.meta.delete_queue(first.id).await.unwrap());
    assert!(!b.meta.delete_queue(first.id).await.unwrap());
    let second = queue(b, "same", 1).await;
    assert_ne!(first.id, second.id);
    assert_eq!(b.meta.queue(&second.name).await.unwrap().map(|q| q.id), Some(second.id));
    assert!(b.meta.queue_by_id(first.id).await.unwrap().is_none());
    let mut changed = settings(1);
    changed.arguments.message_ttl_ms = Some(5);
    let later = T0.plus_ms(1000);
    let updated = b.meta.update_queue(second.id, &changed, later).await.unwrap();
    assert_eq!((updated.settings, updated.created_at, updated.updated_at), (changed.clone(), T0, later));
    assert!(matches!(b.meta.update_queue(first.id, &changed, later).await, Err(StoreError::NotFound)));
}

pub async fn queues_are_listed_by_name_with_their_owner(b: &Backends) {
    for name in ["zeta", "alpha", "mid"] {
        queue(b, name, 1).await;
    }
    let owned = b.meta.create_queue(&QueueName::parse("beta").unwrap(), &settings(2), Some("alice"), T0).await;
    assert_eq!(owned.unwrap().owner.as_deref(), Some("alice"));
    let names: Vec<String> = b.meta.queues().await.unwrap().iter().map(|q| q.name.to_string()).collect();
    assert_eq!(names, ["alpha", "beta", "mid", "zeta"]);
}

pub fn subscription(id: &str, q: &Queue) -> Subscription {
    let filter = serde_json::json!({"x-match": "any", "format": "pdf"});
    Subscription {
        id: id.into(),
        queue_id: q.id,
        queue: q.name.clone(),
        routing_key: RoutingPattern::parse("orders.#").unwrap(),
        callback_url: CallbackUrl::parse("https://example.com/h").unwrap(),
        headers: [("authorization".to_owned(), "Bearer x".to_owned())].into(),
        retry_policy: RetryPolicy { max_retries: 3, retry_delay: 1000, backoff_multiplier: 2.0 },
        dead_letter_queue: Some(QueueName::parse("dlq").unwrap()),
        prefetch_count: 10,
        match_headers: Some(HeaderMatch::parse(filter.as_object().unwrap()).unwrap()),
        ordered: false,
        status: SubscriptionStatus::Active,
        paused_reason: None,
        secret: "whsec_c2VjcmV0".into(),
        owner: Some("alice".into()),
        created_at: T0,
        updated_at: T0,
    }
}

pub async fn subscriptions_belong_to_their_queue(b: &Backends) {
    let q = queue(b, "subs", 1).await;
    let other = queue(b, "other", 1).await;
    let sub = subscription("sub_1", &q);
    b.meta.create_subscription(&sub).await.unwrap();
    b.meta.create_subscription(&subscription("sub_0", &other)).await.unwrap();
    assert_eq!(b.meta.subscription("sub_1").await.unwrap(), Some(sub.clone()), "read back whole");
    assert!(matches!(b.meta.create_subscription(&sub).await, Err(StoreError::Conflict(_))));
    let ids = |subs: Vec<Subscription>| subs.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(b.meta.subscriptions(Some(q.id)).await.unwrap()), ["sub_1"]);
    assert_eq!(ids(b.meta.subscriptions(None).await.unwrap()), ["sub_0", "sub_1"]);
    let orphan = Subscription { id: "sub_2".into(), queue_id: q.id + 99, ..sub.clone() };
    assert!(matches!(b.meta.create_subscription(&orphan).await, Err(StoreError::NotFound)));
    let paused = Subscription {
        status: SubscriptionStatus::Paused,
        paused_reason: Some("failing".into()),
        ordered: true,
        updated_at: T0.plus_ms(5),
        ..sub.clone()
    };
    b.meta.update_subscription(&paused).await.unwrap();
    assert_eq!(b.meta.subscription("sub_1").await.unwrap(), Some(paused));
    assert!(matches!(b.meta.update_subscription(&orphan).await, Err(StoreError::NotFound)));
    assert!(b.meta.delete_subscription("sub_0").await.unwrap());
    assert!(!b.meta.delete_subscription("sub_0").await.unwrap());
    b.meta.delete_queue(q.id).await.unwrap();
    assert!(b.meta.subscription("sub_1").await.unwrap().is_none(), "a queue's subscriptions go with it");
}

pub async fn concurrent_creations_of_one_name_make_one_queue(b: &Backends) {
    let name = QueueName::parse("raced").unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (meta, name) = (b.meta.clone(), name.clone());
            tokio::spawn(async move { meta.create_queue(&name, &settings(1), None, T0).await })
        })
        .collect();
    let mut made = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(q) => made.push(q.id),
            Err(e) => assert!(matches!(e, StoreError::Conflict(_)), "{e}"),
        }
    }
    assert_eq!(made.len(), 1, "one creation wins, the others are conflicts");
    assert_eq!(b.meta.queue(&name).await.unwrap().map(|q| q.id), Some(made[0]));
    assert_eq!(b.meta.queues().await.unwrap().len(), 1);
}
