//! Conformance cases for encryption at rest ([`crate::encryption`]): what
//! the backend stores is sealed, keys rotate, and a value that cannot be
//! opened fails its task naming the key, kept for a retry.

use super::cases::wait;
use super::tasks::{Add, BlockingAdd};
use super::{Harness, worker_config};
use crate::encryption::{self, ENCRYPTED};
use crate::{ConnectOptions, EnqueueOptions, Error, FailureKind, Keyring, Queue, Task, TaskStatus};

const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];

fn keyring(id: &str, key: [u8; 32]) -> Keyring {
    Keyring::new(id, key).expect("a valid keyring")
}

async fn connect(url: &str, keyring: Option<Keyring>) -> Queue {
    let options = match keyring {
        Some(keyring) => ConnectOptions::new().encryption(keyring),
        None => ConnectOptions::new(),
    };
    Queue::connect_with(url, options)
        .await
        .unwrap_or_else(|err| panic!("connecting to {url}: {err}"))
}

/// A task enqueued and run with a keyring: its arguments and result are
/// stored sealed (a client without the key reads `<encrypted>`), and a
/// client with the key reads them back.
pub async fn encrypted_round_trip(h: &impl Harness) {
    let url = h.fresh_url().await;
    let queue = connect(&url, Some(keyring("k1", K1))).await;
    let worker = h.start_worker(&queue, worker_config());
    let handle = queue.enqueue(Add { a: 40, b: 2 }).await.expect("enqueue");
    assert_eq!(wait(&handle).await.expect("result"), 42);

    let plain_client = connect(&url, None).await;
    let stored = plain_client.get(handle.id()).await.expect("record");
    assert_eq!(encryption::sealed_key_id(&stored.payload), Some("k1"));
    let result = stored.result.clone().expect("a stored result");
    assert_eq!(encryption::sealed_key_id(&result), Some("k1"));
    assert_eq!(
        stored.arguments_json().expect("arguments"),
        serde_json::json!(ENCRYPTED)
    );
    assert_eq!(
        stored.result_json().expect("result"),
        Some(serde_json::json!(ENCRYPTED))
    );
    // A waiter without the key is told which key it needs.
    match plain_client.handle::<i64>(handle.id()).wait().await {
        Err(Error::Encryption(message)) => assert!(message.contains("\"k1\""), "{message}"),
        other => panic!("expected an encryption error naming k1, got {other:?}"),
    }

    let opened = queue.get(handle.id()).await.expect("record");
    assert_eq!(
        opened.arguments_json().expect("arguments"),
        serde_json::json!({"a": 40, "b": 2})
    );
    assert_eq!(
        opened.result_json().expect("result"),
        Some(serde_json::json!(42))
    );
    worker.shutdown().await;
}

/// With a new active key and the old one kept, old rows still open and new
/// ones are sealed with the new key; plain rows (from before encryption)
/// run as they are.
pub async fn rotated_keys_open_old_rows_and_plain_rows_still_run(h: &impl Harness) {
    let url = h.fresh_url().await;
    let old = connect(&url, Some(keyring("k1", K1))).await;
    let plain = connect(&url, None).await;
    let sealed_old = old.enqueue(Add { a: 1, b: 2 }).await.expect("enqueue");
    let unsealed = plain.enqueue(Add { a: 3, b: 4 }).await.expect("enqueue");
    let rotated = Keyring::new("k2", K2)
        .and_then(|k| k.with_old_key("k1", K1))
        .expect("keyring");
    let queue = connect(&url, Some(rotated)).await;
    let sealed_new = queue.enqueue(Add { a: 5, b: 6 }).await.expect("enqueue");
    let stored = plain.get(sealed_new.id()).await.expect("record");
    assert_eq!(encryption::sealed_key_id(&stored.payload), Some("k2"));
    assert_eq!(
        encryption::sealed_key_id(&plain.get(unsealed.id()).await.expect("record").payload),
        None
    );

    let worker = h.start_worker(&queue, worker_config());
    for (handle, want) in [(&sealed_old, 3), (&unsealed, 7), (&sealed_new, 11)] {
        let got = wait(&queue.handle::<i64>(handle.id()))
            .await
            .expect("result");
        assert_eq!(got, want, "task {}", handle.id());
    }
    let result = plain.get(sealed_old.id()).await.expect("record").result;
    assert_eq!(
        result.as_deref().and_then(encryption::sealed_key_id),
        Some("k2"),
        "a result is sealed with the worker's active key"
    );
    worker.shutdown().await;
}

