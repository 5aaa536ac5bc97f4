//! An unreachable server gives a clear error in bounded time, and the
//! backend recovers by itself when the server comes back.

mod support;

use std::error::Error as _;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sitq_core::{Backend, ConnectOptions, Error};
use sitq_postgres::PostgresBackend;
use sqlx::postgres::PgConnectOptions;
use support::{TestDb, task, within};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The whole chain of an error, for assertions on its wording.
fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

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

/// A TCP proxy to the server that the test can cut and restore, standing in
/// for a server that goes away and comes back.
struct Proxy {
    port: u16,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let mut proxy = Proxy {
            port: 0,
            target,
            task: None,
        };
        proxy.up().await;
        proxy
    }

    /// Listens (on the same port as before, if any) and forwards connections.
    async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the proxy port");
        self.port = listener.local_addr().expect("address").port();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Owned here, so aborting this task closes every connection too.
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        tokio::io::copy_bidirectional(&mut client, &mut server)
                            .await
                            .ok();
                    }
                });
            }
        }));
    }

    /// Closes the port and every connection through it.
    async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            task.await.ok();
        }
    }
}

#[tokio::test]
async fn calls_fail_while_the_server_is_gone_and_work_again_after() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let options = PgConnectOptions::from_str(&db.url).expect("test URL");
    let target = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .expect("resolve the server")
        .next()
        .expect("an address");
    let mut proxy = Proxy::start(target).await;
    let database = options
        .get_database()
        .expect("the test URL names a database");
    let proxied = format!(
        "postgres://{}@127.0.0.1:{}/{database}?connect_timeout=2",
        options.get_username(),
        proxy.port
    );
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
