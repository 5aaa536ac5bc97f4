//! Read commands through the binary: `stats`, `ls`, `show`, `queues`,
//! `schedules`, on a database seeded by a worker in this process.

mod support;

use serde_json::json;
use sitq::{EnqueueOptions, TaskId};
use std::time::Duration;

use support::{Db, assert_fits, start_worker, wait_finished};

/// Adds.
#[sitq::task(name = "add")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Always fails, twice.
#[sitq::task(name = "flaky", max_attempts = 2, backoff = fixed("0s"))]
async fn flaky(why: String) -> Result<(), String> {
    Err(why)
}

/// Runs an hour from now.
#[sitq::task(name = "later", queue = "reports")]
async fn later(n: u32) -> u32 {
    n
}

/// A cron schedule, registered by the worker.
#[sitq::task(name = "nightly", cron = "0 0 3 * * *")]
async fn nightly() {}

/// A name longer than any column.
const LONG_NAME: &str =
    "billing::invoices::monthly::generate_the_very_long_report_for_every_customer_account";

/// What [`seed`] made.
struct Seeded {
    added: TaskId,
    failed: TaskId,
    delayed: TaskId,
    unknown: TaskId,
}

/// One task succeeded, one failed after 2 attempts with a long error, one
/// delayed an hour on queue `reports`, one of a long name no worker runs.
async fn seed(db: &Db) -> Seeded {
    let queue = &db.queue;
    let added = add::enqueue(queue, 2, 3).await.expect("enqueue add").id();
    let why = format!("disk full: {}", "no space left on device ".repeat(8));
    let failed = flaky::enqueue(queue, why)
        .await
        .expect("enqueue flaky")
        .id();
    let delayed = later::with()
        .delay(Duration::from_secs(3600))
        .enqueue(queue, 7)
        .await
        .expect("enqueue later")
        .id();
    let unknown = queue
        .audited("seed")
        .enqueue_json(LONG_NAME, &json!({"month": 11}), EnqueueOptions::new())
        .await
        .expect("enqueue by name");
    let worker = start_worker(queue);
    wait_finished(queue, added).await;
    wait_finished(queue, failed).await;
    worker.stop().await;
    Seeded {
        added,
        failed,
        delayed,
        unknown,
    }
}

