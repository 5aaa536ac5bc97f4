//! Bad input through the binary: exactly one line on stderr, `error: …`, a
//! non-zero exit, and nothing changed.

mod support;

use std::process::Output;

use support::{Db, run, sitq, temp_path};

/// Adds.
#[sitq::task(name = "add")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// The one error line of a failed run.
fn one_error_line(args: &[&str], output: &Output) -> String {
    assert!(
        !output.status.success(),
        "sitq {args:?} succeeded: {output:?}"
    );
    assert!(
        output.stdout.is_empty(),
        "sitq {args:?} printed: {output:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.starts_with("error: ") && stderr.ends_with('\n') && stderr.lines().count() == 1,
        "sitq {args:?}: not one error line: {stderr:?}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    stderr
}

async fn bad_input_changes_nothing(db: &Db) {
    let id = add::enqueue(&db.queue, 1, 2).await.expect("enqueue").id();
    let id_text = id.to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["show", "999999"], "task 999999 not found"),
        (&["retry", "999999"], "task 999999 not found"),
        (&["cancel", "999999"], "task 999999 not found"),
        (&["show", "abc"], "bad task id \"abc\""),
        (&["ls", "--before", "x1"], "bad task id"),
        (
            &["retry", &id_text],
            "only failed or cancelled tasks can be retried",
        ),
        (&["ls", "--status", "done"], "unknown status \"done\""),
        (
            &["ls", "--status", "failed,bogus"],
            "unknown status \"bogus\"",
        ),
        (&["purge", "--older-than", "5x"], "bad duration \"5x\""),
        (
            &["purge", "--older-than", "1d", "--status", "pending"],
            "only finished tasks",
        ),
        (&["ls", "--since", "yesterday"], "bad time \"yesterday\""),
        (&["ls", "--limit", "0"], "bad limit 0"),
        (&["enqueue", "add", "--args", "{oops"], "bad --args JSON"),
        (&["enqueue", "add", "--args", "5"], "a JSON object"),
        (
            &["enqueue", "add", "--args", "{}", "--delay", "soon"],
            "bad duration",
        ),
        (&["pause", ""], "queue"),
        (&["workers", "drain", "nobody"], "nobody"),
        (&["audit", "--limit", "0"], "bad limit"),
        (&["ls", "--bogus"], "--bogus"),
        (&["show"], "ID"),
    ];
    for (args, expected) in cases {
        let output = db.sitq(args).await;
        let line = one_error_line(args, &output);
        assert!(
            line.contains(expected),
            "sitq {args:?}: {line:?} lacks {expected:?}"
        );
    }
    // Nothing changed: the one task as it was, no other, no audit entry.
    let tasks = db.json(&["ls"]).await;
    assert_eq!(tasks.as_array().map(Vec::len), Some(1), "{tasks}");
    assert_eq!(tasks[0]["status"], "pending");
    assert_eq!(db.json(&["audit"]).await, serde_json::json!([]));
}

backend_tests!(bad_input_changes_nothing);

#[tokio::test]
async fn a_missing_sqlite_file_is_an_error_and_is_not_created() {
    let path = temp_path("missing").with_extension("db");
    let url = format!("sqlite://{}", path.display());
    for args in [
        &["stats"][..],
        &["ls"],
        &["pause", "mail"],
        &["doctor"],
        &["backup", "/tmp/never"],
    ] {
        let output = sitq(&url, args).await;
        let line = one_error_line(args, &output);
        assert!(line.contains(&path.display().to_string()), "{line}");
    }
    assert!(!path.exists(), "no database was created");
}

/// A mistake in the command line is named before the database is opened.
#[tokio::test]
async fn bad_arguments_are_named_before_connecting() {
    let url = format!(
        "sqlite://{}",
        temp_path("never").with_extension("db").display()
    );
    let cases: &[(&[&str], &str)] = &[
        (&["ls", "--status", "done"], "unknown status"),
        (&["show", "abc"], "bad task id"),
        (&["purge", "--older-than", "5x"], "bad duration"),
        (&["enqueue", "add", "--args", "{oops"], "bad --args JSON"),
    ];
    for (args, expected) in cases {
        let output = sitq(&url, args).await;
        let line = one_error_line(args, &output);
        assert!(
            line.contains(expected),
            "sitq {args:?}: {line:?} lacks {expected:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_postgres_server_is_one_line() {
    let output = sitq("postgres://sitq@127.0.0.1:1/nothing", &["stats"]).await;
    let line = one_error_line(&["stats"], &output);
    assert!(line.contains("PostgreSQL"), "{line}");
}

#[tokio::test]
async fn an_unknown_scheme_is_one_line() {
    let output = sitq("mysql://localhost/jobs", &["stats"]).await;
    one_error_line(&["stats"], &output);
}

#[tokio::test]
async fn no_url_is_one_line() {
    let output = run(vec!["stats".into()], &[]).await;
    let line = one_error_line(&["stats"], &output);
    assert!(line.contains("SITQ_DATABASE_URL"), "{line}");
}

#[tokio::test]
async fn the_url_comes_from_the_environment() {
    let path = temp_path("env").with_extension("db");
    let url = format!("sqlite://{}", path.display());
    let queue = sitq::Queue::connect(&url).await.expect("create");
    queue.close().await;
    let output = run(vec!["ls".into()], &[("SITQ_DATABASE_URL", &url)]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "no tasks\n");
    for suffix in ["", "-wal", "-shm", "-sitq"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
