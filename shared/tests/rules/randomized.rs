//! Many consumers in several groups consume, acknowledge, requeue, reject and
//! let leases lapse while publishers publish; in the end every message is
//! finished in every group exactly as the rules say, none held twice at once.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use shared::{
    error::Error,
    ops::{Delivered, Receipt, SettleCommand, SettleKind},
    ports::{DeliveryState, GroupRef, QueueArguments},
};

use super::*;

const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
const MESSAGES: u64 = 240;
const LIMIT: u32 = 4;
/// The lease every consume in this test takes (the harness's).
const LEASE_MS: i64 = 1000;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
    }
}

/// What the test did and saw, per (group, message).
#[derive(Default)]
struct Ledger {
    /// Current holder: consumer and lease end.
    held: HashMap<(String, String), (String, i64, u32)>,
    acked: HashSet<(String, String)>,
    rejected: HashSet<(String, String)>,
    /// The newest delivery count handed out.
    latest: HashMap<(String, String), u32>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_ends_as_the_rules_say_in_every_group() {
    let h = Arc::new(Harness::new());
    let args =
        QueueArguments { dead_letter_queue: Some(name("rq.dlq")), delivery_limit: Some(LIMIT), ..Default::default() };
    h.declare("rq", args).await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    let publisher = {
        let h = h.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..MESSAGES {
                ids.push(h.publish("rq", n).await);
                tokio::task::yield_now().await;
            }
            ids
        })
    };
    let mut workers = Vec::new();
    for (gi, group) in GROUPS.iter().enumerate() {
        for c in 0..2u64 {
            let (h, ledger) = (h.clone(), ledger.clone());
            workers.push(tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (gi as u64 * 31 + c + 1));
                let mut later = Vec::new();
                for _ in 0..150 {
                    step(&h, &ledger, &mut rng, group, &format!("{group}-c{c}"), &mut later).await;
                    if rng.below(10) == 0 {
                        h.clock.advance_ms(rng.below(400) as i64);
                    }
                }
            }));
        }
    }
    let ids = publisher.await.unwrap();
    for w in workers {
        w.await.unwrap();
    }
    drain(&h, &ledger).await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    check(&h, &ledger, &ids).await;
}

/// One consumer step: settle some deferred deliveries, then take a few messages and,
/// for each, acknowledge, requeue or reject now, defer that to a later step, or abandon it.
async fn step(
    h: &Harness,
    ledger: &Mutex<Ledger>,
    rng: &mut Rng,
    group: &str,
    consumer: &str,
    later: &mut Vec<(Delivered, SettleKind)>,
) {
    while !later.is_empty() && rng.below(2) == 0 {
        let (d, kind) = later.swap_remove(rng.below(later.len() as u64) as usize);
        settle(h, ledger, group, &d, kind).await;
    }
    let got = h.consume("rq", group, consumer, 1 + rng.below(4) as u32).await;
    for d in got {
        let key = (group.to_owned(), d.id.to_string());
        {
            let mut l = ledger.lock().unwrap();
            // Results can reach the ledger out of order: compare by delivery count, and a
            // delivery's lease began `LEASE_MS` before it ends.
            let begun = d.lease.until.0 - LEASE_MS;
            if let Some((holder, until, count)) = l.held.get(&key)
                && *count < d.lease.delivery_count
            {
                assert!(
                    *until <= begun,
                    "{key:?} handed to {consumer} at {begun} while {holder} held it until {until}"
                );
            }
            if l.held.get(&key).is_none_or(|(_, _, count)| *count < d.lease.delivery_count) {
                l.held.insert(key.clone(), (consumer.to_owned(), d.lease.until.0, d.lease.delivery_count));
                l.latest.insert(key.clone(), d.lease.delivery_count);
            }
            assert!(d.lease.delivery_count <= LIMIT, "{key:?} delivered past the limit");
        }
        let kind = match rng.below(20) {
            0..=9 => SettleKind::Acknowledge,
            10..=12 => SettleKind::Requeue { delay_ms: rng.below(300) },
            13..=14 => SettleKind::Reject { reason: None },
            _ => continue, // abandoned: the lease lapses
        };
        if rng.below(3) == 0 {
            later.push((d, kind));
        } else {
            settle(h, ledger, group, &d, kind).await;
        }
    }
}

