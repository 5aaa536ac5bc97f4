//! The worker registry: beats, drain requests, expiry.

use super::*;

#[tokio::test]
async fn a_beat_registers_a_worker_and_refreshes_it() {
    let queue = queue().await;
    let backend = backend(&queue);
    assert!(backend.workers().await.expect("workers").is_empty());

    let before = Utc::now();
    let control = backend
        .worker_beat(&beat("w1", Duration::from_secs(15)))
        .await
        .expect("first beat");
    assert!(!control.drain);
    let workers = backend.workers().await.expect("workers");
    assert_eq!(workers.len(), 1);
    let first = &workers[0];
    assert_eq!(first.id, "w1");
    assert_eq!(first.host, "host-1");
    assert_eq!(first.pid, 4242);
    assert_eq!(first.version, "0.1.0");
    assert_eq!(first.queues, vec!["default", "mail"]);
    assert_eq!(first.tasks, vec!["a", "b"]);
    assert_eq!(first.concurrency, 8);
    assert_eq!(first.running, 0);
    assert!(!first.draining);
    assert!(first.started_at >= before - chrono::Duration::seconds(1));
    assert_eq!(first.last_seen, first.started_at);
    assert_eq!(
        first.expires_at - first.last_seen,
        chrono::Duration::seconds(15)
    );
    assert!(first.runs("mail", "a") && !first.runs("other", "a") && !first.runs("mail", "z"));

    // The next beat overwrites every field but the first beat's time.
    let mut next = beat("w1", Duration::from_secs(30));
    next.running = 3;
    next.concurrency = 4;
    next.queues = Vec::new();
    next.tasks = vec!["c".to_owned()];
    backend.worker_beat(&next).await.expect("second beat");
    let workers = backend.workers().await.expect("workers");
    let second = &workers[0];
    assert_eq!(
        second.started_at, first.started_at,
        "kept from the first beat"
    );
    assert!(second.last_seen >= first.last_seen);
    assert_eq!(
        second.expires_at - second.last_seen,
        chrono::Duration::seconds(30)
    );
    assert_eq!((second.running, second.concurrency), (3, 4));
    assert!(second.queues.is_empty());
    assert_eq!(second.tasks, vec!["c"]);

    // Several workers are listed by id.
    backend
        .worker_beat(&beat("w0", Duration::from_secs(15)))
        .await
        .expect("another worker");
    let ids: Vec<String> = backend
        .workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, vec!["w0", "w1"]);

    // A clean stop removes the row; an unknown id is a no-op.
    backend.remove_worker("w1").await.expect("remove");
    backend
        .remove_worker("nobody")
        .await
        .expect("remove unknown");
    let ids: Vec<String> = backend
        .workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, vec!["w0"]);
}

#[tokio::test]
async fn a_drain_request_reaches_the_next_beat_and_this_process_at_once() {
    let queue = queue().await;
    let backend = backend(&queue);
    backend
        .worker_beat(&beat("w1", Duration::from_secs(15)))
        .await
        .expect("beat");

    let mut control = backend.signals().subscribe_control();
    control.borrow_and_update();
    assert!(
        !backend.drain_worker("nobody").await.expect("drain unknown"),
        "an unknown worker is not drained"
    );
    assert!(
        !control.has_changed().expect("signals alive"),
        "nothing changed, nothing told"
    );
    assert!(
        matches!(queue.drain_worker("nobody").await, Err(Error::WorkerNotFound(id)) if id == "nobody")
    );

    assert!(backend.drain_worker("w1").await.expect("drain"));
    tokio::time::timeout(sitq_core::testing::WAIT, control.changed())
        .await
        .expect("this process's workers are told within the wait")
        .expect("signals alive");
    assert!(backend.workers().await.expect("workers")[0].draining);

    // The request is kept across beats until the worker stops.
    for _ in 0..2 {
        let answer = backend
            .worker_beat(&beat("w1", Duration::from_secs(15)))
            .await
            .expect("beat");
        assert!(answer.drain, "the beat carries the drain request");
    }
    // Draining twice is fine.
    assert!(backend.drain_worker("w1").await.expect("drain again"));
}

#[tokio::test]
async fn an_expired_worker_is_not_listed_and_the_next_beat_of_another_deletes_it() {
    let queue = queue().await;
    let backend = backend(&queue);
    // "live" beats first: its beat would delete an already expired row.
    backend
        .worker_beat(&beat("live", Duration::from_secs(15)))
        .await
        .expect("beat");
    backend
        .worker_beat(&beat("gone", Duration::ZERO))
        .await
        .expect("beat");
    // A zero TTL expires at its own beat: any later instant is past it.
    eventually("the zero-TTL worker to expire", || async {
        backend.workers().await.expect("workers").len() == 1
    })
    .await;
    assert_eq!(backend.workers().await.expect("workers")[0].id, "live");
    assert!(
        !backend.drain_worker("gone").await.expect("drain expired"),
        "an expired worker cannot be drained"
    );

    let rows = || async {
        transaction(&queue, |tx| {
            tx.query_row("SELECT count(*) FROM sitq_workers", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .await
        .expect("count rows")
    };
    assert_eq!(rows().await, 2, "expired, but not deleted yet");
    backend
        .worker_beat(&beat("live", Duration::from_secs(15)))
        .await
        .expect("beat");
    assert_eq!(
        rows().await,
        1,
        "another worker's beat deleted the expired row"
    );
}
