//! Contract tests of the storage ports: each scenario is written once, in the
//! file of its port, and run against every backend listed at the bottom.

#![allow(unreachable_pub)]

mod common;
mod consumers;
#[cfg(any(feature = "kafka", feature = "postgres", feature = "dynamodb"))]
#[path = "../../../tests/support/infra.rs"]
mod infra;
#[cfg(feature = "kafka")]
#[path = "../../../tests/support/kafka.rs"]
mod kafka;
mod leases;
mod log;
mod meta;
#[cfg(feature = "dynamodb")]
#[path = "../../../tests/support/moto.rs"]
mod moto;
#[cfg(feature = "postgres")]
#[path = "../../../tests/support/postgres.rs"]
mod pg;
mod push;
mod stats;

use shared::ops::Backends;

/// Declares one test per scenario for a backend built by `$make`.
macro_rules! contract {
    ($backend:ident, $make:path, [$($port:ident :: $scenario:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let (backends, guard) = $make().await;
                    crate::$port::$scenario(&backends).await;
                    // Clients go before what they use (a scratch database, a broker's topics).
                    drop(backends);
                    drop(guard);
                }
            )*
        }
    };
}

/// Every scenario; a backend whose server lacks a feature may leave out the `$extra` ones
/// (growing a log, appending to a deleted one, trimming) and run them where its server can.
macro_rules! every_scenario {
    ($backend:ident, $make:path) => {
        every_scenario!(
            $backend,
            $make,
            [
                log::a_log_grows_by_partitions_and_never_shrinks,
                log::an_append_to_a_deleted_log_is_refused,
                log::retention_trims_the_oldest_and_reads_skip_them,
                leases::records_trimmed_unseen_are_skipped_and_forgotten,
            ]
        );
    };
    ($backend:ident, $make:path, [$($extra:tt)*]) => {
        contract!(
            $backend,
            $make,
            [
                $($extra)*
                log::appended_records_read_back_with_dense_offsets,
                log::a_log_is_created_with_its_partitions_and_grows,
                log::range_reads_follow_offsets_within_their_limits,
                log::the_backend_describes_itself,
                meta::queue_names_are_unique_and_ids_never_reused,
                meta::queues_are_listed_by_name_with_their_owner,
                meta::subscriptions_belong_to_their_queue,
                meta::concurrent_creations_of_one_name_make_one_queue,
                leases::a_group_gets_each_record_once_while_leases_hold,
                leases::groups_are_independent,
                leases::a_lapsed_lease_is_delivered_again_with_a_higher_count,
                leases::a_finished_record_refuses_every_settlement,
                leases::a_stale_delivery_cannot_settle,
                leases::a_release_waits_until_its_time,
                leases::extend_needs_a_live_lease_and_hold_takes_any_open_record,
                leases::drops_end_in_their_final_state,
                leases::concurrent_acquires_never_share_a_record,
                leases::a_new_group_can_start_at_the_end,
                leases::leases_are_counted_per_consumer_while_they_hold,
                leases::ordered_acquires_take_one_per_partition,
                leases::a_forgotten_group_or_queue_starts_over,
                leases::records_read_with_leases_are_the_logs,
                consumers::consumers_register_and_are_seen,
                consumers::rate_limits_spend_and_refill_tokens,
                push::attempts_are_kept_and_failures_run_until_a_success,
                stats::counters_add_up_per_queue,
                stats::concurrent_additions_are_all_kept,
                stats::buckets_merge_by_adding_and_read_back_by_range,
                stats::concurrent_flushes_of_one_bucket_are_all_kept,
                stats::roll_up_merges_old_buckets_and_expiry_removes_them,
            ]
        );
    };
}

/// The SQLite backend holding every port: one file in a fresh directory.
async fn embedded() -> (Backends, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = std::sync::Arc::new(shared::embedded::SqliteStore::open(&dir.path().join("db")).expect("open"));
    (Backends::all(store), dir)
}

every_scenario!(embedded_sqlite, crate::embedded);

/// The embedded default: the log in segment files, every other port in SQLite.
async fn segment_files() -> (Backends, tempfile::TempDir) {
    let (mut backends, dir) = embedded().await;
    backends.log = std::sync::Arc::new(shared::segments::SegmentLog::open(&dir.path().join("log")).expect("open"));
    (backends, dir)
}

every_scenario!(segment_files_and_sqlite, crate::segment_files);

/// Every port on PostgreSQL: a scratch database of its own per scenario.
#[cfg(feature = "postgres")]
async fn postgres() -> (Backends, pg::Scratch) {
    let scratch = pg::Scratch::new();
    let options = shared::postgres::PoolOptions::default();
    let store = shared::postgres::PgStore::connect(&scratch.url, options).await.expect("connects and migrates");
    (Backends::all(std::sync::Arc::new(store.serving_the_log())), scratch)
}

#[cfg(feature = "postgres")]
every_scenario!(postgres, crate::postgres);

/// Queues and subscriptions on DynamoDB (moto's server, a table of its own per scenario), the
/// log in segment files. The other ports on DynamoDB are still to come (docs/dynamodb.md).
#[cfg(feature = "dynamodb")]
async fn dynamodb_meta() -> (Backends, tempfile::TempDir) {
    let (mut backends, dir) = segment_files().await;
    backends.meta = std::sync::Arc::new(moto::store().await);
    (backends, dir)
}

