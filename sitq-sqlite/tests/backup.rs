//! `sitq_sqlite::backup`: a consistent copy of a live database.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{TempDb, task};
use sitq_core::{Backend, ConnectOptions, Error, NewTask, TaskFilter};
use sitq_sqlite::{BackupProgress, SqliteBackend, backup};

/// Enough tasks with 4 KiB payloads for the copy to take several steps.
const TASKS: usize = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_completes_while_another_connection_keeps_writing() {
    let db = TempDb::new("backup-src");
    let dest = TempDb::new("backup-dest");
    let backend = db.connect().await;
    let tasks: Vec<NewTask> = (0..TASKS)
        .map(|i| NewTask {
            payload: vec![u8::try_from(i % 251).expect("small"); 4096],
            ..task("a")
        })
        .collect();
    let ids = backend.enqueue(tasks).await.expect("enqueue");

    // Another connection (as another process would) commits continuously.
    let writer = Arc::new(db.connect().await);
    let commits = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writing = tokio::spawn({
        let (writer, commits, stop) = (writer.clone(), commits.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Acquire) {
                writer.enqueue(vec![task("b")]).await.expect("write");
                commits.fetch_add(1, Ordering::Release);
            }
        }
    });

    let url = db.url();
    let path = dest.path.clone();
    let seen_commits = commits.clone();
    let reports = tokio::task::spawn_blocking(move || {
        let mut reports: Vec<BackupProgress> = Vec::new();
        backup(&url, &path, |progress| {
            reports.push(progress);
            // Between steps, wait (bounded) for the other connection to
            // commit: every step after the first runs after a write.
            let at = seen_commits.load(Ordering::Acquire);
            let deadline = Instant::now() + Duration::from_secs(30);
            while seen_commits.load(Ordering::Acquire) == at {
                assert!(
                    Instant::now() < deadline,
                    "the writer made no commit for 30 s"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .map(|()| reports)
    })
    .await
    .expect("the backup thread")
    .expect("the backup completes under writes");
    stop.store(true, Ordering::Release);
    writing.await.expect("the writer");

    assert!(reports.len() > 2, "several steps: {reports:?}");
    assert!(
        reports
            .windows(2)
            .all(|w| w[0].copied_pages <= w[1].copied_pages)
    );
    let last = reports.last().expect("a report");
    assert_eq!(last.copied_pages, last.total_pages);
    assert!(commits.load(Ordering::Acquire) >= reports.len() as u64);

    let mode = std::fs::metadata(&dest.path)
        .expect("the copy exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");

    // The copy is a sitq database with the same tasks.
    let copy = SqliteBackend::connect(&dest.url(), ConnectOptions::new().create_missing(false))
        .await
        .expect("the copy opens");
    for &i in &[0, TASKS / 2, TASKS - 1] {
        let original = backend.get(ids[i]).await.expect("get").expect("stored");
        let copied = copy.get(ids[i]).await.expect("get").expect("copied");
        assert_eq!(copied, original);
    }
    let listed = copy
        .tasks(&TaskFilter {
            name: Some("a".into()),
            limit: TASKS + 1,
            ..TaskFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), TASKS);
    let check: String = rusqlite::Connection::open(&dest.path)
        .expect("raw open")
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
    copy.close().await;
    writer.close().await;
    backend.close().await;
}

#[tokio::test]
async fn a_backup_refuses_an_existing_destination_and_says_which() {
    let db = TempDb::new("backup-exists");
    let dest = TempDb::new("backup-exists-dest");
    let backend = db.connect().await;
    backend.enqueue(vec![task("a")]).await.expect("enqueue");
    std::fs::write(&dest.path, b"keep me").expect("an existing file");
    let err = backup(&db.url(), &dest.path, |_| {}).expect_err("refused");
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(
        err.to_string().contains(&dest.path.display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&dest.path).expect("still there"),
        b"keep me",
        "left alone"
    );
    backend.close().await;
}

#[test]
fn a_backup_of_nothing_is_an_error_and_creates_nothing() {
    let missing = TempDb::new("backup-missing");
    let dest = TempDb::new("backup-missing-dest");
    let err = backup(&missing.url(), &dest.path, |_| {}).expect_err("no source");
    assert!(
        err.to_string()
            .contains(&missing.path.display().to_string()),
        "{err}"
    );
    assert!(!missing.path.exists() && !dest.path.exists());

    let err = backup("sqlite::memory:", &dest.path, |_| {}).expect_err("memory");
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(!dest.path.exists());

    // A SQLite file that is not a sitq database.
    let other = TempDb::new("backup-other");
    rusqlite::Connection::open(&other.path)
        .expect("create")
        .execute_batch("CREATE TABLE t (x)")
        .expect("a table");
    let err = backup(&other.url(), &dest.path, |_| {}).expect_err("not sitq");
    assert!(err.to_string().contains("not a sitq database"), "{err}");
    assert!(!dest.path.exists());
}
