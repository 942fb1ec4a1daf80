//! Queue counters.

use shared::{ops::Backends, ports::*};

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