#[cfg(feature = "dynamodb")]
contract!(
    dynamodb_meta,
    crate::dynamodb_meta,
    [
        meta::queue_names_are_unique_and_ids_never_reused,
        meta::queues_are_listed_by_name_with_their_owner,
        meta::subscriptions_belong_to_their_queue,
        meta::concurrent_creations_of_one_name_make_one_queue,
    ]
);

/// The log on Kafka (a topic prefix of its own per scenario), every other port in SQLite.
#[cfg(feature = "kafka")]
async fn kafka_and_sqlite() -> (Backends, (kafka::Topics, tempfile::TempDir)) {
    let (mut backends, dir) = embedded().await;
    let topics = kafka::Topics::new();
    let mut options = shared::kafka::KafkaOptions::new(&topics.brokers);
    options.topic_prefix = topics.prefix.clone();
    backends.log = std::sync::Arc::new(shared::kafka::KafkaLog::new(options, backends.meta.clone()).expect("clients"));
    (backends, (topics, dir))
}

// Growth, appends to a deleted log and trimming are left out of the list: they run below
// where the broker can.
#[cfg(feature = "kafka")]
every_scenario!(kafka_and_sqlite, crate::kafka_and_sqlite, []);

/// tansu 0.6 answers CreatePartitions with UnsupportedFeature; Apache Kafka adds them. On a
/// broker that can, the growth scenario runs; on one that cannot, it must be the tests' tansu.
#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_partitions_grow_where_the_broker_can() {
    let (b, _guard) = kafka_and_sqlite().await;
    let q = common::queue(&b, "probe", 1).await;
    match b.log.create_log(q.id, &common::spec(2)).await {
        Ok(()) => log::a_log_grows_by_partitions_and_never_shrinks(&b).await,
        Err(e) => assert!(e.to_string().contains("UnsupportedFeature") && kafka::on_own_broker(), "{e}"),
    }
}

/// tansu 0.6's SQLite engine does not implement DeleteRecords (the connection is dropped
/// unanswered); Apache Kafka does. On a broker that trims, both trimming scenarios run; on one
/// that cannot, it must be the tests' tansu.
#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_records_are_trimmed_where_the_broker_can() {
    let trims = {
        let (b, guard) = kafka_and_sqlite().await;
        let q = common::queue(&b, "probe", 1).await;
        common::append(&b, &q, 0, common::record("x", shared::domain::Timestamp(common::T0.0))).await.unwrap();
        let trimmed = b.log.trim(q.id, shared::domain::Timestamp(common::T0.0 + 1), None).await;
        drop(b);
        drop(guard);
        match trimmed {
            Ok(n) => n == 1,
            Err(e) => {
                assert!(kafka::on_own_broker(), "{e}");
                false
            }
        }
    };
    if trims {
        for scenario in [0, 1] {
            let (b, guard) = kafka_and_sqlite().await;
            match scenario {
                0 => log::retention_trims_the_oldest_and_reads_skip_them(&b).await,
                _ => leases::records_trimmed_unseen_are_skipped_and_forgotten(&b).await,
            }
            drop(b);
            drop(guard);
        }
    }
}

/// tansu 0.6's SQLite engine panics on an idempotent produce to a deleted topic and its storage
/// answers nothing after (every request fails until a restart); Apache Kafka answers the topic
/// unknown. On a broker that refuses the append, the scenario runs; on one that cannot, it must
/// be the tests' tansu, and it must have stopped answering (so a fixed tansu is noticed).
#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_appends_to_a_deleted_topic_are_refused_where_the_broker_can() {
    let refused = {
        let (b, guard) = kafka_and_sqlite().await;
        let q = common::queue(&b, "probe", 1).await;
        common::append(&b, &q, 0, common::record("x", common::T0)).await.unwrap();
        b.log.delete_log(q.id).await.unwrap();
        let answer = b.log.append(q.id, vec![(0, common::record("x", common::T0))]).await;
        let refused = matches!(answer, Err(shared::error::StoreError::NotFound));
        if !refused {
            assert!(kafka::on_own_broker(), "{answer:?}");
            assert!(b.log.describe().await.is_err(), "tansu answers again after {answer:?}: run the scenario");
        }
        drop(b);
        drop(guard);
        refused
    };
    if refused {
        let (b, guard) = kafka_and_sqlite().await;
        log::an_append_to_a_deleted_log_is_refused(&b).await;
        drop(b);
        drop(guard);
    }
}

/// tansu 0.6's SQLite engine deletes every topic of the cluster when asked to delete one (its
/// `topic_delete_by.sql` selects by cluster only); Apache Kafka deletes the one named. The HTTP
/// suites leave out what deletes one queue and then uses another when on tansu; this notices a
/// fixed tansu, and holds Kafka to the rule.
#[cfg(feature = "kafka")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_deleting_a_topic_keeps_the_others_where_the_broker_can() {
    let (b, _guard) = kafka_and_sqlite().await;
    let (kept, gone) = (common::queue(&b, "kept", 1).await, common::queue(&b, "gone", 1).await);
    for q in [&kept, &gone] {
        common::append(&b, q, 0, common::record("x", common::T0)).await.unwrap();
    }
    b.log.delete_log(gone.id).await.unwrap();
    let left = b.log.partitions(kept.id).await.unwrap();
    if kafka::on_own_broker() {
        assert!(left.is_empty(), "tansu keeps other topics now: {left:?}; run what the suites leave out there");
    } else {
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].end_offset, 1);
    }
}
