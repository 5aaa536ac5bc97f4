//! The backend conformance suite: every behaviour of the queue and worker
//! that does not depend on the backend, run by each backend's tests.
//!
//! A backend implements [`Harness`] (a fresh queue per test, a way to start
//! a worker) and expands [`conformance_tests!`](crate::conformance_tests)
//! in one of its integration tests:
//!
//! ```ignore
//! struct Sqlite;
//! #[async_trait::async_trait]
//! impl sitq_core::testing::Harness for Sqlite { /* ... */ }
//! sitq_core::conformance_tests!(Sqlite);
//! ```

mod cancel;
mod cancel_tasks;
mod cases;
mod claims;
mod context;
mod cron;
mod dashboard;
mod encryption;
mod maintenance;
mod model;
mod operations;
mod queues;
mod sequences;
mod tasks;
mod trace;
mod unique;
mod waits;
mod workflow_tasks;
mod workflows;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Queue, Registry};

pub use cancel::*;
pub use cases::*;
pub use claims::*;
pub use context::*;
pub use cron::*;
pub use dashboard::*;
pub use encryption::*;
pub use maintenance::*;
pub use model::*;
pub use operations::*;
pub use queues::*;
pub use sequences::*;
pub use tasks::{Add, registry, registry_without, unique};
pub use trace::*;
pub use unique::*;
pub use waits::*;
pub use workflows::*;

/// How a conformance test wants its worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Tasks at once.
    pub concurrency: usize,
    /// Lease length.
    pub lease: Duration,
    /// The conformance tasks (pass to `Worker::registry`).
    pub registry: Registry,
    /// How long a cancelled task may go on (pass to `Worker::cancel_grace`).
    pub cancel_grace: Duration,
}

/// A started worker.
#[async_trait]
pub trait RunningWorker: Send {
    /// Stops gracefully: waits for in-flight tasks, then returns.
    async fn shutdown(self: Box<Self>);
}

/// What a backend provides to run the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The URL of a fresh, empty database of this backend. Each
    /// `Queue::connect` to it is a separate client with its own connections
    /// (a stand-in for another process).
    async fn fresh_url(&self) -> String;

    /// Why this backend cannot be tested here (no server configured), if so;
    /// each case then says so and passes. Panic instead where skipping must
    /// not happen (CI).
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// Starts a worker on `queue` with `config` (and no signal handling).
    fn start_worker(&self, queue: &Queue, config: WorkerConfig) -> Box<dyn RunningWorker>;
}

/// Connects to a fresh database of `h`; returns the queue and its URL.
pub async fn open(h: &impl Harness) -> (Queue, String) {
    let url = h.fresh_url().await;
    let queue = Queue::connect(&url)
        .await
        .unwrap_or_else(|err| panic!("connecting to {url}: {err}"));
    (queue, url)
}

/// Default worker settings for tests: concurrency 4, a 30 s lease.
pub fn worker_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        lease: Duration::from_secs(30),
        registry: registry(),
        cancel_grace: Duration::from_secs(5),
    }
}

