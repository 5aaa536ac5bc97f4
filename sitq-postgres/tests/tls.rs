//! TLS with `sslmode=verify-full`, against the test cluster's certificate:
//! `cargo xtask test` makes an authority, a server certificate it signs for
//! `localhost` only, and an unrelated authority, and names the two
//! authorities in `SITQ_TEST_POSTGRES_TLS_ROOT` and
//! `SITQ_TEST_POSTGRES_TLS_OTHER_ROOT`.

mod support;

use sitq_core::{ConnectOptions, Error, Queue};
use sitq_postgres::PostgresBackend;
use support::{TestDb, chain, task};

/// The authority that signed the server's certificate, and an unrelated
/// one; `None` (after saying so) when the cluster serves no TLS.
///
/// Panics when they are not set and `CI=true`: there, skipping would hide
/// that the tests never ran.
fn authorities() -> Option<(String, String)> {
    let root = std::env::var("SITQ_TEST_POSTGRES_TLS_ROOT").ok();
    let other = std::env::var("SITQ_TEST_POSTGRES_TLS_OTHER_ROOT").ok();
    match (root, other) {
        (Some(root), Some(other)) if !root.is_empty() && !other.is_empty() => Some((root, other)),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "SITQ_TEST_POSTGRES_TLS_ROOT and SITQ_TEST_POSTGRES_TLS_OTHER_ROOT are not set but \
             CI=true: the TLS tests must run in CI (`cargo xtask test` makes the certificates, \
             with the openssl command)"
        ),
        _ => {
            eprintln!(
                "skipped: set SITQ_TEST_POSTGRES_TLS_ROOT and SITQ_TEST_POSTGRES_TLS_OTHER_ROOT \
                 (or run `cargo xtask test` with openssl installed)"
            );
            None
        }
    }
}

/// `db`'s URL with `host` and the TLS parameters.
fn tls_url(db: &TestDb, host: &str, root: &str) -> String {
    let base = db.url.split('?').next().unwrap_or(&db.url);
    let (scheme, rest) = base.split_once("://").expect("a URL with a scheme");
    let (user, rest) = rest.split_once('@').expect("a user in the test URL");
    let port_and_path = rest
        .split_once(':')
        .map(|(_, tail)| tail)
        .expect("a port in the test URL");
    format!("{scheme}://{user}@{host}:{port_and_path}?sslmode=verify-full&sslrootcert={root}")
}

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_right_authority_runs_over_tls() {
    let Some((root, _)) = authorities() else {
        return;
    };
    let Some(db) = TestDb::create().await else {
        return;
    };
    let queue = Queue::connect(&tls_url(&db, "localhost", &root))
        .await
        .unwrap_or_else(|error| panic!("connect over TLS: {}", chain(&error)));
    let backend = queue.backend();
    let ids = backend.enqueue(vec![task("tls")]).await.expect("enqueue");
    assert_eq!(
        backend.status(ids[0]).await.expect("status"),
        Some(sitq_core::TaskStatus::Pending)
    );

    // Every connection sitq holds to this database (the pool's and the
    // listener's) is encrypted; this one, the control, is not.
    let mut plain =
        <sqlx::PgConnection as sqlx::Connection>::connect(&with_param(&db.url, "sslmode=disable"))
            .await
            .expect("connect without TLS");
    let connections: Vec<(String, bool)> = sqlx::query_as(
        "SELECT a.application_name::text, s.ssl
         FROM pg_stat_activity AS a JOIN pg_stat_ssl AS s ON s.pid = a.pid
         WHERE a.datname = current_database() AND a.application_name LIKE 'sitq%'
         ORDER BY 1",
    )
    .fetch_all(&mut plain)
    .await
    .expect("read pg_stat_ssl");
    assert!(
        connections.iter().any(|(name, _)| name == "sitq-listener")
            && connections.iter().any(|(name, _)| name == "sitq"),
        "{connections:?}"
    );
    assert!(
        connections.iter().all(|(_, ssl)| *ssl),
        "a connection without TLS: {connections:?}"
    );
    let own: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut plain)
        .await
        .expect("read pg_stat_ssl");
    assert!(
        !own,
        "the test's own sslmode-less connection is the control"
    );
    sqlx::Connection::close(plain).await.ok();

    queue.close().await;
    db.drop().await;
}

#[tokio::test]
async fn verify_full_refuses_a_server_signed_by_another_authority() {
    let Some((_, other)) = authorities() else {
        return;
    };
    let Some(db) = TestDb::create().await else {
        return;
    };
    let error = PostgresBackend::connect(&tls_url(&db, "localhost", &other), ConnectOptions::new())
        .await
        .expect_err("the server's certificate is not trusted");
    let text = error.to_string();
    assert!(matches!(error, Error::Database { .. }), "{text}");
    assert!(text.contains("connecting to PostgreSQL"), "{text}");
    assert!(
        text.contains("certificate is not signed by a trusted authority")
            && text.contains("sslrootcert"),
        "says why and what to check: {text}"
    );
    db.drop().await;
}

#[tokio::test]
async fn verify_full_refuses_a_host_the_certificate_does_not_name() {
    let Some((root, _)) = authorities() else {
        return;
    };
    let Some(db) = TestDb::create().await else {
        return;
    };
    // The same server, by its address: the certificate names `localhost` only.
    let error = PostgresBackend::connect(&tls_url(&db, "127.0.0.1", &root), ConnectOptions::new())
        .await
        .expect_err("the certificate does not name 127.0.0.1");
    let text = error.to_string();
    assert!(
        text.contains("certificate is not valid for the host"),
        "says why: {text}"
    );
    db.drop().await;
}
