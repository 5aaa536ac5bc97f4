//! Who may use the dashboard: the token (bearer or basic), the loopback
//! host check against DNS rebinding, and the bind rule.

mod support;

use base64::Engine;
use reqwest::StatusCode;
use sitq_web::{Dashboard, check_bind};

use support::{Backend, Db, Server, client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_on_every_request() {
    let db = Db::create(Backend::Sqlite, "token").await.expect("sqlite");
    let server = Server::start(Dashboard::new(db.queue.clone()).token("s3cret-token")).await;
    for path in ["/", "/tasks", "/api/stats", "/api/tasks"] {
        let response = client().get(server.url(path)).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Basic")),
            "a browser is asked for the token"
        );
        let wrong = client()
            .get(server.url(path))
            .bearer_auth("s3cret-toke")
            .send()
            .await
            .expect("GET");
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
        let bearer = client()
            .get(server.url(path))
            .bearer_auth("s3cret-token")
            .send()
            .await
            .expect("GET");
        assert_eq!(bearer.status(), StatusCode::OK, "{path}");
        let basic = base64::engine::general_purpose::STANDARD.encode("ops:s3cret-token");
        let basic = client()
            .get(server.url(path))
            .header("authorization", format!("Basic {basic}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(basic.status(), StatusCode::OK, "{path}");
    }
    // An action without the token changes nothing.
    let response = client()
        .post(server.url("/api/tasks"))
        .json(&serde_json::json!({"name": "add", "args": {"a": 1, "b": 1}}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(db.queue.stats().await.expect("stats").counts.is_empty());
    server.stop().await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_only_answers_loopback_hosts() {
    let db = Db::create(Backend::Sqlite, "hosts").await.expect("sqlite");
    let server = Server::start(Dashboard::new(db.queue.clone()).loopback_hosts_only(true)).await;
    let port = server.addr.port();
    for (host, expect) in [
        (format!("127.0.0.1:{port}"), StatusCode::OK),
        (format!("localhost:{port}"), StatusCode::OK),
        (format!("rebound.example:{port}"), StatusCode::FORBIDDEN),
    ] {
        let response = client()
            .get(server.url("/api/stats"))
            .header("host", &host)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), expect, "Host: {host}");
    }
    server.stop().await;
    db.finish().await;
}

#[test]
fn binding_beyond_loopback_needs_a_token() {
    let parse = |addr: &str| addr.parse::<std::net::SocketAddr>().expect("address");
    assert!(check_bind(&parse("127.0.0.1:8080"), None).is_ok());
    assert!(check_bind(&parse("[::1]:8080"), None).is_ok());
    let refused = check_bind(&parse("0.0.0.0:8080"), None).expect_err("refused");
    assert!(
        refused.contains("--token") && refused.contains("SITQ_DASHBOARD_TOKEN"),
        "{refused}"
    );
    assert!(check_bind(&parse("0.0.0.0:8080"), Some("")).is_err());
    assert!(check_bind(&parse("0.0.0.0:8080"), Some("s3cret")).is_ok());
}
