//! Admin actions through the binary: `retry`, `cancel`, `purge`, `pause`,
//! `resume`, `enqueue`, each recorded in the `audit` log.

mod support;

use std::time::Duration;

use serde_json::json;
use sitq::{TaskId, TaskStatus};

use support::{Db, assert_fits, start_worker, wait_finished};

/// Adds.
#[sitq::task(name = "add")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Fails at once.
#[sitq::task(name = "broken", max_attempts = 1)]
async fn broken() -> Result<(), String> {
    Err("broken on purpose".into())
}

/// Runs an hour from now.
#[sitq::task(name = "later", queue = "reports")]
async fn later(n: u32) -> u32 {
    n
}

/// One succeeded, one failed, one delayed an hour on queue `reports`.
async fn seed(db: &Db) -> (TaskId, TaskId, TaskId) {
    let queue = &db.queue;
    let added = add::enqueue(queue, 2, 3).await.expect("enqueue").id();
    let failed = broken::enqueue(queue).await.expect("enqueue").id();
    let delayed = later::with()
        .delay(Duration::from_secs(3600))
        .enqueue(queue, 1)
        .await
        .expect("enqueue")
        .id();
    let worker = start_worker(queue);
    wait_finished(queue, added).await;
    wait_finished(queue, failed).await;
    worker.stop().await;
    (added, failed, delayed)
}

async fn retry(db: &Db) {
    let (added, failed, _) = seed(db).await;
    let text = db
        .ok(&["retry", &failed.to_string(), "--actor", "alice"])
        .await;
    assert_eq!(text, format!("task {failed} will run again\n"));
    assert_eq!(
        db.queue.status(failed).await.expect("status"),
        TaskStatus::Pending
    );

    let output = db.sitq(&["retry", &added.to_string()]).await;
    assert!(!output.status.success(), "a succeeded task is not retried");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert_eq!(
        db.queue.status(added).await.expect("status"),
        TaskStatus::Succeeded
    );

    let audit = db.json(&["audit"]).await;
    assert_eq!(
        audit.as_array().map(Vec::len),
        Some(1),
        "only the retry: {audit}"
    );
    assert_eq!(audit[0]["actor"], "alice");
    assert_eq!(audit[0]["action"], "retry");
    assert_eq!(audit[0]["target"], format!("task {failed}"));
}

async fn cancel(db: &Db) {
    let (added, _, delayed) = seed(db).await;
    let id = delayed.to_string();
    let text = db
        .ok(&[
            "cancel",
            &id,
            "--reason",
            "no longer needed",
            "--actor",
            "bob",
        ])
        .await;
    assert_eq!(text, format!("task {delayed} cancelled\n"));
    let shown = db.json(&["show", &id]).await;
    assert_eq!(shown["task"]["status"], "cancelled");
    assert_eq!(shown["task"]["cancellation"]["by"], "bob");
    assert_eq!(shown["task"]["cancellation"]["reason"], "no longer needed");

    let outcome = db.json(&["cancel", &added.to_string()]).await;
    assert_eq!(
        outcome,
        json!({"id": added.0, "outcome": "already_finished"})
    );
    let audit = db.json(&["audit"]).await;
    assert_eq!(audit[0]["action"], "cancel");
    assert_eq!(audit[1]["action"], "cancel");
    assert_eq!(audit[1]["actor"], "bob");
}

async fn purge(db: &Db) {
    let (added, failed, delayed) = seed(db).await;
    let output = db
        .sitq(&["purge", "--older-than", "0s", "--status", "running"])
        .await;
    assert!(!output.status.success(), "unfinished states are refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only finished tasks"), "{stderr}");

    let text = db.ok(&["purge", "--older-than", "1h"]).await;
    assert!(
        text.starts_with("purged 0 task(s)"),
        "nothing is an hour old: {text}"
    );
    let deleted = db
        .json(&["purge", "--older-than", "0s", "--status", "succeeded"])
        .await;
    assert_eq!(deleted, json!({"deleted": 1}));
    assert!(
        db.queue.get(added).await.is_err(),
        "the succeeded task is gone"
    );
    assert_eq!(
        db.queue.status(failed).await.expect("kept"),
        TaskStatus::Failed
    );
    assert_eq!(
        db.queue.status(delayed).await.expect("kept"),
        TaskStatus::Pending
    );
    let audit = db.json(&["audit"]).await;
    assert_eq!(audit[0]["action"], "purge");
    assert_eq!(audit[0]["target"], "succeeded tasks");
}

