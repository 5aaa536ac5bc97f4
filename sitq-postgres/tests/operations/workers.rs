//! The worker registry: beats, expiry, clean stops and drain requests.

use std::time::Duration;

use sitq_core::{Backend, Error, Queue, WorkerBeat};
use sqlx::Connection;

use crate::beat;
use crate::sql;
use crate::support::{TestDb, chain, server_now, within};

#[tokio::test]
async fn a_beat_registers_then_refreshes_a_worker_keeping_its_start() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let before = server_now(&db).await;
    let control = backend.worker_beat(&beat("w-1")).await.expect("beat");
    assert!(!control.drain);
    let listed = backend.workers().await.expect("workers");
    assert_eq!(listed.len(), 1);
    let first = &listed[0];
    assert_eq!(
        (first.id.as_str(), first.host.as_str(), first.pid),
        ("w-1", "box-1", 4242)
    );
    assert_eq!(first.version, "0.1.0");
    assert_eq!(first.queues, ["mail", "reports"]);
    assert_eq!(first.tasks, ["a::send", "b::render"]);
    assert_eq!((first.concurrency, first.running), (8, 3));
    assert!(first.started_at >= before && first.last_seen == first.started_at);
    assert_eq!(
        first.expires_at - first.last_seen,
        chrono::Duration::seconds(60)
    );
    assert!(!first.draining);
    assert!(first.runs("mail", "a::send") && !first.runs("other", "a::send"));

    let changed = WorkerBeat {
        queues: Vec::new(),
        running: 7,
        concurrency: 16,
        ttl: Duration::from_secs(15),
        ..beat("w-1")
    };
    backend.worker_beat(&changed).await.expect("second beat");
    backend.worker_beat(&beat("w-2")).await.expect("other beat");
    let listed = backend.workers().await.expect("workers");
    let ids: Vec<&str> = listed.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["w-1", "w-2"], "by id");
    let again = &listed[0];
    assert_eq!(
        again.started_at, first.started_at,
        "set at the first beat only"
    );
    assert!(again.last_seen > first.last_seen);
    assert_eq!(
        again.expires_at - again.last_seen,
        chrono::Duration::seconds(15)
    );
    assert!(again.queues.is_empty() && again.runs("any", "b::render"));
    assert_eq!((again.concurrency, again.running), (16, 7));
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_drain_is_stored_answered_by_every_later_beat_and_listed() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend.worker_beat(&beat("w-1")).await.expect("beat");
    backend.worker_beat(&beat("w-2")).await.expect("beat");
    let control = backend.signals().subscribe_control();

    assert!(!backend.drain_worker("nobody").await.expect("drain"));
    assert!(
        !control.has_changed().expect("signals alive"),
        "an unknown worker wakes nobody"
    );
    assert!(backend.drain_worker("w-1").await.expect("drain"));
    assert!(
        control.has_changed().expect("signals alive"),
        "a drain wakes this process's workers at once"
    );
    for _ in 0..2 {
        assert!(backend.worker_beat(&beat("w-1")).await.expect("beat").drain);
        assert!(!backend.worker_beat(&beat("w-2")).await.expect("beat").drain);
    }
    let draining: Vec<(String, bool)> = backend
        .workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| (w.id, w.draining))
        .collect();
    assert_eq!(
        draining,
        [("w-1".to_owned(), true), ("w-2".to_owned(), false)]
    );

    // Through the queue, an unknown worker is an error naming it.
    let queue = Queue::connect(&db.url).await.expect("connect");
    let error = queue.drain_worker("nobody").await.expect_err("unknown");
    assert!(
        matches!(&error, Error::WorkerNotFound(id) if id == "nobody"),
        "{error:?}"
    );
    queue.drain_worker("w-2").await.expect("drain w-2");
    assert!(backend.worker_beat(&beat("w-2")).await.expect("beat").drain);
    queue.close().await;
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_drain_through_one_connection_wakes_another_process_at_once() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let admin = Queue::connect(&db.url).await.expect("connect the admin");
    let worker = Queue::connect(&db.url).await.expect("connect the worker");
    worker
        .backend()
        .worker_beat(&beat("w-1"))
        .await
        .expect("beat");
    let mut control = worker.backend().signals().subscribe_control();
    admin.drain_worker("w-1").await.expect("drain");
    within(
        "the drain's NOTIFY reaching the other connection's listener",
        control.changed(),
    )
    .await
    .expect("signals alive");
    assert!(
        worker
            .backend()
            .worker_beat(&beat("w-1"))
            .await
            .expect("beat")
            .drain
    );
    admin.close().await;
    worker.close().await;
    db.drop().await;
}

