//! `sitq doctor` through the binary: the resolved database, the backend's
//! checks, tasks no live worker runs, and a non-zero exit on a failed check.

mod support;

use serde_json::json;
use sitq::EnqueueOptions;

use support::{Backend, Db, assert_fits, start_worker, wait_finished};

/// Adds.
#[sitq::task(name = "add")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

async fn healthy(db: &Db) {
    let id = add::enqueue(&db.queue, 1, 2).await.expect("enqueue").id();
    let worker = start_worker(&db.queue);
    wait_finished(&db.queue, id).await;
    // Two tasks no worker of this binary runs.
    for _ in 0..2 {
        db.queue
            .audited("test")
            .enqueue_json(
                "mailer::send",
                &json!({"to": "a@b.c"}),
                EnqueueOptions::new().queue("mail"),
            )
            .await
            .expect("enqueue by name");
    }
    let text = db.ok(&["doctor"]).await;
    assert_fits(&text);
    let location = db.queue.backend().location();
    assert!(
        text.starts_with(&format!("database: {location}\n")),
        "{text}"
    );
    match db.backend {
        Backend::Sqlite => {
            let path = db.sqlite_path().expect("path");
            let path = std::fs::canonicalize(path).expect("canonical path");
            assert_eq!(location, format!("sqlite://{}", path.display()));
            assert!(text.contains("journal mode"), "{text}");
        }
        Backend::Postgres => assert!(location.starts_with("postgres://"), "{location}"),
    }
    for expected in [
        "ok    schema: version",
        "workers: 1 live",
        "WARN  unserved: 2 task(s) of mailer::send on queue mail",
        "0 failed",
    ] {
        assert!(text.contains(expected), "no {expected:?} in\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");

    let report = db.json(&["doctor"]).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["location"], location.as_str());
    assert_eq!(report["schema_version"], report["expected_schema_version"]);
    assert_eq!(
        report["unserved"],
        json!([{"queue": "mail", "name": "mailer::send", "pending": 2}])
    );
    assert!(
        report["checks"]
            .as_array()
            .is_some_and(|checks| !checks.is_empty()),
        "{report}"
    );
    worker.stop().await;
}

backend_tests!(healthy);

/// A database migrated by a newer sitq fails the schema check: doctor says
/// so and exits non-zero, with its report still on stdout.
#[tokio::test]
async fn a_failed_check_exits_non_zero() {
    let db = Db::create(Backend::Sqlite, "doctor_fail")
        .await
        .expect("sqlite");
    let path = db.sqlite_path().expect("path");
    {
        let conn = sitq::sqlite::rusqlite::Connection::open(&path).expect("open");
        conn.execute(
            "INSERT INTO sitq_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'from the future', 1, x'00', 0)",
            [],
        )
        .expect("a newer migration");
    }
    let output = db.sitq(&["doctor"]).await;
    assert!(!output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FAIL  schema: version 99 is newer than this sitq knows"),
        "{stdout}"
    );
    assert!(stdout.contains("1 failed"), "{stdout}");
    let output = db.sitq(&["doctor", "--json"]).await;
    assert!(!output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["ok"], false);
    assert_eq!(report["schema_version"], 99);
    db.finish().await;
}