/// A task sealed with a key the worker lacks fails for good naming that
/// key, is kept, and runs once retried by a worker that has the key.
pub async fn missing_key_fails_the_task_until_retried_with_the_key(h: &impl Harness) {
    let url = h.fresh_url().await;
    let producer = connect(&url, Some(keyring("k-old", K1))).await;
    let handle = producer
        .enqueue_with(Add { a: 2, b: 2 }, EnqueueOptions::new().max_attempts(3))
        .await
        .expect("enqueue");

    let wrong = connect(&url, Some(keyring("k-new", K2))).await;
    let worker = h.start_worker(&wrong, worker_config());
    match wait(&wrong.handle::<i64>(handle.id())).await {
        Err(Error::TaskFailed {
            kind: FailureKind::Decode,
            attempts: 1,
            message,
            ..
        }) => {
            assert!(
                message.contains("\"k-old\"") && message.contains("no key"),
                "{message}"
            );
        }
        other => panic!("expected a failure naming key k-old, got {other:?}"),
    }
    worker.shutdown().await;
    let keyless = connect(&url, None).await;
    let kept = keyless.get(handle.id()).await.expect("record");
    assert_eq!(kept.status, TaskStatus::Failed);
    assert_eq!(encryption::sealed_key_id(&kept.payload), Some("k-old"));

    // A worker with no keyring at all says the same, naming the key.
    producer.retry(handle.id()).await.expect("retry");
    let worker = h.start_worker(&keyless, worker_config());
    match wait(&keyless.handle::<i64>(handle.id())).await {
        Err(Error::TaskFailed { message, .. }) => {
            assert!(
                message.contains("\"k-old\"") && message.contains("no keyring"),
                "{message}"
            );
        }
        other => panic!("expected a failure naming key k-old, got {other:?}"),
    }
    worker.shutdown().await;

    producer.retry(handle.id()).await.expect("retry");
    let fixed = Keyring::new("k-new", K2)
        .and_then(|k| k.with_old_key("k-old", K1))
        .expect("keyring");
    let fixed = connect(&url, Some(fixed)).await;
    let worker = h.start_worker(&fixed, worker_config());
    assert_eq!(
        wait(&fixed.handle::<i64>(handle.id()))
            .await
            .expect("runs once the key is there"),
        4
    );
    worker.shutdown().await;
}

/// Stored bytes changed, or a ciphertext moved to another task type: the
/// task fails saying it does not verify, and nothing runs on them.
pub async fn tampered_or_moved_ciphertext_fails_the_task(h: &impl Harness) {
    let url = h.fresh_url().await;
    let queue = connect(&url, Some(keyring("k1", K1))).await;
    let plain = connect(&url, None).await;
    // Enqueued only to read its sealed arguments back (no worker yet).
    let original = queue.enqueue(Add { a: 9, b: 9 }).await.expect("enqueue");
    let sealed = plain.get(original.id()).await.expect("record").payload;
    queue.cancel(original.id()).await.expect("cancel");

    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let tampered = plain
        .enqueue_raw(Add::NAME, flipped, EnqueueOptions::new())
        .await
        .expect("enqueue raw");
    let moved = plain
        .enqueue_raw(BlockingAdd::NAME, sealed, EnqueueOptions::new())
        .await
        .expect("enqueue raw");

    let worker = h.start_worker(&queue, worker_config());
    for id in [tampered, moved] {
        match wait(&queue.handle::<i64>(id)).await {
            Err(Error::TaskFailed {
                kind: FailureKind::Decode,
                message,
                ..
            }) => assert!(
                message.contains("does not verify") && message.contains("\"k1\""),
                "task {id}: {message}"
            ),
            other => panic!("task {id}: expected a verification failure, got {other:?}"),
        }
    }
    worker.shutdown().await;
}