#[tokio::test]
async fn an_expired_worker_is_not_listed_nor_drained_and_the_next_beat_deletes_it() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend.worker_beat(&beat("gone")).await.expect("beat");
    backend.worker_beat(&beat("live")).await.expect("beat");
    sql(
        &db,
        "UPDATE sitq_workers SET expires_at = now() - interval '1 second' WHERE id = 'gone'",
    )
    .await;
    let listed: Vec<String> = backend
        .workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(listed, ["live"]);
    assert!(!backend.drain_worker("gone").await.expect("drain"));

    backend.worker_beat(&beat("live")).await.expect("beat");
    let mut connection = db.connection().await;
    let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM sitq_workers ORDER BY id")
        .fetch_all(&mut connection)
        .await
        .expect("read the rows");
    assert_eq!(
        rows,
        ["live"],
        "another worker's beat deleted the expired row"
    );

    // A worker that comes back after expiring registers afresh.
    backend.worker_beat(&beat("gone")).await.expect("beat");
    assert_eq!(backend.workers().await.expect("workers").len(), 2);
    connection.close().await.ok();
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn removing_a_worker_deletes_its_row_and_an_unknown_id_is_a_no_op() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend.worker_beat(&beat("w-1")).await.expect("beat");
    backend
        .remove_worker("nobody")
        .await
        .expect("remove unknown");
    assert_eq!(backend.workers().await.expect("workers").len(), 1);
    backend.remove_worker("w-1").await.expect("remove");
    assert!(backend.workers().await.expect("workers").is_empty());
    assert!(!backend.drain_worker("w-1").await.expect("drain"));
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_corrupt_worker_row_is_an_error_naming_the_worker() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend.worker_beat(&beat("w-1")).await.expect("beat");
    sql(&db, "UPDATE sitq_workers SET tasks = 'not json'").await;
    let error = backend.workers().await.expect_err("corrupt tasks");
    let text = chain(&error);
    assert!(
        text.contains("worker w-1") && text.contains("tasks"),
        "{text}"
    );
    sql(&db, "UPDATE sitq_workers SET tasks = '[]', pid = -1").await;
    let error = backend.workers().await.expect_err("corrupt pid");
    assert!(chain(&error).contains("pid -1"), "{}", chain(&error));
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_worker_id_with_a_nul_character_beats_and_drains() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let odd = beat("w\0odd");
    backend.worker_beat(&odd).await.expect("beat");
    assert!(backend.drain_worker("w\0odd").await.expect("drain"));
    assert!(backend.worker_beat(&odd).await.expect("beat").drain);
    backend.remove_worker("w\0odd").await.expect("remove");
    assert!(backend.workers().await.expect("workers").is_empty());
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn drains_are_heard_again_after_the_listener_reconnects() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let admin = db.backend().await;
    let worker = db.backend().await;
    worker.worker_beat(&beat("w-1")).await.expect("beat");
    let mut control = worker.signals().subscribe_control();
    sql(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'sitq-listener' AND datname = current_database()",
    )
    .await;
    // A drain sent while the listener was away went unheard: after
    // reconnecting it tells the workers to look at their rows.
    within("the control signal after reconnecting", control.changed())
        .await
        .expect("signals alive");
    // And drains are heard again: each round waits briefly, since one sent
    // before the new LISTEN took effect is lost by design.
    within("a drain notification after the reconnect", async {
        loop {
            control.borrow_and_update();
            assert!(admin.drain_worker("w-1").await.expect("drain"));
            if tokio::time::timeout(Duration::from_millis(500), control.changed())
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;
    admin.close().await;
    worker.close().await;
    db.drop().await;
}
