//! Two processes' backends claiming from one table never take the same task twice.

mod support;

use std::collections::HashSet;

use sitq_core::{Backend, TaskId};
use sitq_postgres::PostgresBackend;
use support::{TestDb, request, task};

const TASKS: usize = 3_000;

async fn drain(backend: &PostgresBackend, worker: &str) -> Vec<TaskId> {
    let mut ids = Vec::new();
    loop {
        let batch = backend.claim(request(worker, 25)).await.expect("claim");
        if batch.is_empty() {
            return ids;
        }
        ids.extend(batch.into_iter().map(|claimed| claimed.id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_is_claimed_twice() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let a = db.backend().await;
    let b = db.backend().await;
    let tasks = (0..TASKS).map(|i| task(&format!("t{i}"))).collect();
    let enqueued: HashSet<TaskId> = a
        .enqueue(tasks)
        .await
        .expect("enqueue")
        .into_iter()
        .collect();
    assert_eq!(enqueued.len(), TASKS);

    // Several claimers per backend so claims really overlap.
    let (from_a, from_b) = support::within("draining the queue", async {
        tokio::join!(
            async {
                let (x, y) = tokio::join!(drain(&a, "a1"), drain(&a, "a2"));
                [x, y].concat()
            },
            async {
                let (x, y) = tokio::join!(drain(&b, "b1"), drain(&b, "b2"));
                [x, y].concat()
            },
        )
    })
    .await;

    let mut seen = HashSet::new();
    for id in from_a.iter().chain(&from_b) {
        assert!(seen.insert(*id), "task {id} was claimed twice");
    }
    assert_eq!(seen, enqueued, "every task was claimed exactly once");
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "both backends took part ({} / {})",
        from_a.len(),
        from_b.len()
    );
    a.close().await;
    b.close().await;
    db.drop().await;
}
