//! Opening databases: files, modes, WAL, migrations, memory isolation, the URL scheme.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{TempDb, memory, task};
use sitq_core::{Backend, ConnectOptions, Queue, TaskId, TaskStatus};
use sitq_sqlite::SqliteBackend;

#[tokio::test]
async fn a_new_file_is_created_owner_only() {
    let db = TempDb::new("mode");
    let backend = db.connect().await;
    let mode = std::fs::metadata(&db.path)
        .expect("the database file exists after connect")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    backend.close().await;
}

#[tokio::test]
async fn the_file_is_in_wal_mode() {
    let db = TempDb::new("wal");
    let backend = db.connect().await;
    backend.enqueue(vec![task("t")]).await.expect("enqueue");
    let conn = rusqlite::Connection::open(&db.path).expect("raw connect");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
    backend.close().await;
}

#[tokio::test]
async fn connecting_twice_keeps_the_data() {
    let db = TempDb::new("twice");
    let first = db.connect().await;
    let ids = first.enqueue(vec![task("t")]).await.expect("enqueue");
    first.close().await;
    let second = db.connect().await;
    assert_eq!(
        second.status(ids[0]).await.expect("status"),
        Some(TaskStatus::Pending)
    );
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_to_a_new_file_all_succeed() {
    let db = TempDb::new("concurrent");
    let url = db.url();
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { SqliteBackend::connect(&url, ConnectOptions::new()).await })
        })
        .collect();
    for connect in connects {
        let backend = connect
            .await
            .expect("connect task")
            .expect("every concurrent connect succeeds");
        backend.enqueue(vec![task("t")]).await.expect("enqueue");
        backend.close().await;
    }
}

#[tokio::test]
async fn each_memory_connect_is_its_own_database() {
    let a = memory().await;
    let b = memory().await;
    let ids = a.enqueue(vec![task("t")]).await.expect("enqueue");
    assert_eq!(
        a.status(ids[0]).await.expect("status"),
        Some(TaskStatus::Pending)
    );
    assert_eq!(b.status(ids[0]).await.expect("status"), None);
}

#[tokio::test]
async fn queue_connect_finds_the_sqlite_scheme() {
    let db = TempDb::new("scheme");
    let queue = Queue::connect(&db.url()).await.expect("Queue::connect");
    assert_eq!(queue.backend().name(), "sqlite");
    let memory = Queue::connect("sqlite::memory:").await.expect("memory");
    assert!(matches!(
        memory.status(TaskId(1)).await,
        Err(sitq_core::Error::NotFound(_))
    ));
    queue.close().await;
}

#[tokio::test]
async fn synchronous_full_is_accepted_and_bad_urls_are_refused() {
    let db = TempDb::new("sync");
    let url = format!("{}?synchronous=FULL", db.url());
    let backend = SqliteBackend::connect(&url, ConnectOptions::new())
        .await
        .expect("synchronous=FULL");
    backend.close().await;
    let err = SqliteBackend::connect("sqlite://", ConnectOptions::new())
        .await
        .expect_err("no file name");
    assert!(matches!(err, sitq_core::Error::InvalidUrl { .. }), "{err}");
}

#[tokio::test]
async fn calls_after_close_fail_instead_of_hanging() {
    let backend = memory().await;
    backend.close().await;
    let err = backend.enqueue(vec![task("t")]).await.expect_err("closed");
    assert!(err.to_string().contains("enqueueing"), "{err}");
    assert!(backend.status(TaskId(1)).await.is_err());
}

#[tokio::test]
async fn create_missing_off_refuses_a_missing_file_naming_its_absolute_path() {
    let options = ConnectOptions::new().create_missing(false);

    // Absolute: the error names the path, and nothing is created.
    let db = TempDb::new("missing");
    let err = SqliteBackend::connect(&db.url(), options.clone())
        .await
        .expect_err("a missing file is refused");
    let text = err.to_string();
    assert!(matches!(err, sitq_core::Error::Config(_)), "{err:?}");
    assert!(text.contains(&db.path.display().to_string()), "{text}");
    assert!(!db.path.exists(), "nothing was created");

    // Relative: the absolute path it resolved to, and the working directory.
    let name = format!("sitq-missing-{}.db", std::process::id());
    let cwd = std::env::current_dir().expect("working directory");
    let err = SqliteBackend::connect(&format!("sqlite://{name}"), options.clone())
        .await
        .expect_err("a missing relative file is refused");
    let text = err.to_string();
    assert!(
        text.contains(&cwd.join(&name).display().to_string()),
        "{text}"
    );
    assert!(text.contains("working directory"), "{text}");
    assert!(!cwd.join(&name).exists(), "nothing was created");

    // An existing file opens.
    let created = db.connect().await;
    created.close().await;
    let backend = SqliteBackend::connect(&db.url(), options)
        .await
        .expect("an existing file opens with create_missing off");
    backend.close().await;
}

#[tokio::test]
async fn location_is_the_canonical_absolute_path() {
    let db = TempDb::new("location");
    let backend = db.connect().await;
    let canonical = std::fs::canonicalize(&db.path).expect("canonical path");
    assert_eq!(
        backend.location(),
        format!("sqlite://{}", canonical.display())
    );
    assert!(backend.location().starts_with("sqlite:///"));
    backend.close().await;
    assert_eq!(memory().await.location(), "sqlite::memory:");
}

#[tokio::test]
async fn an_unopenable_path_is_named_with_the_systems_reason() {
    let dir = std::env::temp_dir().join(format!("sitq-no-such-dir-{}", std::process::id()));
    let path = dir.join("tasks.db");
    let err = Queue::connect(&format!("sqlite://{}", path.display()))
        .await
        .map(drop)
        .expect_err("no such directory");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");
    assert!(!dir.exists(), "nothing was created");
}