async fn pause_and_resume(db: &Db) {
    seed(db).await;
    assert_eq!(
        db.ok(&["pause", "reports"]).await,
        "queue reports paused: no worker claims its tasks until `sitq resume reports`\n"
    );
    let paused = |queues: &serde_json::Value| {
        queues
            .as_array()
            .expect("queues")
            .iter()
            .find(|queue| queue["name"] == "reports")
            .map(|queue| queue["paused"].clone())
    };
    assert_eq!(paused(&db.json(&["queues"]).await), Some(json!(true)));
    let stats = db.json(&["stats"]).await;
    assert_eq!(stats["paused_queues"], json!(["reports"]));
    let text = db.ok(&["stats"]).await;
    assert!(text.contains("paused queues: reports"), "{text}");

    assert_eq!(
        db.ok(&["resume", "reports"]).await,
        "queue reports resumed\n"
    );
    assert_eq!(paused(&db.json(&["queues"]).await), Some(json!(false)));
    let audit = db.json(&["audit"]).await;
    assert_eq!(audit[0]["action"], "resume");
    assert_eq!(audit[1]["action"], "pause");
    assert_eq!(audit[1]["target"], "queue reports");
}

async fn enqueue(db: &Db) {
    let output = db
        .sitq(&[
            "enqueue",
            "add",
            "--args",
            r#"{"a": 20, "b": 22}"#,
            "--queue",
            "maths",
            "--priority",
            "5",
            "--delay",
            "1h",
            "--max-attempts",
            "4",
        ])
        .await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id: TaskId = stdout.trim().parse().expect("the id alone on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: no live worker runs add on queue maths"),
        "{stderr}"
    );
    let shown = db.json(&["show", &id.to_string()]).await;
    assert_eq!(shown["arguments"], json!({"a": 20, "b": 22}));
    assert_eq!(shown["task"]["queue"], "maths");
    assert_eq!(shown["task"]["priority"], 5);
    assert_eq!(shown["task"]["max_attempts"], 4);
    assert_eq!(shown["task"]["status"], "pending");

    // With a live worker: no warning, and the Rust task runs it.
    let worker = start_worker(&db.queue);
    wait_for_worker(db).await;
    let output = db.sitq(&["enqueue", "add", "--args", "[1, 2]"]).await;
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    let id: TaskId = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("id");
    let result = db.queue.handle::<i64>(id).wait_timeout(support::WAIT).await;
    assert_eq!(result.expect("the task ran"), 3);
    worker.stop().await;

    let audit = db.json(&["audit", "--limit", "1"]).await;
    assert_eq!(audit.as_array().map(Vec::len), Some(1));
    assert_eq!(audit[0]["action"], "enqueue");
    assert_eq!(audit[0]["detail"], "add [1,2]");
}

/// Waits (bounded) until a worker is registered.
async fn wait_for_worker(db: &Db) {
    let registered = async {
        while db.queue.workers().await.expect("workers").is_empty() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(support::WAIT, registered)
        .await
        .expect("the worker registers within the wait");
}

async fn audit_table(db: &Db) {
    let (_, failed, delayed) = seed(db).await;
    db.ok(&[
        "retry",
        &failed.to_string(),
        "--actor",
        "a-very-long-actor-name-from-a-directory-service",
    ])
    .await;
    let reason = "x".repeat(300);
    db.ok(&["cancel", &delayed.to_string(), "--reason", &reason])
        .await;
    let text = db.ok(&["audit"]).await;
    assert_fits(&text);
    assert!(text.contains("cancel") && text.contains("retry"), "{text}");
    assert!(text.contains('…'), "{text}");
    let older = db.json(&["audit"]).await[0]["id"].as_i64().expect("id");
    let page = db.json(&["audit", "--before", &older.to_string()]).await;
    assert_eq!(page.as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page[0]["action"], "retry");
}

backend_tests!(retry, cancel, purge, pause_and_resume, enqueue, audit_table);
