//! `sitq workers` and `sitq workers drain ID` through the binary: a worker
//! running in this process is listed, and drained by the CLI's process.

mod support;

use support::{Db, WAIT, assert_fits, start_worker};

/// Adds.
#[sitq::task(name = "add")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Waits (bounded) until the worker `id` is registered.
async fn wait_registered(db: &Db, id: &str) {
    let registered = async {
        loop {
            let workers = db.queue.workers().await.expect("workers");
            if workers.iter().any(|worker| worker.id == id) {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, registered)
        .await
        .unwrap_or_else(|_| panic!("worker {id} did not register within {WAIT:?}"));
}

async fn list(db: &Db) {
    assert_eq!(db.ok(&["workers"]).await, "no live workers\n");
    let worker = start_worker(&db.queue);
    wait_registered(db, &worker.id).await;
    let workers = db.json(&["workers"]).await;
    let listed = workers
        .as_array()
        .expect("workers")
        .iter()
        .find(|listed| listed["id"] == worker.id.as_str())
        .unwrap_or_else(|| panic!("{} not in {workers}", worker.id));
    assert_eq!(listed["pid"], std::process::id());
    assert_eq!(listed["draining"], false);
    assert!(
        listed["tasks"]
            .as_array()
            .is_some_and(|tasks| tasks.iter().any(|task| task == "add")),
        "{listed}"
    );
    let text = db.ok(&["workers"]).await;
    assert_fits(&text);
    assert!(text.contains("WORKER") && text.contains("active"), "{text}");
    let stats = db.ok(&["stats"]).await;
    assert!(stats.contains("live workers: 1"), "{stats}");
    worker.stop().await;
}

async fn drain(db: &Db) {
    let worker = start_worker(&db.queue);
    wait_registered(db, &worker.id).await;
    let text = db
        .ok(&["workers", "drain", &worker.id, "--actor", "ops"])
        .await;
    assert!(
        text.starts_with(&format!("worker {} asked to drain", worker.id)),
        "{text}"
    );
    // The worker in this process hears the other process's request and its
    // run() returns on its own: nobody calls its shutdown handle.
    tokio::time::timeout(WAIT, worker.task)
        .await
        .unwrap_or_else(|_| panic!("the drained worker did not stop within {WAIT:?}"))
        .expect("join")
        .expect("the worker ran");
    let workers = db.json(&["workers"]).await;
    assert_eq!(
        workers,
        serde_json::json!([]),
        "a drained worker removes its row"
    );
    let audit = db.json(&["audit"]).await;
    assert_eq!(audit[0]["action"], "drain");
    assert_eq!(audit[0]["actor"], "ops");
    assert_eq!(audit[0]["target"], format!("worker {}", worker.id));

    let output = db.sitq(&["workers", "drain", "no-such-worker"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(stderr.contains("no-such-worker"), "{stderr}");
    assert_eq!(db.json(&["audit"]).await.as_array().map(Vec::len), Some(1));
}

backend_tests!(list, drain);
