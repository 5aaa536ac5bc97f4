//! An unreachable server gives a clear error in bounded time, and the
//! backend recovers by itself when the server comes back.

mod support;

use std::time::{Duration, Instant};

use sitq_core::{Backend, ConnectOptions, Error};
use sitq_postgres::PostgresBackend;
use support::proxy::Proxy;
use support::{TestDb, chain, task, within};
use tokio::net::TcpListener;

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_fast_and_clearly() {
    // Needs no server, but stays quiet like the others when none is configured.
    let Some(db) = TestDb::create().await else {
        return;
    };
    let port = closed_port().await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/sitq");
    let started = Instant::now();
    let error = within(
        "the connection error",
        PostgresBackend::connect(&url, ConnectOptions::new()),
    )
    .await
    .expect_err("nothing listens there");
    let text = chain(&error);
    assert!(matches!(error, Error::Database { .. }), "{text}");
    assert!(text.contains("connecting to PostgreSQL"), "{text}");
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not after a timeout: {:?}",
        started.elapsed()
    );
    db.drop().await;
}

#[tokio::test]
async fn calls_fail_while_the_server_is_gone_and_work_again_after() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut proxy = Proxy::to(&db.url).await;
    let proxied = proxy.url(2);
    let backend = PostgresBackend::connect(&proxied, ConnectOptions::new())
        .await
        .expect("connect through the proxy");
    let direct = db.backend().await;
    backend
        .enqueue(vec![task("before")])
        .await
        .expect("enqueue");

    proxy.down().await;
    let started = Instant::now();
    let error = within(
        "the error while the server is gone",
        backend.enqueue(vec![task("during")]),
    )
    .await
    .expect_err("the server is unreachable");
    let text = chain(&error);
    assert!(text.contains("enqueueing tasks"), "{text}");
    assert!(
        text.contains("down or unreachable"),
        "says what it likely means: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by connect_timeout=2: {:?}",
        started.elapsed()
    );
    let error = within("the status error", backend.status(sitq_core::TaskId(1)))
        .await
        .expect_err("the server is unreachable");
    assert!(matches!(error, Error::Database { .. }), "{error:?}");

    proxy.up().await;
    let mut work = backend.signals().subscribe_work();
    work.borrow_and_update();
    within("calls working again", async {
        while backend.enqueue(vec![task("after")]).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // The listener came back too: another process's enqueue wakes this one.
    // (Its reconnect also signals work, so drain that first.)
    within("notifications working again", async {
        loop {
            work.borrow_and_update();
            direct
                .enqueue(vec![task("elsewhere")])
                .await
                .expect("enqueue");
            if tokio::time::timeout(Duration::from_millis(500), work.changed())
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert_eq!(
        backend.status(sitq_core::TaskId(1)).await.expect("status"),
        Some(sitq_core::TaskStatus::Pending)
    );

    backend.close().await;
    direct.close().await;
    proxy.down().await;
    db.drop().await;
}
