//! A delivery as a row: the columns both delivery tables answer in, and the row read back.

use tokio_postgres::Row;

use super::unsigned;
use crate::{
    domain::Timestamp,
    ports::{Delivery, DeliveryState, GroupRef},
};

/// A delivery's columns in both tables (`until` null once finished, `finished_at` null before).
pub(super) const LEASE_COLUMNS: &str = "grp, partition, \"offset\", state, delivery_count, retry_count, consumer, until, \
                             first_delivered_at, last_delivered_at, NULL::BIGINT, reason";
pub(super) const SETTLED_COLUMNS: &str = "grp, partition, \"offset\", state, delivery_count, retry_count, consumer, NULL::BIGINT, \
                               first_delivered_at, last_delivered_at, finished_at, reason";

pub(super) fn delivery_from_row(r: &Row) -> Delivery {
    let key: String = r.get(0);
    let state: &str = r.get(3);
    let ts = |i: usize| r.get::<_, Option<i64>>(i).map(Timestamp);
    Delivery {
        group: GroupRef::from_key(&key).unwrap_or(GroupRef::Consumers(key)),
        partition: r.get::<_, i32>(1) as u32,
        offset: unsigned(r.get(2)),
        state: DeliveryState::parse(state).unwrap_or(DeliveryState::Available),
        delivery_count: r.get::<_, i32>(4) as u32,
        retry_count: r.get::<_, i32>(5) as u32,
        consumer: r.get(6),
        until: ts(7),
        first_delivered_at: ts(8),
        last_delivered_at: ts(9),
        finished_at: ts(10),
        reason: r.get(11),
    }
}