/// Settles one delivery with its receipt; a lapsed and superseded lease is refused.
async fn settle(h: &Harness, ledger: &Mutex<Ledger>, group: &str, d: &Delivered, kind: SettleKind) {
    let key = (group.to_owned(), d.id.to_string());
    let cmd = SettleCommand {
        message_id: key.1.clone(),
        queue: None,
        group: Some(GroupRef::Consumers(group.into())),
        receipt: Some(Receipt { id: d.id, delivery_count: d.lease.delivery_count }),
        kind: kind.clone(),
    };
    // Read the ledger and give up the hold before the call: another consumer may get the
    // message the moment the store applies this settlement, before this task records it.
    let (repeat_ack, latest) = {
        let mut l = ledger.lock().unwrap();
        if l.held.get(&key).is_some_and(|(_, _, count)| *count == d.lease.delivery_count) {
            l.held.remove(&key);
        }
        (kind == SettleKind::Acknowledge && l.acked.contains(&key), l.latest.get(&key).copied().unwrap_or(0))
    };
    let result = h.service.settle(&h.caller, cmd).await;
    let mut l = ledger.lock().unwrap();
    match result {
        Ok(settled) => {
            // Acknowledging an acknowledged message is idempotent, whichever delivery asks.
            let repeat_ack = repeat_ack
                || (kind == SettleKind::Acknowledge
                    && settled.delivery.state == DeliveryState::Acknowledged
                    && settled.delivery.delivery_count > d.lease.delivery_count);
            assert!(
                repeat_ack || d.lease.delivery_count == latest,
                "{key:?}: delivery {} settled after delivery {latest}",
                d.lease.delivery_count
            );
            match kind {
                SettleKind::Acknowledge => {
                    l.acked.insert(key.clone());
                }
                SettleKind::Reject { .. } => assert!(l.rejected.insert(key.clone()), "{key:?} rejected twice"),
                _ => {}
            }
        }
        // Delivered again after this lease lapsed, or finished by the newer delivery.
        Err(Error::DeliveryConflict { code: "lease_expired" | "already_settled", .. }) => {}
        Err(e) => panic!("{key:?}: {e:?}"),
    }
}

/// Lets every lease lapse and acknowledges whatever is still deliverable.
async fn drain(h: &Harness, ledger: &Mutex<Ledger>) {
    for group in GROUPS {
        loop {
            h.clock.advance_ms(2000);
            let got = h.consume("rq", group, "drainer", 100).await;
            if got.is_empty() {
                break;
            }
            for d in got {
                h.settle(&d.id.to_string(), group, SettleKind::Acknowledge).await.unwrap();
                ledger.lock().unwrap().acked.insert((group.to_owned(), d.id.to_string()));
            }
        }
    }
}

async fn check(h: &Harness, l: &Ledger, ids: &[String]) {
    let mut dead_lettered = HashSet::new();
    for id in ids {
        let view = h.service.message(&h.caller, id).await.unwrap();
        for group in GROUPS {
            let key = (group.to_owned(), id.clone());
            let d = view
                .deliveries
                .iter()
                .find(|d| d.group.name() == group)
                .unwrap_or_else(|| panic!("{key:?} never delivered"));
            match d.state {
                DeliveryState::Acknowledged => assert!(l.acked.contains(&key), "{key:?} acknowledged but not by us"),
                DeliveryState::DeadLettered => {
                    assert!(!l.acked.contains(&key), "{key:?} acknowledged and dead-lettered");
                    let by_limit = d.delivery_count > LIMIT;
                    assert!(l.rejected.contains(&key) || by_limit, "{key:?} dead-lettered without cause: {d:?}");
                    dead_lettered.insert(key);
                }
                other => panic!("{key:?} ended {other:?}"),
            }
        }
    }
    let dlq = h.consume("rq.dlq", "audit", "x", 100).await;
    let mut copies = HashSet::new();
    let mut all = dlq;
    loop {
        let more = h.consume("rq.dlq", "audit", "x", 100).await;
        if more.is_empty() {
            break;
        }
        all.extend(more);
    }
    for d in &all {
        let h = &d.record.headers;
        let key = (
            h["x-dead-letter-group"].as_str().unwrap().to_owned(),
            h["x-original-message-id"].as_str().unwrap().to_owned(),
        );
        assert!(copies.insert(key.clone()), "{key:?} dead-lettered twice");
    }
    assert_eq!(copies, dead_lettered, "the dead-letter queue holds exactly the dead-lettered messages");
    assert!(!l.acked.is_empty() && !dead_lettered.is_empty(), "the run exercised both outcomes");
}
