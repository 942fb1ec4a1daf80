//! Finishing deliveries (acknowledged, dead-lettered, dropped) from concurrent requests in one
//! statement each: the lease rows are locked in key order, each found by its primary key, then
//! deleted by row address and their finished rows inserted into the insert-only `message_settled`. A batch acknowledgement of many messages,
//! or many consumers acknowledging at once, cost the database one statement, not one each.

use deadpool_postgres::Pool;

use super::{
    deliveries::{SETTLED_COLUMNS, delivery_from_row},
    errors::{no_connection, pg},
    gather::Gatherer,
};
use crate::ports::{Delivery, StoreResult};

/// Most deliveries one statement finishes.
const MAX_BATCH: usize = 500;
/// Statements in flight at once per process.
const WRITERS: usize = 2;

/// One delivery to finish, if it is still the one named.
pub(super) struct Finish {
    pub(super) queue: i64,
    pub(super) grp: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    /// The delivery it must be (`None`: whichever is current).
    pub(super) expect: Option<i32>,
    pub(super) state: &'static str,
    pub(super) at: i64,
    pub(super) reason: Option<String>,
}

impl Finish {
    /// The delivery's key, in the order rows are locked.
    fn key(&self) -> (i64, &str, i32, i64) {
        (self.queue, &self.grp, self.partition, self.offset)
    }
}

/// Gathers the finishes of concurrent requests; each is answered with the finished delivery, or
/// `None` when the named one is not in flight.
pub(super) type Finisher = Gatherer<Finish, Option<Delivery>>;

pub(super) fn spawn_finisher(pool: Pool) -> Finisher {
    Gatherer::spawn(
        "finisher",
        WRITERS,
        MAX_BATCH,
        |_| 1,
        move |batch: Vec<Finish>| {
            let pool = pool.clone();
            async move { Ok(finish_all(&pool, &batch).await?.into_iter().map(Ok).collect()) }
        },
    )
}

/// Finishes every job's delivery that is still in flight; answers each job in order. Rows are
/// locked in key order (the order the statement is given them), as every instance locks them.
async fn finish_all(pool: &Pool, jobs: &[Finish]) -> StoreResult<Vec<Option<Delivery>>> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|a, b| jobs[*a].key().cmp(&jobs[*b].key()));
    let sorted: Vec<&Finish> = order.iter().map(|i| &jobs[*i]).collect();
    let queues: Vec<i64> = sorted.iter().map(|f| f.queue).collect();
    let groups: Vec<&str> = sorted.iter().map(|f| f.grp.as_str()).collect();
    let partitions: Vec<i32> = sorted.iter().map(|f| f.partition).collect();
    let offsets: Vec<i64> = sorted.iter().map(|f| f.offset).collect();
    let expects: Vec<Option<i32>> = sorted.iter().map(|f| f.expect).collect();
    let states: Vec<&str> = sorted.iter().map(|f| f.state).collect();
    let ats: Vec<i64> = sorted.iter().map(|f| f.at).collect();
    let reasons: Vec<Option<&str>> = sorted.iter().map(|f| f.reason.as_deref()).collect();
    let client = pool.get().await.map_err(no_connection)?;
    let sql = format!(
        "WITH req AS (
            SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::INT[], $4::BIGINT[], $5::INT[], $6::TEXT[],
                $7::BIGINT[], $8::TEXT[]) AS t(queue_id, grp, partition, \"offset\", expect, new_state, at, new_reason)
         ),
         locked AS MATERIALIZED (
            SELECT l.ctid AS row_id, r.new_state, r.at, r.new_reason
            FROM req r CROSS JOIN LATERAL (
                SELECT ctid FROM message_leases l WHERE l.queue_id = r.queue_id AND l.grp = r.grp
                    AND l.partition = r.partition AND l.\"offset\" = r.\"offset\"
                    AND (r.expect IS NULL OR l.delivery_count = r.expect)
                FOR UPDATE
            ) l
         ),
         gone AS (
            -- The array makes the rows be fetched by address, never by a join over the table.
            DELETE FROM message_leases l USING locked k
            WHERE l.ctid = ANY(ARRAY(SELECT row_id FROM locked)) AND l.ctid = k.row_id
            RETURNING l.*, k.new_state, k.at, k.new_reason
         )
         INSERT INTO message_settled (queue_id, partition, \"offset\", grp, state, delivery_count, retry_count,
            consumer, first_delivered_at, last_delivered_at, finished_at, reason)
         SELECT queue_id, partition, \"offset\", grp, new_state, delivery_count, retry_count, NULL,
            first_delivered_at, last_delivered_at, at, COALESCE(new_reason, reason) FROM gone
         RETURNING {SETTLED_COLUMNS}, queue_id"
    );
    let statement = client.prepare_cached(&sql).await.map_err(pg)?;
    let rows = client
        .query(&statement, &[&queues, &groups, &partitions, &offsets, &expects, &states, &ats, &reasons])
        .await
        .map_err(pg)?;
    // Each finished row answers the first job that named it; a second job naming the same
    // delivery learns from the lease store what became of it.
    let mut answers: Vec<Option<Delivery>> = vec![None; jobs.len()];
    for row in &rows {
        let (grp, partition, offset, queue): (String, i32, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(12));
        let named = jobs.iter().enumerate().position(|(i, f)| {
            answers[i].is_none() && f.queue == queue && f.grp == grp && f.partition == partition && f.offset == offset
        });
        if let Some(i) = named {
            answers[i] = Some(delivery_from_row(row));
        }
    }
    Ok(answers)
}
