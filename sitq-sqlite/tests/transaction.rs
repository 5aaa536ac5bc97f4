//! `sitq_sqlite::transaction`: the user's statements and enqueues in sitq's
//! write transaction, all stored or none.

use std::sync::{Arc, Mutex};

use sitq_core::testing::{Add, worker_config};
use sitq_core::{EnqueueOptions, Error, Queue, TaskId};
use sitq_sqlite::rusqlite::params;
use sitq_sqlite::transaction;

const WAIT: std::time::Duration = sitq_core::testing::WAIT;

async fn queue_with_orders() -> Queue {
    let queue = Queue::connect("sqlite::memory:").await.expect("connect");
    transaction(&queue, |tx| {
        tx.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    })
    .await
    .expect("create the user's table");
    queue
}

async fn orders(queue: &Queue) -> Vec<i64> {
    transaction(queue, |tx| -> sitq_core::Result<Vec<i64>> {
        let mut statement = tx.prepare("SELECT id FROM orders ORDER BY id")?;
        let ids = statement
            .query_map([], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(|err| Error::database("reading orders", err))?;
        Ok(ids)
    })
    .await
    .expect("read orders")
}

async fn exists(queue: &Queue, id: TaskId) -> bool {
    match queue.status(id).await {
        Ok(_) => true,
        Err(Error::NotFound(_)) => false,
        Err(err) => panic!("status of {id}: {err}"),
    }
}

/// What the closure's error may be: the caller's own, or sitq's.
#[derive(Debug)]
enum AppError {
    OutOfStock,
    Sitq(Error),
}

impl From<Error> for AppError {
    fn from(error: Error) -> Self {
        AppError::Sitq(error)
    }
}

#[tokio::test]
async fn ok_commits_the_rows_and_the_task() {
    let queue = queue_with_orders().await;
    let handle = transaction(&queue, |tx| {
        tx.execute("INSERT INTO orders (id) VALUES (?1)", params![1])?;
        tx.enqueue(Add { a: 2, b: 3 })
    })
    .await
    .expect("transaction");
    assert!(!handle.is_duplicate());
    assert_eq!(orders(&queue).await, [1]);
    let worker = sitq_worker::testing::start(&queue, worker_config());
    assert_eq!(handle.wait_timeout(WAIT).await.expect("result"), 5);
    worker.shutdown().await;
}

#[tokio::test]
async fn err_rolls_back_the_rows_and_the_task() {
    let queue = queue_with_orders().await;
    let enqueued = Arc::new(Mutex::new(None));
    let seen = enqueued.clone();
    let result: Result<(), AppError> = transaction(&queue, move |tx| {
        tx.execute("INSERT INTO orders (id) VALUES (?1)", params![1])?;
        let handle = tx.enqueue(Add { a: 2, b: 3 })?;
        *seen.lock().expect("lock") = Some(handle.id());
        Err(AppError::OutOfStock)
    })
    .await;
    assert!(matches!(result, Err(AppError::OutOfStock)), "{result:?}");
    assert_eq!(orders(&queue).await, Vec::<i64>::new());
    let id = enqueued
        .lock()
        .expect("lock")
        .expect("the closure enqueued");
    assert!(!exists(&queue, id).await, "the task was rolled back");
    // The handle says so too.
    let handle = queue.handle::<i64>(id);
    assert!(matches!(
        handle.wait_timeout(WAIT).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn a_failing_statement_rolls_back_what_came_before() {
    let queue = queue_with_orders().await;
    let enqueued = Arc::new(Mutex::new(None));
    let seen = enqueued.clone();
    let result: Result<(), AppError> = transaction(&queue, move |tx| {
        tx.execute("INSERT INTO orders (id) VALUES (1)", [])?;
        *seen.lock().expect("lock") = Some(tx.enqueue(Add { a: 1, b: 1 })?.id());
        tx.execute("INSERT INTO no_such_table (id) VALUES (1)", [])?;
        Ok(())
    })
    .await;
    assert!(
        matches!(result, Err(AppError::Sitq(Error::Database { .. }))),
        "{result:?}"
    );
    assert_eq!(orders(&queue).await, Vec::<i64>::new());
    let id = enqueued
        .lock()
        .expect("lock")
        .expect("the closure enqueued");
    assert!(!exists(&queue, id).await);
}

#[tokio::test]
async fn the_closure_cannot_end_the_transaction() {
    let queue = queue_with_orders().await;
    let refused = transaction(&queue, |tx| -> sitq_core::Result<Vec<bool>> {
        tx.execute("INSERT INTO orders (id) VALUES (1)", [])?;
        let attempts = [
            tx.execute_batch("COMMIT").is_err(),
            tx.execute("ROLLBACK", []).is_err(),
            tx.execute_batch("RELEASE sitq_transaction").is_err(),
            tx.execute_batch("ROLLBACK TO sitq_transaction").is_err(),
            tx.execute_batch("BEGIN").is_err(),
            // The closure's own savepoints are its business.
            tx.execute_batch("SAVEPOINT mine; RELEASE mine").is_ok(),
        ];
        tx.execute("INSERT INTO orders (id) VALUES (2)", [])?;
        Ok(attempts.to_vec())
    })
    .await
    .expect("transaction");
    assert!(refused.iter().all(|&ok| ok), "{refused:?}");
    assert_eq!(orders(&queue).await, [1, 2]);
}

#[tokio::test]
async fn a_panic_rolls_back_and_reaches_the_caller() {
    let queue = queue_with_orders().await;
    let panicking = queue.clone();
    let joined = tokio::spawn(async move {
        transaction(&panicking, |tx| -> sitq_core::Result<()> {
            tx.execute("INSERT INTO orders (id) VALUES (1)", [])?;
            tx.enqueue(Add { a: 1, b: 1 })?;
            panic!("the closure panicked");
        })
        .await
    })
    .await;
    let panic = joined.expect_err("the caller panics").into_panic();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the closure panicked"));
    assert_eq!(orders(&queue).await, Vec::<i64>::new());
    // The writer lives on.
    let handle = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    assert!(exists(&queue, handle.id()).await);
}

#[tokio::test]
async fn a_failing_closure_leaves_concurrent_commands_alone() {
    let queue = queue_with_orders().await;
    let plain: Vec<_> = (0..50)
        .map(|i| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.enqueue(Add { a: i, b: 0 }).await })
        })
        .collect();
    let failing: Vec<_> = (0..10)
        .map(|i| {
            let queue = queue.clone();
            tokio::spawn(async move {
                transaction(&queue, move |tx| -> Result<(), AppError> {
                    tx.execute("INSERT INTO orders (id) VALUES (?1)", params![i])?;
                    tx.enqueue(Add { a: i, b: 0 })?;
                    Err(AppError::OutOfStock)
                })
                .await
            })
        })
        .collect();
    for task in plain {
        let handle = task.await.expect("join").expect("enqueue");
        assert!(exists(&queue, handle.id()).await);
    }
    for task in failing {
        assert!(matches!(
            task.await.expect("join"),
            Err(AppError::OutOfStock)
        ));
    }
    assert_eq!(orders(&queue).await, Vec::<i64>::new());
}

#[tokio::test]
async fn unique_keys_hold_inside_a_transaction() {
    let queue = queue_with_orders().await;
    let key = |k: &str| EnqueueOptions::new().unique_key(k);
    let (first, second) = transaction(&queue, move |tx| -> sitq_core::Result<_> {
        let first = tx.enqueue_with(Add { a: 1, b: 1 }, key("k"))?;
        let second = tx.enqueue_with(Add { a: 2, b: 2 }, key("k"))?;
        Ok((first, second))
    })
    .await
    .expect("transaction");
    assert!(!first.is_duplicate());
    assert!(second.is_duplicate());
    assert_eq!(second.id(), first.id());
    let outside = queue
        .enqueue_with(Add { a: 3, b: 3 }, key("k"))
        .await
        .expect("enqueue");
    assert!(outside.is_duplicate());
    assert_eq!(outside.id(), first.id());

    // A rolled-back transaction's task holds nothing.
    let result: Result<(), AppError> = transaction(&queue, move |tx| {
        tx.enqueue_with(Add { a: 1, b: 1 }, key("r"))?;
        Err(AppError::OutOfStock)
    })
    .await;
    assert!(result.is_err());
    let after = queue
        .enqueue_with(Add { a: 1, b: 1 }, key("r"))
        .await
        .expect("enqueue");
    assert!(!after.is_duplicate(), "the key was free again");
}

#[tokio::test]
async fn file_databases_commit_for_other_connections_too() {
    let path = std::env::temp_dir().join(format!(
        "sitq-transaction-{}-{}.db",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_nanos())
            .unwrap_or(0)
    ));
    let url = format!("sqlite://{}", path.display());
    let queue = Queue::connect(&url).await.expect("connect");
    let handle = transaction(&queue, |tx| {
        tx.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY)")?;
        tx.execute("INSERT INTO orders (id) VALUES (5)", [])?;
        tx.enqueue(Add { a: 5, b: 5 })
    })
    .await
    .expect("transaction");
    // Another client (another connection pool, as another process would be).
    let other = Queue::connect(&url).await.expect("connect again");
    assert!(exists(&other, handle.id()).await);
    assert_eq!(orders(&other).await, [5]);
    let worker = sitq_worker::testing::start(&other, worker_config());
    assert_eq!(handle.wait_timeout(WAIT).await.expect("result"), 10);
    worker.shutdown().await;
}

