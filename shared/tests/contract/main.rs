//! Contract tests of the storage ports: each scenario is written once in
//! `scenarios.rs` and run against every backend listed at the bottom.

#![allow(unreachable_pub)]

mod scenarios;

use shared::ops::Backends;

/// Declares one test per scenario for a backend built by `$make`.
macro_rules! contract {
    ($backend:ident, $make:path, [$($scenario:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let (backends, _guard) = $make().await;
                    crate::scenarios::$scenario(&backends).await;
                }
            )*
        }
    };
}

macro_rules! every_scenario {
    ($backend:ident, $make:path) => {
        contract!(
            $backend,
            $make,
            [
                appended_records_read_back_with_dense_offsets,
                an_append_to_a_deleted_queue_is_refused,
                queue_names_are_unique_and_ids_never_reused,
                subscriptions_belong_to_their_queue,
                a_group_gets_each_record_once_while_leases_hold,
                groups_are_independent,
                a_lapsed_lease_is_delivered_again_with_a_higher_count,
                acknowledging_is_idempotent_and_final,
                a_stale_delivery_cannot_settle,
                release_with_delay_waits,
                extend_needs_a_live_lease,
                drops_count_and_dead_letter,
                concurrent_acquires_never_share_a_record,
                a_new_group_can_start_at_the_end,
                consumers_register_and_spend_tokens,
                retention_trims_and_groups_skip_trimmed_records,
                ordered_acquires_take_one_per_partition,
            ]
        );
    };
}

/// The embedded SQLite backend: one file in a fresh directory.
async fn embedded() -> (Backends, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = std::sync::Arc::new(shared::embedded::SqliteStore::open(&dir.path().join("db")).expect("open"));
    (Backends { log: store.clone(), meta: store.clone(), delivery: store }, dir)
}

every_scenario!(embedded_sqlite, crate::embedded);
