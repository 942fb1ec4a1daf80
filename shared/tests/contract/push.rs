//! Push attempts and runs of failures.

use shared::{ops::Backends, ports::*};

use crate::common::*;

fn attempt(q: &Queue, sub: &str, offset: u64, at_ms: u64, status: Option<u16>) -> AttemptRecord {
    AttemptRecord {
        queue: q.id,
        group: GroupRef::Subscription(sub.into()),
        partition: 0,
        offset,
        at: T0.plus_ms(at_ms),
        status,
        latency_ms: 12,
        error: status.is_none().then(|| "connection refused".to_owned()),
    }
}

pub async fn attempts_are_kept_and_failures_run_until_a_success(b: &Backends) {
    let q = queue(b, "pushed", 1).await;
    let run = |failures, since_ms: Option<u64>| FailureRun { failures, since: since_ms.map(|ms| T0.plus_ms(ms)) };
    assert_eq!(b.push.record_attempt(&attempt(&q, "s", 0, 0, Some(500))).await.unwrap(), run(1, Some(0)));
    assert_eq!(b.push.record_attempt(&attempt(&q, "s", 0, 10, None)).await.unwrap(), run(2, Some(0)));
    assert_eq!(b.push.record_attempt(&attempt(&q, "t", 0, 15, None)).await.unwrap(), run(1, Some(15)), "per group");
    assert_eq!(b.push.record_attempt(&attempt(&q, "s", 1, 20, Some(204))).await.unwrap(), run(0, None));
    assert_eq!(b.push.record_attempt(&attempt(&q, "s", 0, 30, Some(503))).await.unwrap(), run(1, Some(30)));
    let kept = b.push.attempts(q.id, 0, 0).await.unwrap();
    let expected = [attempt(&q, "s", 0, 0, Some(500)), attempt(&q, "s", 0, 10, None), attempt(&q, "t", 0, 15, None)];
    assert_eq!(kept[..3], expected, "oldest first, every group");
    assert_eq!(kept.len(), 4);
    b.push.forget_group(q.id, &GroupRef::Subscription("s".into())).await.unwrap();
    assert_eq!(b.push.attempts(q.id, 0, 0).await.unwrap(), [attempt(&q, "t", 0, 15, None)]);
    assert_eq!(b.push.record_attempt(&attempt(&q, "s", 0, 40, None)).await.unwrap(), run(1, Some(40)), "a new run");
    b.push.forget_queue(q.id).await.unwrap();
    assert!(b.push.attempts(q.id, 0, 0).await.unwrap().is_empty());
}