/// Bound for every wait in the suite: generous, since CI machines are slow,
/// but a hang still fails with a message.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, failing with `what` after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each given a fresh
/// `$harness` (an expression of a type implementing [`Harness`]).
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@cases $harness;
            typed_round_trip, blocking_task, run_at_with_offset_is_exact, error_result_is_kept,
            retries_then_success, retries_exhausted_is_failed_and_kept, delay_is_honoured,
            priority_order, timeout_fails_the_attempt, panic_fails_the_attempt_not_the_worker,
            graceful_shutdown_finishes_in_flight_tasks, unknown_task_waits_for_a_worker_that_knows_it,
            corrupt_payload_is_failed_and_kept, payload_too_large_is_refused,
            invalid_options_are_refused, enqueue_many_is_one_batch, cancel_pending_task,
            wait_timeout_gives_up, missing_task_is_not_found, expired_lease_is_recovered,
            stale_completion_is_fenced, lost_heartbeat_is_reported,
            two_clients_execute_each_task_once, prune_keeps_unfinished_tasks,
            handle_wait_is_woken_across_clients,
            graceful_shutdown_gives_back_reserved_tasks,
        );
        // Batched waits (testing/waits.rs).
        $crate::conformance_tests!(@cases $harness;
            many_waits_are_served_together, ended_waits_leave_no_waiters,
        );
        // Cancel and retry, the failure history (testing/cancel.rs).
        $crate::conformance_tests!(@cases $harness;
            cancel_pending_and_delayed_tasks, cancel_refuses_bad_input_and_unknown_ids,
            cancel_finished_task_is_a_no_op, cancel_reserved_claim_at_once,
            cancel_reserved_task_in_a_worker_buffer,
            cancel_running_task_reaches_its_context, cancel_drops_an_uncooperative_task_after_grace,
            cancel_running_task_that_returns_ok_succeeds, retry_failed_task_keeps_its_history,
            retry_cancelled_task_runs_again, retry_refuses_unfinished_and_succeeded_tasks,
            recovery_cancels_a_cancel_requested_task, prune_deletes_the_failure_history,
        );
        // Encryption at rest (testing/encryption.rs).
        $crate::conformance_tests!(@cases $harness;
            encrypted_round_trip, rotated_keys_open_old_rows_and_plain_rows_still_run,
            missing_key_fails_the_task_until_retried_with_the_key,
            tampered_or_moved_ciphertext_fails_the_task,
        );
        // Claim routing by name and reserved claims (start/release).
        $crate::conformance_tests!(@cases $harness;
            claims_route_by_name, released_reservation_is_pending_again,
            claims_from_before_a_give_back_are_fenced,
            expired_reservation_spends_no_attempt, expired_reservation_keeps_the_previous_error,
            started_reservation_spends_its_attempt,
            reserved_claim_can_complete_before_its_start_mark, finished_reports_only_finished_tasks,
        );
        // The task's context and snoozing (testing/context.rs).
        $crate::conformance_tests!(@cases $harness;
            context_describes_the_attempt, snooze_spends_no_attempt_and_counts,
            snoozed_task_is_pending_and_keeps_its_failure, snooze_delay_is_honoured,
            snooze_of_a_lost_claim_is_fenced, absurd_snooze_is_capped,
        );
        // Unique tasks (testing/unique.rs).
        $crate::conformance_tests!(@cases $harness;
            unique_duplicate_returns_the_existing_task, unique_key_blocks_while_pending_or_running,
            unique_succeeded_blocks_only_within_its_window, unique_failed_and_cancelled_do_not_block,
            unique_batch_with_duplicates, unique_by_arguments, unique_keys_are_scoped_by_task_name,
            unique_key_is_checked,
        );
        // Cron schedules (testing/cron.rs).
        $crate::conformance_tests!(@cases $harness;
            cron_registration_is_listed, cron_reregistration_updates_the_definition,
            cron_fire_tick_fires_once, cron_racing_fires_enqueue_one_task_per_tick,
            cron_ticks_past_the_retention_never_fire_again, cron_fired_task_runs,
            cron_catch_up_latest_fires_the_latest_missed_tick, cron_catch_up_none_skips_missed_ticks,
            cron_catch_up_all_fires_each_missed_tick, cron_workers_share_ticks,
        );
        // Queue control: pause, global limits, sequences (testing/queues.rs, testing/sequences.rs).
        $crate::conformance_tests!(@cases $harness;
            paused_queue_is_not_claimed, pause_lets_running_tasks_finish,
            concurrency_limit_caps_claims, concurrency_limit_holds_across_workers,
            rate_limit_caps_claims, rate_limit_holds_in_every_window, cleared_limits_claim_freely,
            bad_queue_settings_are_refused, sequence_claims_one_at_a_time_in_order,
            retrying_task_holds_its_sequence, failed_task_holds_its_sequence,
            sequence_runs_in_enqueue_order, empty_sequence_key_is_refused, sequence_holds_for_unique_tasks,
        );
        // Dependencies, result passing, workflows (testing/workflows.rs).
        $crate::conformance_tests!(@cases $harness;
            workflow_dependent_is_blocked_until_its_dependencies_succeed, workflow_dependency_that_finished_resolves_at_once, workflow_failure_mid_graph_cancels_dependents_transitively, workflow_worker_runs_cleanup_after_a_failed_dependency, workflow_results_pass_to_dependents_in_order, workflow_cancelling_a_blocked_task_cancels_its_dependents, workflow_retried_dependent_waits_for_its_dependency_again, workflow_retried_dependency_is_waited_for_again, workflow_bad_dependencies_are_refused, workflow_runs_as_one_unit, workflow_is_stored_whole_or_not_at_all, workflow_cancel_workflow_cancels_every_unfinished_task, workflow_prune_keeps_a_result_a_dependent_needs, workflow_chain_runs_across_clients,
        );
        // Operations: worker registry, lists, stats, history, audit (testing/operations.rs),
        // purge and diagnosis (testing/maintenance.rs).
        $crate::conformance_tests!(@cases $harness;
            ops_worker_beats_register_and_refresh, ops_stale_workers_expire,
            ops_drain_request_reaches_the_worker, ops_task_list_filters_and_pages,
            ops_stats_count_states_and_recent_finishes, ops_attempt_history_lists_every_try,
            ops_audit_log_records_admin_actions, ops_enqueue_by_name_with_json_arguments,
            ops_purge_by_state_and_age, ops_diagnose_finds_expired_leases_and_large_rows,
            ops_trace_context_travels_with_the_task,
        );
        // What the dashboard adds: activity, links, delete (testing/dashboard.rs).
        $crate::conformance_tests!(@cases $harness;
            ops_activity_counts_finishes_by_bucket, ops_links_list_dependencies_and_dependents,
            ops_delete_removes_one_finished_task,
        );
        // Generated histories against a model of the task states (testing/model.rs).
        $crate::conformance_tests!(@cases $harness;
            model_histories_match_the_model,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness;
                if let Some(reason) = $crate::testing::Harness::unavailable(&harness) {
                    eprintln!("skipped: {reason}");
                    return;
                }
                $crate::testing::$case(&harness).await;
            }
        )*
    };
}