#[tokio::test]
async fn dependents_enqueue_inside_a_transaction() {
    let queue = queue_with_orders().await;
    let first = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let dependency = first.clone();
    let missing = queue.handle::<i64>(TaskId(i64::MAX - 1));
    let (then, unknown) = transaction(&queue, move |tx| -> sitq_core::Result<_> {
        tx.execute("INSERT INTO orders (id) VALUES (?1)", params![7])
            .map_err(|err| Error::database("inserting an order", err))?;
        let then = tx.enqueue_with(Add { a: 2, b: 2 }, EnqueueOptions::new().after(&dependency))?;
        let unknown = tx.enqueue_with(Add { a: 3, b: 3 }, EnqueueOptions::new().after(&missing));
        Ok((then, unknown))
    })
    .await
    .expect("transaction");
    assert!(
        matches!(unknown, Err(Error::NotFound(_))),
        "an unknown dependency is refused inside the transaction: {unknown:?}"
    );
    assert_eq!(orders(&queue).await, [7]);
    assert_eq!(
        queue.status(then.id()).await.expect("status"),
        sitq_core::TaskStatus::Blocked
    );
    let worker = sitq_worker::testing::start(&queue, worker_config());
    assert_eq!(then.wait_timeout(WAIT).await.expect("result"), 4);
    worker.shutdown().await;
}
