//! A task stored encrypted, on the dashboard: `<encrypted>` on the task page
//! and in the API when the dashboard's queue lacks the key, the arguments
//! and result when it has it.

mod support;

use sitq::{ConnectOptions, Keyring, Queue};
use sitq_web::Dashboard;

use support::{Db, Server, client};

/// Adds.
#[sitq::task(name = "web_encrypted_add")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

const SECRET_ARGUMENT: i64 = 987_654_321;

async fn detail(queue: Queue, id: sitq::TaskId) -> (String, serde_json::Value) {
    let server = Server::start(Dashboard::new(queue)).await;
    let page = client()
        .get(server.url(&format!("/tasks/{}", id.0)))
        .send()
        .await
        .expect("GET page");
    assert!(page.status().is_success(), "{}", page.status());
    let page = page.text().await.expect("body");
    let api: serde_json::Value = client()
        .get(server.url(&format!("/api/tasks/{}", id.0)))
        .send()
        .await
        .expect("GET api")
        .json()
        .await
        .expect("JSON");
    server.stop().await;
    (page, api)
}

async fn encrypted_task_detail(db: &Db) {
    let keyring = || Keyring::new("web-1", [7; 32]).expect("keyring");
    let keyed = Queue::connect_with(&db.url, ConnectOptions::new().encryption(keyring()))
        .await
        .expect("connect with the key");
    let handle = add::enqueue(&keyed, SECRET_ARGUMENT, 1)
        .await
        .expect("enqueue");
    let worker = sitq::Worker::new(keyed.clone()).handle_signals(false);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let sum = handle
        .wait_timeout(std::time::Duration::from_secs(30))
        .await
        .expect("the task runs");
    assert_eq!(sum, SECRET_ARGUMENT + 1);
    stop.shutdown().await;
    running.await.expect("join").expect("the worker ran");

    let (page, api) = detail(db.queue.clone(), handle.id()).await;
    assert!(page.contains("&lt;encrypted&gt;"), "{page}");
    assert!(!page.contains(&SECRET_ARGUMENT.to_string()), "{page}");
    assert_eq!(api["arguments"], "<encrypted>", "{api}");
    assert_eq!(api["result"], "<encrypted>", "{api}");

    let (page, api) = detail(keyed.clone(), handle.id()).await;
    assert!(page.contains(&SECRET_ARGUMENT.to_string()), "{page}");
    assert_eq!(api["arguments"]["a"], SECRET_ARGUMENT, "{api}");
    assert_eq!(api["result"], SECRET_ARGUMENT + 1, "{api}");
    keyed.close().await;
}

backend_tests!(encrypted_task_detail);
