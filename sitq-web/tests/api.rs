//! The JSON API under `/api`, over HTTP on a loopback port, on both
//! backends: reads, enqueue by name, actions, and what bad input gets.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sitq::TaskStatus;
use sitq_web::Dashboard;

use support::{Db, Server, XSS, client, seed};

async fn get(server: &Server, path: &str) -> (StatusCode, Value) {
    let response = client().get(server.url(path)).send().await.expect("GET");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

async fn post(server: &Server, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = client().post(server.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("POST");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

/// Every read returns what the database holds.
async fn reads(db: &Db) {
    let seeded = seed(&db.queue).await;
    let server = Server::start(Dashboard::new(db.queue.clone())).await;

    let (status, stats) = get(&server, "/api/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let count = |status: &str| -> u64 {
        stats["counts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == status)
            .filter_map(|c| c["count"].as_u64())
            .sum()
    };
    assert_eq!(count("succeeded"), 4, "{stats}");
    assert_eq!(count("failed"), 1, "{stats}");
    assert_eq!(count("pending"), 1, "{stats}");

    let (status, buckets) = get(&server, "/api/activity?window=1h&bucket=5m").await;
    assert_eq!(status, StatusCode::OK, "{buckets}");
    let buckets = buckets.as_array().expect("buckets");
    assert!((12..=13).contains(&buckets.len()), "{buckets:?}");
    let succeeded: u64 = buckets.iter().filter_map(|b| b["succeeded"].as_u64()).sum();
    assert_eq!(succeeded, 4);

    let (status, list) = get(&server, "/api/tasks?status=failed").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["tasks"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["tasks"][0]["id"], json!(seeded.failed.0));
    assert_eq!(
        list["tasks"][0]["error"].as_str().map(|e| e.contains(XSS)),
        Some(true)
    );

    // Keyset pages: two at a time, newest first, each id once.
    let mut seen = Vec::new();
    let mut path = "/api/tasks?limit=2".to_owned();
    loop {
        let (status, page) = get(&server, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["id"].as_i64()),
        );
        match page["next_before"].as_i64() {
            Some(before) => path = format!("/api/tasks?limit=2&before={before}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");

    let (status, task) = get(&server, &format!("/api/tasks/{}", seeded.added.0)).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["task"]["status"], "succeeded");
    assert_eq!(task["arguments"], json!({"a": 2, "b": 3}));
    assert_eq!(task["result"], json!(5));
    assert_eq!(task["attempts"].as_array().map(Vec::len), Some(1));

    let (_, failed) = get(&server, &format!("/api/tasks/{}", seeded.failed.0)).await;
    assert_eq!(failed["attempts"][0]["outcome"], "failed", "{failed}");
    assert_eq!(
        failed["attempts"][0]["error"]["message"]
            .as_str()
            .map(|m| m.contains(XSS)),
        Some(true),
        "{failed}"
    );

    let (_, last) = get(&server, &format!("/api/tasks/{}", seeded.last.0)).await;
    assert_eq!(
        last["links"]["workflow"],
        json!(seeded.workflow.0),
        "{last}"
    );
    assert_eq!(
        last["links"]["dependencies"][0]["id"],
        json!(seeded.first.0)
    );
    let (_, first) = get(&server, &format!("/api/tasks/{}", seeded.first.0)).await;
    assert_eq!(
        first["links"]["dependents"].as_array().map(Vec::len),
        Some(2),
        "{first}"
    );

    let (status, workflow) = get(&server, &format!("/api/workflows/{}", seeded.workflow.0)).await;
    assert_eq!(status, StatusCode::OK, "{workflow}");
    assert_eq!(workflow["name"], "month-end");
    assert_eq!(workflow["status"], "succeeded");
    assert_eq!(workflow["tasks"].as_array().map(Vec::len), Some(3));

    let (_, queues) = get(&server, "/api/queues").await;
    let reports = queues
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["name"] == "reports")
        .cloned();
    assert_eq!(
        reports.map(|q| q["pending"].clone()),
        Some(json!(1)),
        "{queues}"
    );

    let (status, workers) = get(&server, "/api/workers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(workers, json!([]), "the seeding worker stopped");
    let (status, _) = get(&server, "/api/schedules").await;
    assert_eq!(status, StatusCode::OK);
    let _ = seeded.delayed;
    server.stop().await;
}

/// Enqueue by name: the task is stored with its options and audited; bad
/// bodies are refused with a reason and store nothing.
async fn enqueue(db: &Db) {
    let server = Server::start(Dashboard::new(db.queue.clone()).actor("ci-bot")).await;
    let (status, body) = post(
        &server,
        "/api/tasks",
        Some(json!({"name": "add", "args": {"a": 20, "b": 22}, "queue": "math", "priority": 5, "delay": "1h"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["warning"]
            .as_str()
            .is_some_and(|w| w.contains("no live worker")),
        "{body}"
    );
    let id = sitq::TaskId(body["id"].as_i64().expect("an id"));
    let record = db.queue.get(id).await.expect("stored");
    assert_eq!(
        (record.name.as_str(), record.queue.as_str(), record.priority),
        ("add", "math", 5)
    );
    assert_eq!(record.status, TaskStatus::Pending);
    assert!(record.run_at > chrono::Utc::now() + chrono::Duration::minutes(59));
    assert_eq!(
        record.arguments_json().expect("args"),
        json!({"a": 20, "b": 22})
    );
    let audit = db.queue.audit_log(10, None).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.action == "enqueue" && e.actor == "ci-bot"),
        "{audit:?}"
    );

    for (body, expect) in [
        (json!({"args": {}}), "missing field `name`"),
        (json!({"name": " "}), "the task name is empty"),
        (json!({"name": "add", "args": 5}), "JSON object"),
        (json!({"name": "add", "delay": "soon"}), "bad delay"),
        (
            json!({"name": "add", "colour": "red"}),
            "unknown field `colour`",
        ),
    ] {
        let (status, reply) = post(&server, "/api/tasks", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| e.contains(expect)),
            "{body} -> {reply}"
        );
    }
    let response = client()
        .post(server.url("/api/tasks"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let stats = db.queue.stats().await.expect("stats");
    let total: u64 = stats.counts.iter().map(|c| c.count).sum();
    assert_eq!(total, 1, "only the good request stored a task");
    server.stop().await;
}

/// Retry, cancel, delete, pause and resume change the database and are
/// audited; actions a task's state forbids are conflicts, unknown ids 404.
async fn actions(db: &Db) {
    let seeded = seed(&db.queue).await;
    let server = Server::start(Dashboard::new(db.queue.clone())).await;
    let path = |id: sitq::TaskId, action: &str| format!("/api/tasks/{}/{action}", id.0);

    let (status, body) = post(&server, &path(seeded.failed, "retry"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        db.queue.status(seeded.failed).await.expect("status"),
        TaskStatus::Pending
    );
    let (status, body) = post(&server, &path(seeded.delayed, "retry"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, body) = post(
        &server,
        &path(seeded.delayed, "cancel"),
        Some(json!({"reason": "not this month"})),
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{body}"
    );
    let record = db.queue.get(seeded.delayed).await.expect("get");
    assert_eq!(record.status, TaskStatus::Cancelled);
    assert_eq!(
        record.cancellation.and_then(|c| c.reason).as_deref(),
        Some("not this month")
    );

    // The workflow's first task has finished dependents: deletable once
    // they are gone, not before.
    let response = client()
        .delete(server.url(&format!("/api/tasks/{}", seeded.added.0)))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(matches!(
        db.queue.get(seeded.added).await,
        Err(sitq::Error::NotFound(_))
    ));
    let response = client()
        .delete(server.url(&format!("/api/tasks/{}", seeded.failed.0)))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(
        response.status(),
        StatusCode::CONFLICT,
        "a pending task is not deleted"
    );

    let (status, _) = post(&server, "/api/queues/reports/pause", None).await;
    assert_eq!(status, StatusCode::OK);
    let paused = |queues: Vec<sitq::QueueInfo>| {
        queues
            .into_iter()
            .find(|q| q.name == "reports")
            .map(|q| q.paused)
    };
    assert_eq!(paused(db.queue.queues().await.expect("queues")), Some(true));
    let (status, _) = post(&server, "/api/queues/reports/resume", None).await;
    assert_eq!(status, StatusCode::OK);
    // Resumed, and with nothing left in it, it is listed as active or not at all.
    assert_ne!(paused(db.queue.queues().await.expect("queues")), Some(true));

    let (status, body) = post(&server, "/api/tasks/999999/retry", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = get(&server, "/api/tasks/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("bad task id"))
    );
    let (status, body) = get(&server, "/api/tasks?status=done").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = get(&server, "/api/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let actions: Vec<String> = db
        .queue
        .audit_log(50, None)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in ["retry", "cancel", "delete", "pause", "resume"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} audited: {actions:?}"
        );
    }
    server.stop().await;
}

/// A read-only dashboard refuses every action and changes nothing.
async fn read_only(db: &Db) {
    let seeded = seed(&db.queue).await;
    let server = Server::start(Dashboard::new(db.queue.clone()).read_only(true)).await;
    let (status, _) = post(
        &server,
        &format!("/api/tasks/{}/retry", seeded.failed.0),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(
        &server,
        "/api/tasks",
        Some(json!({"name": "add", "args": {"a": 1, "b": 2}})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(&server, "/api/queues/reports/pause", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let response = client()
        .delete(server.url(&format!("/api/tasks/{}", seeded.added.0)))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        db.queue.status(seeded.failed).await.expect("status"),
        TaskStatus::Failed
    );
    assert_eq!(
        db.queue.status(seeded.added).await.expect("status"),
        TaskStatus::Succeeded
    );
    let (status, _) = get(&server, "/api/stats").await;
    assert_eq!(status, StatusCode::OK, "reads still work");
    server.stop().await;
}

backend_tests!(reads, enqueue, actions, read_only);
