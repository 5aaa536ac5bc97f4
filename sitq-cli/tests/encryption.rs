//! `sitq show` of encrypted tasks: `<encrypted>` without the keys, the
//! arguments and result with them (`SITQ_ENCRYPTION_KEYS`), and a clear
//! error for a malformed key, which never echoes it.

mod support;

use sitq::{ConnectOptions, Keyring, Queue};

use support::{Db, run, start_worker, wait_finished};

/// Adds.
#[sitq::task(name = "add")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

const KEY_HEX: &str = "1111111111111111111111111111111111111111111111111111111111111111";

async fn show_encrypted(db: &Db) {
    let keyring = Keyring::parse(&format!("ops-1:{KEY_HEX}")).expect("keyring");
    let options = ConnectOptions::new().encryption(keyring);
    let queue = Queue::connect_with(&db.url, options)
        .await
        .expect("connect with keys");
    let id = add::enqueue(&queue, 2, 3).await.expect("enqueue").id();
    let worker = start_worker(&queue);
    wait_finished(&queue, id).await;
    worker.stop().await;
    let id = id.to_string();

    let without = db.json(&["show", &id]).await;
    assert_eq!(without["arguments"], "<encrypted>", "{without}");
    assert_eq!(without["result"], "<encrypted>", "{without}");

    let args = |extra: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = ["show", &id, "--json", "--url", &db.url]
            .iter()
            .map(|arg| (*arg).to_owned())
            .collect();
        all.extend(extra.iter().map(|arg| (*arg).to_owned()));
        all
    };
    let keys = format!("ops-1:{KEY_HEX}");
    let with = run(args(&[]), &[("SITQ_ENCRYPTION_KEYS", &keys)]).await;
    assert!(with.status.success(), "{with:?}");
    let with: serde_json::Value = serde_json::from_slice(&with.stdout).expect("JSON");
    assert_eq!(with["arguments"], serde_json::json!({"a": 2, "b": 3}));
    assert_eq!(with["result"], 5);

    let secret = "ab".repeat(30);
    let bad = run(
        args(&[]),
        &[("SITQ_ENCRYPTION_KEYS", &format!("ops-1:{secret}"))],
    )
    .await;
    assert!(!bad.status.success(), "a malformed key is refused");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("SITQ_ENCRYPTION_KEYS") && stderr.contains("60 hex digits"),
        "{stderr}"
    );
    assert!(!stderr.contains(&secret), "the key is not echoed: {stderr}");
    queue.close().await;
}

backend_tests!(show_encrypted);
