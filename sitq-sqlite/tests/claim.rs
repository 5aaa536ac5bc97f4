//! Claiming: order, queues, attempts, and no double claims across backends.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use common::{LEASE, TempDb, claim, memory, task, task_at};
use sitq_core::{Backend, ClaimRequest, NewTask, TaskId, TaskStatus};

#[tokio::test]
async fn claims_in_priority_then_run_at_then_id_order() {
    let backend = memory().await;
    let now = Utc::now();
    let earlier = now - chrono::Duration::seconds(10);
    // Enqueued out of order on purpose.
    let ids = backend
        .enqueue(vec![
            task_at("low", 0, earlier),        // 0
            task_at("high-late", 5, now),      // 1
            task_at("high-early", 5, earlier), // 2
            task_at("low-late", 0, now),       // 3
            task_at("low", 0, earlier),        // 4: same as 0, later id
        ])
        .await
        .expect("enqueue");
    let claimed: Vec<TaskId> = claim(&backend, "w", 10)
        .await
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(claimed, [ids[2], ids[1], ids[0], ids[4], ids[3]]);
}

#[tokio::test]
async fn future_tasks_wait_and_limit_is_respected() {
    let backend = memory().await;
    let later = Utc::now() + chrono::Duration::hours(1);
    backend
        .enqueue(vec![task_at("later", 9, later)])
        .await
        .expect("enqueue");
    backend
        .enqueue((0..3).map(|_| task("now")).collect())
        .await
        .expect("enqueue");
    let first = claim(&backend, "w", 2).await;
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|t| t.name == "now" && t.attempt == 1));
    assert_eq!(claim(&backend, "w", 5).await.len(), 1);
    assert!(
        claim(&backend, "w", 5).await.is_empty(),
        "the future task is not ready"
    );
    let next = backend.next_run_at(&[]).await.expect("next_run_at");
    assert_eq!(
        next.map(|at| at.timestamp_micros()),
        Some(later.timestamp_micros())
    );
}

#[tokio::test]
async fn claims_only_from_the_requested_queues() {
    let backend = memory().await;
    let mail = NewTask {
        queue: "mail".into(),
        ..task("m")
    };
    let ids = backend
        .enqueue(vec![task("d"), mail])
        .await
        .expect("enqueue");
    let queues = ["mail".to_owned()];
    let claimed = backend
        .claim(ClaimRequest {
            worker_id: "w",
            queues: &queues,
            names: &common::names(),
            limit: 10,
            start: 10,
            lease: LEASE,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[1]]);
    assert_eq!(claimed[0].queue, "mail");
    assert_eq!(
        backend.status(ids[0]).await.expect("status"),
        Some(TaskStatus::Pending)
    );
    assert_eq!(
        backend.status(ids[1]).await.expect("status"),
        Some(TaskStatus::Running)
    );
    let other = ["other".to_owned()];
    assert_eq!(backend.next_run_at(&other).await.expect("next"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backends_on_one_file_never_claim_the_same_task() {
    const TASKS: usize = 2_000;
    let db = TempDb::new("double-claim");
    let a = db.connect().await;
    let b = db.connect().await;
    let ids = a
        .enqueue((0..TASKS).map(|_| task("t")).collect())
        .await
        .expect("enqueue");
    let claim_all = |backend: sitq_sqlite::SqliteBackend, worker: &'static str| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = claim(&backend, worker, 7).await;
                if claimed.is_empty() {
                    break;
                }
                mine.extend(claimed.into_iter().map(|t| (t.id, t.attempt)));
            }
            backend.close().await;
            mine
        })
    };
    let (from_a, from_b) = tokio::join!(claim_all(a, "a"), claim_all(b, "b"));
    let (from_a, from_b) = (from_a.expect("a"), from_b.expect("b"));
    let mut seen = HashSet::new();
    for (id, attempt) in from_a.iter().chain(&from_b) {
        assert_eq!(*attempt, 1);
        assert!(seen.insert(*id), "task {id} was claimed twice");
    }
    assert_eq!(
        seen,
        ids.into_iter().collect::<HashSet<_>>(),
        "every task claimed once"
    );
}

#[tokio::test]
async fn a_zero_lease_claim_still_runs_once() {
    let backend = memory().await;
    backend.enqueue(vec![task("t")]).await.expect("enqueue");
    let claimed = common::claim_with_lease(&backend, "w", 1, Duration::ZERO).await;
    assert_eq!(claimed.len(), 1);
    assert!(
        claim(&backend, "w", 1).await.is_empty(),
        "running tasks are not claimable"
    );
}

/// The writer reads the clock once it holds the write lock: a claim that
/// waited for another process's transaction still gets its whole lease, and
/// its start is not dated before the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_waited_for_the_lock_gets_its_whole_lease() {
    let db = TempDb::new("lock-wait");
    let backend = db.connect().await;
    let ids = backend.enqueue(vec![task("t")]).await.expect("enqueue");
    // Another process holds the write lock for a while.
    let other = rusqlite::Connection::open(&db.path).expect("raw connect");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let claiming = tokio::spawn(async move {
        let claimed = claim(&backend, "w", 1).await;
        (backend, claimed)
    });
    std::thread::sleep(Duration::from_millis(300));
    let released = Utc::now().timestamp_micros();
    other
        .execute_batch("COMMIT")
        .expect("release the write lock");
    let (backend, claimed) = tokio::time::timeout(Duration::from_secs(30), claiming)
        .await
        .expect("the claim went through once the lock was free")
        .expect("claim task");
    assert_eq!(claimed.len(), 1);
    let (started_at, lease_until): (i64, i64) = other
        .query_row(
            "SELECT started_at, lease_until FROM sitq_tasks WHERE id = ?1",
            [ids[0].0],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("read the claim");
    assert!(
        started_at >= released,
        "the claim's clock was read {} us before the lock was free",
        released - started_at
    );
    assert_eq!(
        lease_until - started_at,
        i64::try_from(LEASE.as_micros()).expect("lease fits"),
        "the whole lease counts from when the claim happened"
    );
    backend.close().await;
}
