//! The HTML pages over HTTP on both backends: each renders what the
//! database holds, markup in stored text is escaped, forms need the CSRF
//! cookie, cancel and delete ask first, read-only hides every action, and
//! links work when the router is nested under a prefix.

mod support;

use reqwest::StatusCode;
use sitq::TaskStatus;
use sitq_web::Dashboard;

use support::{Db, Seeded, Server, XSS, client, seed};

/// GETs `path`; the status, the body and the CSRF cookie the page set.
async fn page(server: &Server, path: &str) -> (StatusCode, String, Option<String>) {
    let response = client().get(server.url(path)).send().await.expect("GET");
    let status = response.status();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix("sitq_csrf="))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned);
    (status, response.text().await.expect("body"), cookie)
}

/// POSTs a form with the cookie (if any); the status and Location.
async fn submit(
    server: &Server,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, Option<String>) {
    let mut request = client().post(server.url(path)).form(form);
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("sitq_csrf={cookie}"));
    }
    let response = request.send().await.expect("POST");
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (response.status(), location)
}

fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Every page answers 200 with the seeded data; stored markup is text.
async fn pages_render(db: &Db) {
    let Seeded {
        failed,
        workflow,
        first,
        ..
    } = seed(&db.queue).await;
    let server = Server::start(Dashboard::new(db.queue.clone())).await;
    for (path, expect) in [
        ("/", "Throughput and failure rate, last hour"),
        ("/tasks", "boom"),
        ("/tasks?status=failed&queue=default", "boom"),
        ("/queues", "reports"),
        ("/workers", "No live workers."),
        ("/schedules", "No schedules"),
        ("/audit", "No admin actions recorded."),
        ("/workflows/find", "Workflow id"),
        (&format!("/workflows/{}", workflow.0), "month-end"),
        (&format!("/tasks/{}", first.0), "Needed by (2)"),
    ] {
        let (status, body, _) = page(&server, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains(expect), "{path} shows {expect:?}: {body}");
        assert!(
            body.contains("http-equiv=\"refresh\""),
            "{path} refreshes itself"
        );
        assert!(!body.contains("<script"), "{path} has no script");
    }
    let (status, body, _) = page(&server, &format!("/tasks/{}", failed.0)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains(XSS), "the raw markup never reaches the page");
    assert!(
        body.contains(&escaped(XSS)),
        "the error is escaped text: {body}"
    );
    let (_, list, _) = page(&server, "/tasks?status=failed").await;
    assert!(
        !list.contains(XSS) && list.contains(&escaped(XSS)),
        "{list}"
    );

    // Bad input is a page saying what is wrong, with its status.
    let (status, body, _) = page(&server, "/tasks/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("bad task id"), "{body}");
    let (status, _, _) = page(&server, "/tasks/99999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body, _) = page(&server, "/tasks?status=done").await;
    assert_eq!(status, StatusCode::OK, "the form stays usable");
    assert!(body.contains("unknown status"), "{body}");
    let (status, _, _) = page(&server, "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = client()
        .get(server.url(&format!("/tasks/find?id={}", failed.0)))
        .send()
        .await
        .expect("find");
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(format!("/tasks/{}", failed.0).as_str())
    );
    server.stop().await;
}

/// A form needs the CSRF token of the browser's cookie; with it, retry
/// acts at once, cancel and delete only once confirmed.
async fn forms_and_csrf(db: &Db) {
    let seeded = seed(&db.queue).await;
    let server = Server::start(Dashboard::new(db.queue.clone())).await;
    let (_, _, cookie) = page(&server, &format!("/tasks/{}", seeded.failed.0)).await;
    let cookie = cookie.expect("the page sets a CSRF cookie");
    let retry = format!("/tasks/{}/retry", seeded.failed.0);

    for (cookie, token) in [
        (None, cookie.as_str()),
        (Some(cookie.as_str()), "0123456789abcdef0123456789abcdef"),
    ] {
        let (status, _) = submit(&server, &retry, cookie, &[("csrf", token)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = submit(&server, &retry, Some(&cookie), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token field");
    assert_eq!(
        db.queue.status(seeded.failed).await.expect("status"),
        TaskStatus::Failed
    );

    // Cross-site: refused before the form is read.
    let response = client()
        .post(server.url(&retry))
        .header("origin", "http://evil.example")
        .header("cookie", format!("sitq_csrf={cookie}"))
        .form(&[("csrf", cookie.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let (status, location) = submit(&server, &retry, Some(&cookie), &[("csrf", &cookie)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location,
        Some(format!("/tasks/{}?done=retried", seeded.failed.0))
    );
    assert_eq!(
        db.queue.status(seeded.failed).await.expect("status"),
        TaskStatus::Pending
    );

    // Cancel asks first: without confirm=yes it goes to the question.
    let cancel = format!("/tasks/{}/cancel", seeded.delayed.0);
    let (status, body, _) = page(&server, &cancel).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Cancel task") && body.contains("name=\"confirm\""),
        "{body}"
    );
    let (status, location) = submit(&server, &cancel, Some(&cookie), &[("csrf", &cookie)]).await;
    assert_eq!(
        (status, location),
        (StatusCode::SEE_OTHER, Some(cancel.clone()))
    );
    assert_eq!(
        db.queue.status(seeded.delayed).await.expect("status"),
        TaskStatus::Pending
    );
    let (status, _) = submit(
        &server,
        &cancel,
        Some(&cookie),
        &[
            ("csrf", &cookie),
            ("confirm", "yes"),
            ("reason", "wrong month"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        db.queue.status(seeded.delayed).await.expect("status"),
        TaskStatus::Cancelled
    );

    // Delete: a finished task with an unfinished dependent is refused with
    // the reason; a plain finished one goes.
    let delete = format!("/tasks/{}/delete", seeded.added.0);
    let (status, location) = submit(
        &server,
        &delete,
        Some(&cookie),
        &[("csrf", &cookie), ("confirm", "yes")],
    )
    .await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/tasks?done=deleted"))
    );
    assert!(matches!(
        db.queue.get(seeded.added).await,
        Err(sitq::Error::NotFound(_))
    ));
    let pending = format!("/tasks/{}/delete", seeded.failed.0);
    let response = client()
        .post(server.url(&pending))
        .header("cookie", format!("sitq_csrf={cookie}"))
        .form(&[("csrf", cookie.as_str()), ("confirm", "yes")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("only finished tasks can be deleted")
    );

    // Pause and resume from the queues page.
    let (status, location) = submit(
        &server,
        "/queues/reports/pause",
        Some(&cookie),
        &[("csrf", &cookie)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location:?}");
    let (_, body, _) = page(&server, "/queues?done=paused").await;
    assert!(
        body.contains("Paused: workers take nothing more") && body.contains(">Resume<"),
        "{body}"
    );
    let (status, _) = submit(
        &server,
        "/queues/reports/resume",
        Some(&cookie),
        &[("csrf", &cookie)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let actions: Vec<String> = db
        .queue
        .audit_log(20, None)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in ["retry", "cancel", "delete", "pause", "resume"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    server.stop().await;
}

/// Read-only: no action is offered and a posted one is refused.
async fn read_only_pages(db: &Db) {
    let seeded = seed(&db.queue).await;
    let server = Server::start(Dashboard::new(db.queue.clone()).read_only(true)).await;
    let (_, body, cookie) = page(&server, &format!("/tasks/{}", seeded.failed.0)).await;
    assert!(
        !body.contains(">Retry<") && !body.contains("Delete…"),
        "{body}"
    );
    assert!(body.contains("read-only"));
    let (_, queues, _) = page(&server, "/queues").await;
    assert!(!queues.contains(">Pause<"), "{queues}");
    let cookie = cookie.expect("cookie");
    let retry = format!("/tasks/{}/retry", seeded.failed.0);
    let (status, _) = submit(&server, &retry, Some(&cookie), &[("csrf", &cookie)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = page(&server, &format!("/tasks/{}/delete", seeded.added.0)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        db.queue.status(seeded.failed).await.expect("status"),
        TaskStatus::Failed
    );
    server.stop().await;
}

/// The workers page lists a live worker with its slots and task names.
async fn workers_page(db: &Db) {
    let worker = sitq::Worker::new(db.queue.clone())
        .handle_signals(false)
        .concurrency(3);
    let id = worker.id().to_owned();
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    // The worker registers itself when it starts; wait for it, bounded.
    let deadline = std::time::Instant::now() + support::WAIT;
    while db.queue.workers().await.expect("workers").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never registered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let server = Server::start(Dashboard::new(db.queue.clone())).await;
    let (status, body, _) = page(&server, "/workers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&id), "{body}");
    assert!(body.contains("0 / 3") && body.contains("boom"), "{body}");
    let (_, overview, _) = page(&server, "/").await;
    assert!(overview.contains("0 of 3 slots busy"), "{overview}");
    server.stop().await;
    stop.shutdown().await;
    running.await.expect("join").expect("the worker ran");
}

backend_tests!(pages_render, forms_and_csrf, read_only_pages, workers_page);

/// Nested under a prefix in the user's own app, every link and form
/// carries the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_under_a_prefix() {
    let db = Db::create(support::Backend::Sqlite, "nested")
        .await
        .expect("sqlite");
    let seeded = seed(&db.queue).await;
    let app = axum::Router::new().nest("/ops/sitq", sitq_web::router(db.queue.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let body = client()
        .get(format!("http://{addr}/ops/sitq/tasks/{}", seeded.failed.0))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(body.contains("href=\"/ops/sitq/tasks\""), "{body}");
    assert!(
        body.contains(&format!(
            "action=\"/ops/sitq/tasks/{}/retry\"",
            seeded.failed.0
        )),
        "{body}"
    );
    let overview = client()
        .get(format!("http://{addr}/ops/sitq"))
        .send()
        .await
        .expect("GET");
    assert_eq!(overview.status(), StatusCode::OK);
    let overview = overview.text().await.expect("body");
    assert!(
        overview.contains("href=\"/ops/sitq/tasks?status=failed\""),
        "{overview}"
    );
    server.abort();
    db.finish().await;
}
