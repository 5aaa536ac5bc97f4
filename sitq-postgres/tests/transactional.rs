//! Enqueueing inside the caller's own transaction: the task exists if and
//! only if the caller's writes commit, and unique keys hold inside it.

mod support;

use std::time::Duration;

use sitq_core::testing::{Add, worker_config};
use sitq_core::{ConnectOptions, EnqueueOptions, Error, Queue, TaskStatus};
use sitq_postgres::{enqueue_in, enqueue_in_with};
use sqlx::postgres::PgPool;
use support::{PATIENCE, TestDb};

async fn setup(db: &TestDb) -> (Queue, PgPool) {
    let queue = Queue::connect_with(&db.url, ConnectOptions::new())
        .await
        .expect("connect the queue");
    let pool = PgPool::connect(&db.url).await.expect("connect a pool");
    sqlx::query("CREATE TABLE orders (id BIGINT PRIMARY KEY)")
        .execute(&pool)
        .await
        .expect("create the user's table");
    (queue, pool)
}

async fn orders(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM orders ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("read orders")
}

#[tokio::test]
async fn a_committed_transaction_stores_the_task_with_the_rows() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (queue, pool) = setup(&db).await;
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO orders (id) VALUES (1)")
        .execute(&mut *tx)
        .await
        .expect("insert");
    let handle = enqueue_in(&mut tx, &queue, Add { a: 2, b: 3 })
        .await
        .expect("enqueue in the transaction");
    assert!(!handle.is_duplicate());
    // Not visible before the commit.
    assert!(matches!(
        queue.status(handle.id()).await,
        Err(Error::NotFound(_))
    ));
    tx.commit().await.expect("commit");

    assert_eq!(orders(&pool).await, [1]);
    let worker = sitq_worker::testing::start(&queue, worker_config());
    assert_eq!(handle.wait_timeout(PATIENCE).await.expect("result"), 5);
    worker.shutdown().await;
    db.drop().await;
}

#[tokio::test]
async fn a_rolled_back_transaction_stores_neither() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (queue, pool) = setup(&db).await;
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO orders (id) VALUES (1)")
        .execute(&mut *tx)
        .await
        .expect("insert");
    let handle = enqueue_in(&mut tx, &queue, Add { a: 2, b: 3 })
        .await
        .expect("enqueue in the transaction");
    tx.rollback().await.expect("rollback");

    assert_eq!(orders(&pool).await, Vec::<i64>::new());
    assert!(matches!(
        handle.wait_timeout(PATIENCE).await,
        Err(Error::NotFound(id)) if id == handle.id()
    ));
    db.drop().await;
}

#[tokio::test]
async fn an_error_in_the_transaction_rolls_back_the_task_too() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (queue, pool) = setup(&db).await;
    sqlx::query("INSERT INTO orders (id) VALUES (7)")
        .execute(&pool)
        .await
        .expect("insert");
    let mut tx = pool.begin().await.expect("begin");
    let handle = enqueue_in(&mut tx, &queue, Add { a: 1, b: 1 })
        .await
        .expect("enqueue in the transaction");
    let duplicate_order = sqlx::query("INSERT INTO orders (id) VALUES (7)")
        .execute(&mut *tx)
        .await;
    assert!(duplicate_order.is_err(), "the user's statement fails");
    // The aborted transaction refuses more work, including an enqueue.
    let refused = enqueue_in(&mut tx, &queue, Add { a: 1, b: 2 }).await;
    assert!(
        matches!(refused, Err(Error::Database { .. })),
        "{refused:?}"
    );
    drop(tx); // rolls back

    assert_eq!(orders(&pool).await, [7]);
    assert!(matches!(
        queue.status(handle.id()).await,
        Err(Error::NotFound(_))
    ));
    db.drop().await;
}

#[tokio::test]
async fn unique_keys_hold_inside_a_transaction() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let (queue, pool) = setup(&db).await;
    let key = |k: &str| EnqueueOptions::new().unique_key(k);

    // Twice in one transaction: the second is a duplicate of the first.
    let mut tx = pool.begin().await.expect("begin");
    let first = enqueue_in_with(&mut tx, &queue, Add { a: 1, b: 1 }, key("k"))
        .await
        .expect("enqueue");
    let second = enqueue_in_with(&mut tx, &queue, Add { a: 2, b: 2 }, key("k"))
        .await
        .expect("enqueue");
    assert!(!first.is_duplicate());
    assert!(second.is_duplicate());
    assert_eq!(second.id(), first.id());
    tx.commit().await.expect("commit");
    let outside = queue
        .enqueue_with(Add { a: 3, b: 3 }, key("k"))
        .await
        .expect("enqueue");
    assert!(outside.is_duplicate(), "the committed task holds the key");
    assert_eq!(outside.id(), first.id());

    // A rolled-back transaction's task holds nothing.
    let mut tx = pool.begin().await.expect("begin");
    enqueue_in_with(&mut tx, &queue, Add { a: 1, b: 1 }, key("r"))
        .await
        .expect("enqueue");
    tx.rollback().await.expect("rollback");
    let after = queue
        .enqueue_with(Add { a: 1, b: 1 }, key("r"))
        .await
        .expect("enqueue");
    assert!(!after.is_duplicate(), "the key was free again");

    // A producer racing an open transaction for its key waits for the
    // commit, then gets the transaction's task.
    let mut tx = pool.begin().await.expect("begin");
    let held = enqueue_in_with(&mut tx, &queue, Add { a: 1, b: 1 }, key("c"))
        .await
        .expect("enqueue");
    let racer = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.enqueue_with(Add { a: 9, b: 9 }, key("c")).await })
    };
    // The racer cannot finish while the transaction is open (it waits on
    // the key's index entry); give it time to get there, then commit.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!racer.is_finished(), "the racer waits for the transaction");
    tx.commit().await.expect("commit");
    let raced = tokio::time::timeout(PATIENCE, racer)
        .await
        .expect("the racer finishes after the commit")
        .expect("join")
        .expect("enqueue");
    assert!(raced.is_duplicate());
    assert_eq!(raced.id(), held.id());
    assert_eq!(
        queue.status(held.id()).await.expect("status"),
        TaskStatus::Pending
    );
    db.drop().await;
}