async fn stats(db: &Db) {
    seed(db).await;
    let text = db.ok(&["stats"]).await;
    assert_fits(&text);
    for expected in [
        "QUEUE",
        "default",
        "reports",
        "failure rate",
        "live workers: 0",
    ] {
        assert!(text.contains(expected), "no {expected:?} in\n{text}");
    }
    let stats = db.json(&["stats"]).await;
    let counts = stats["counts"].as_array().expect("counts");
    let count = |name: &str, status: &str| {
        counts
            .iter()
            .filter(|c| c["name"] == name && c["status"] == status)
            .map(|c| c["count"].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(count("add", "succeeded"), 1, "{stats}");
    assert_eq!(count("flaky", "failed"), 1, "{stats}");
    assert_eq!(count("later", "pending"), 1, "{stats}");
    assert_eq!(stats["failed_attempts_last_hour"], 2, "{stats}");
    assert_eq!(stats["paused_queues"], json!([]), "{stats}");
    assert_eq!(stats["workers"], json!([]), "{stats}");
    assert!(stats["now"].is_string(), "{stats}");
}

async fn ls_filters(db: &Db) {
    let seeded = seed(db).await;
    let ids = |value: serde_json::Value| -> Vec<i64> {
        value
            .as_array()
            .expect("a list")
            .iter()
            .map(|task| task["id"].as_i64().expect("id"))
            .collect()
    };
    let all = ids(db.json(&["ls"]).await);
    assert_eq!(
        all,
        vec![
            seeded.unknown.0,
            seeded.delayed.0,
            seeded.failed.0,
            seeded.added.0
        ],
        "newest first"
    );
    assert_eq!(
        ids(db.json(&["ls", "--status", "failed"]).await),
        vec![seeded.failed.0]
    );
    assert_eq!(
        ids(db.json(&["ls", "--status", "failed,succeeded"]).await),
        vec![seeded.failed.0, seeded.added.0]
    );
    assert_eq!(
        ids(db
            .json(&["ls", "--status", "failed", "--status", "succeeded"])
            .await),
        vec![seeded.failed.0, seeded.added.0]
    );
    assert_eq!(
        ids(db.json(&["ls", "--queue", "reports"]).await),
        vec![seeded.delayed.0]
    );
    assert_eq!(
        ids(db.json(&["ls", "--name", "add"]).await),
        vec![seeded.added.0]
    );
    assert_eq!(ids(db.json(&["ls", "--since", "1h"]).await).len(), 4);
    assert_eq!(
        ids(db.json(&["ls", "--since", "2999-01-01T00:00:00Z"]).await),
        Vec::<i64>::new()
    );
    let first = db.json(&["ls", "--limit", "2"]).await;
    assert_eq!(ids(first), vec![seeded.unknown.0, seeded.delayed.0]);
    let before = seeded.delayed.to_string();
    assert_eq!(
        ids(db.json(&["ls", "--limit", "2", "--before", &before]).await),
        vec![seeded.failed.0, seeded.added.0]
    );
    let failed = db.json(&["ls", "--status", "failed"]).await;
    assert_eq!(failed[0]["error_kind"], "error");
    assert_eq!(failed[0]["attempts"], 2);

    let text = db.ok(&["ls"]).await;
    assert_fits(&text);
    assert!(
        text.contains('…'),
        "the long name and error are cut:\n{text}"
    );
    assert!(text.contains("disk full"), "{text}");
    assert!(text.contains("ID") && text.contains("STATUS"), "{text}");
    let output = db.sitq(&["ls", "--limit", "1"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("--before {}", seeded.unknown)),
        "{stderr}"
    );
}

async fn show_task(db: &Db) {
    let seeded = seed(db).await;
    let added = db.json(&["show", &seeded.added.to_string()]).await;
    assert_eq!(added["arguments"], json!({"a": 2, "b": 3}), "{added}");
    assert_eq!(added["result"], json!(5), "{added}");
    assert_eq!(added["task"]["status"], "succeeded", "{added}");
    let attempts = added["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{added}");
    assert_eq!(attempts[0]["outcome"], "succeeded");
    assert!(attempts[0]["worker_id"].is_string(), "{added}");

    let failed = db.json(&["show", &seeded.failed.to_string()]).await;
    let attempts = failed["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "every attempt: {failed}");
    for (at, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], at + 1);
        assert_eq!(attempt["outcome"], "failed");
        assert!(attempt["worker_id"].is_string(), "{attempt}");
        assert!(attempt["started_at"].is_string(), "{attempt}");
        let message = attempt["error"]["message"].as_str().expect("message");
        assert!(message.starts_with("disk full"), "{message}");
    }
    assert_eq!(failed["result"], serde_json::Value::Null);

    let text = db.ok(&["show", &seeded.failed.to_string()]).await;
    assert_fits(&text);
    for expected in [
        "flaky",
        "failed",
        "#1 failed",
        "#2 failed",
        "disk full",
        "\"why\"",
    ] {
        assert!(text.contains(expected), "no {expected:?} in\n{text}");
    }
    let text = db.ok(&["show", &seeded.added.to_string()]).await;
    assert_fits(&text);
    assert!(text.contains("result\n  5\n"), "{text}");
    let text = db.ok(&["show", &seeded.unknown.to_string()]).await;
    assert_fits(&text);
    assert!(text.contains("\"month\": 11"), "{text}");
}

async fn queues_and_schedules(db: &Db) {
    seed(db).await;
    let queues = db.json(&["queues"]).await;
    let reports = queues
        .as_array()
        .expect("queues")
        .iter()
        .find(|queue| queue["name"] == "reports")
        .unwrap_or_else(|| panic!("no reports queue in {queues}"));
    assert_eq!(reports["pending"], 1);
    assert_eq!(reports["paused"], false);
    let text = db.ok(&["queues"]).await;
    assert_fits(&text);
    assert!(
        text.contains("reports") && text.contains("active"),
        "{text}"
    );

    let schedules = db.json(&["schedules"]).await;
    assert_eq!(schedules[0]["name"], "nightly", "{schedules}");
    assert_eq!(schedules[0]["expression"], "0 0 3 * * *", "{schedules}");
    let text = db.ok(&["schedules"]).await;
    assert_fits(&text);
    assert!(text.contains("nightly"), "{text}");
}

backend_tests!(stats, ls_filters, show_task, queues_and_schedules);
