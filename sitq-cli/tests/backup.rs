//! `sitq backup PATH` through the binary: a copy of a live SQLite database;
//! on PostgreSQL, the pg_dump command to use instead.

mod support;

use sitq::Queue;

use support::{Backend, Db, start_worker, temp_path, wait_finished};

/// Adds.
#[sitq::task(name = "add")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

async fn backup(db: &Db) {
    let id = add::enqueue(&db.queue, 2, 3).await.expect("enqueue").id();
    let worker = start_worker(&db.queue);
    wait_finished(&db.queue, id).await;
    let dest = temp_path("copy").with_extension("db");
    let dest_text = dest.display().to_string();
    match db.backend {
        Backend::Sqlite => {
            // The worker still runs: the copy is of a live database.
            let output = db.sitq(&["backup", &dest_text]).await;
            assert!(output.status.success(), "{output:?}");
            assert_eq!(
                String::from_utf8_lossy(&output.stdout),
                format!("copied the database to {dest_text}\n")
            );
            assert!(
                output.stderr.is_empty(),
                "no progress bar off a terminal: {output:?}"
            );
            let copy = Queue::connect(&format!("sqlite://{dest_text}"))
                .await
                .expect("the copy opens");
            let record = copy.get(id).await.expect("the task is in the copy");
            assert_eq!(record.name, "add");
            assert_eq!(
                record.result_json().expect("result"),
                Some(serde_json::json!(5))
            );
            copy.close().await;

            let again = db.sitq(&["backup", &dest_text]).await;
            assert!(
                !again.status.success(),
                "an existing file is not overwritten"
            );
            let stderr = String::from_utf8_lossy(&again.stderr);
            assert!(
                stderr.starts_with("error: ") && stderr.lines().count() == 1,
                "{stderr}"
            );
            assert!(stderr.contains(&dest_text), "{stderr}");
            for suffix in ["", "-wal", "-shm", "-sitq"] {
                let _ = std::fs::remove_file(format!("{dest_text}{suffix}"));
            }
        }
        Backend::Postgres => {
            let output = db.sitq(&["backup", &dest_text]).await;
            assert!(!output.status.success());
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(
                stderr.starts_with("error: ")
                    && stderr.contains(&format!("pg_dump --format=custom --file={dest_text} ")),
                "{stderr}"
            );
            assert!(!dest.exists(), "nothing written");
        }
    }
    worker.stop().await;
}

/// A password in the URL is never echoed in the pg_dump hint.
#[tokio::test]
async fn the_pg_dump_hint_leaves_the_password_out() {
    let output = support::sitq(
        "postgres://app:hunter2@db.invalid:5432/jobs",
        &["backup", "x.dump"],
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        "error: sitq backup copies SQLite databases; for PostgreSQL run: pg_dump --format=custom --file=x.dump postgres://app@db.invalid:5432/jobs\n"
    );
}

backend_tests!(backup);
