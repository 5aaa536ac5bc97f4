//! Least privilege: the producer, worker and admin roles of
//! `sitq_postgres::Roles`, set up in a fresh database with login roles that
//! are members of them. The producer enqueues and reads results and is
//! refused everything else; the worker runs tasks with a real `Worker` and
//! is refused the admin's operations; the admin does everything, migrations
//! included. Every refusal is `Error::PermissionDenied` naming the call and
//! the table.
//!
//! Role names are per test (roles are global to the server, tests share it).

mod support;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sitq_core::{
    Backend, ClaimRef, ClaimRequest, Completion, ConnectOptions, EnqueueOptions, Error,
    NewAuditEntry, Outcome, Queue, QueueLimits, Registry, Task, TaskDefaults, TaskFuture,
    TaskRegistration, TaskStatus, WorkerBeat, codec,
};
use sitq_postgres::Roles;
use sitq_worker::Worker;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
use support::{PATIENCE, TestDb, chain, within};

/// Doubles a number: a task with a result to read.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Double {
    n: i64,
}

impl Task for Double {
    const NAME: &'static str = "sitq_postgres_tests::roles::double";
    type Output = i64;
}

static DOUBLE: TaskRegistration = TaskRegistration {
    name: Double::NAME,
    file: file!(),
    line: line!(),
    defaults: TaskDefaults::DEFAULT,
    run: run_double,
};

fn run_double(
    payload: &[u8],
    _: Option<&sitq_core::TaskInputs>,
    _: sitq_core::Context,
) -> sitq_core::Result<TaskFuture> {
    let task: Double = codec::decode(payload, "arguments of double")?;
    Ok(Box::pin(async move {
        codec::encode(&(task.n * 2), "result").map_err(|error| error.to_string())
    }))
}

/// The names a claim of [`Double`] takes.
fn names() -> Vec<String> {
    vec![Double::NAME.to_owned()]
}

/// A test database with this test's roles and a login role in each.
struct RoleDb {
    db: TestDb,
    roles: Roles,
    /// The group roles and the login roles, dropped at the end.
    created: Vec<String>,
    producer_url: String,
    worker_url: String,
    admin_url: String,
}

impl RoleDb {
    /// A fresh database; `None` when no server is configured.
    async fn create() -> Option<RoleDb> {
        let db = TestDb::create().await?;
        let name = database_name(&db.url);
        let group = |role: &str| format!("{name}_{role}");
        let roles = Roles::new()
            .producer(group("producer"))
            .worker(group("worker"))
            .admin(group("admin"));
        let login = |role: &str| format!("{name}_{role}_login");
        let password = "sitq-test-password";
        let url = |role: &str| with_user(&db.url, &login(role), password);
        let created = ["producer", "worker", "admin"]
            .iter()
            .flat_map(|role| [login(role), group(role)])
            .collect();
        let role_db = RoleDb {
            producer_url: url("producer"),
            worker_url: url("worker"),
            admin_url: url("admin"),
            db,
            roles,
            created,
        };
        Some(role_db)
    }

    /// Runs the roles script as the superuser; its notices, if any, are
    /// the server's business.
    async fn run_script(&self) {
        let sql = self.roles.sql().expect("valid role names");
        let mut superuser = self.db.connection().await;
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut superuser)
            .await
            .expect("the roles script runs");
        superuser.close().await.ok();
    }

    /// Creates a login role in each group; the admin's sessions act as the
    /// admin group (`SET role`), so the tables it creates belong to it.
    async fn create_logins(&self) {
        let name = database_name(&self.db.url);
        let mut superuser = self.db.connection().await;
        for role in ["producer", "worker", "admin"] {
            superuser
                .execute(AssertSqlSafe(format!(
                    "CREATE ROLE {name}_{role}_login LOGIN PASSWORD 'sitq-test-password' \
                     IN ROLE {name}_{role}"
                )))
                .await
                .expect("create a login role");
        }
        superuser
            .execute(AssertSqlSafe(format!(
                "ALTER ROLE {name}_admin_login SET role = '{name}_admin'"
            )))
            .await
            .expect("make the admin's sessions act as the admin group");
        superuser.close().await.ok();
    }

    /// The usual set-up: the superuser creates sitq's tables, then runs the
    /// script; then the login roles are created.
    async fn set_up() -> Option<RoleDb> {
        let db = RoleDb::create().await?;
        db.db.backend().await.close().await;
        db.run_script().await;
        db.create_logins().await;
        Some(db)
    }

    /// Drops the database, then the roles.
    async fn drop(self) {
        let admin_url = std::env::var("SITQ_TEST_POSTGRES_URL").expect("set when a db exists");
        self.db.drop().await;
        let mut superuser = PgConnection::connect(&admin_url)
            .await
            .expect("connect as the superuser");
        for role in &self.created {
            superuser
                .execute(AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
                .await
                .expect("drop a role");
        }
        superuser.close().await.ok();
    }
}

/// The database name at the end of `url`.
fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

/// `url` with `user` and `password` instead of its own user.
fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}")
}

/// Connects a queue as `url`'s role.
async fn connect(url: &str) -> Queue {
    Queue::connect_with(url, ConnectOptions::new())
        .await
        .unwrap_or_else(|error| panic!("connect: {}", chain(&error)))
}

/// `result` must be a refusal of `op` on `table`.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: sitq_core::Result<T>, op: &str, table: &str) {
    let error = result.expect_err("refused");
    let text = error.to_string();
    assert!(
        matches!(&error, Error::PermissionDenied { op: got, .. } if *got == op),
        "expected a refusal of {op:?}: {text}"
    );
    assert!(
        text.contains(&format!("permission denied for table {table}")),
        "names the table {table}: {text}"
    );
    assert!(
        text.contains("sitq postgres roles"),
        "says where to look: {text}"
    );
}

/// A claim request for [`Double`] tasks.
fn request<'a>(worker_id: &'a str, names: &'a [String]) -> ClaimRequest<'a> {
    ClaimRequest {
        worker_id,
        queues: &[],
        names,
        limit: 1,
        start: 1,
        lease: Duration::from_secs(60),
    }
}

/// A worker running [`Double`] on `queue` until stopped.
fn start_worker(queue: &Queue) -> (sitq_worker::ShutdownHandle, tokio::task::JoinHandle<()>) {
    let worker = Worker::new(queue.clone())
        .registry(Registry::from_registrations([&DOUBLE]).expect("one task"))
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    let task = tokio::spawn(async move {
        worker.run().await.expect("the worker runs");
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_creates_the_schema_and_the_others_connect_once_granted() {
    let Some(db) = RoleDb::create().await else {
        return;
    };
    // Before sitq's tables exist, the script creates the roles only.
    db.run_script().await;
    db.create_logins().await;

    // A producer cannot create the schema: a clear refusal, not a panic.
    let error = Queue::connect(&db.producer_url)
        .await
        .expect_err("the producer may not migrate");
    let text = chain(&error);
    assert!(matches!(error, Error::PermissionDenied { .. }), "{text}");
    assert!(
        text.contains("permission denied for schema public"),
        "{text}"
    );
    assert!(
        text.contains("at version 0") && text.contains("may not create"),
        "{text}"
    );

    // The admin creates it; its tables belong to the admin group.
    connect(&db.admin_url).await.close().await;
    let mut superuser = db.db.connection().await;
    let owner: String =
        sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'sitq_tasks'")
            .fetch_one(&mut superuser)
            .await
            .expect("the tasks table exists");
    let name = database_name(&db.db.url);
    assert_eq!(owner, format!("{name}_admin"));

    // Granted by the script's second run, producer and worker connect to
    // the current schema without privileges on it, and work.
    db.run_script().await;
    let producer = connect(&db.producer_url).await;
    let worker_queue = connect(&db.worker_url).await;
    let (stop, worker) = start_worker(&worker_queue);
    let handle = producer.enqueue(Double { n: 21 }).await.expect("enqueue");
    assert_eq!(within("the result", handle.wait()).await.expect("ran"), 42);
    within("the worker stopping", stop.shutdown()).await;
    worker.await.expect("the worker task");

    // Every table and sequence of sitq belongs to the admin group, and the
    // script names every table.
    let sql = db.roles.sql().expect("valid names");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'sitq\\_%' ORDER BY 1",
    )
    .fetch_all(&mut superuser)
    .await
    .expect("list the tables");
    assert!(tables.len() >= 11, "{tables:?}");
    for table in &tables {
        assert!(
            sql.contains(&format!("ALTER TABLE \"public\".{table} OWNER")),
            "the script leaves out {table}"
        );
    }
    let foreign: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class AS c
         WHERE c.relname LIKE 'sitq\\_%' AND c.relkind IN ('r', 'S')
           AND pg_get_userbyid(c.relowner) <> $1",
    )
    .bind(format!("{name}_admin"))
    .fetch_all(&mut superuser)
    .await
    .expect("list the owners");
    assert_eq!(foreign, Vec::<String>::new(), "owned by someone else");
    superuser.close().await.ok();

    producer.close().await;
    worker_queue.close().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_enqueues_and_reads_results_and_nothing_else() {
    let Some(db) = RoleDb::set_up().await else {
        return;
    };
    let producer = connect(&db.producer_url).await;
    let worker_queue = connect(&db.worker_url).await;
    let admin = connect(&db.admin_url).await;

    // Enqueue in every form, and read the results a worker stores.
    let plain = producer.enqueue(Double { n: 1 }).await.expect("enqueue");
    let unique = producer
        .enqueue_with(Double { n: 2 }, EnqueueOptions::new().unique_key("two"))
        .await
        .expect("enqueue a unique task");
    let dependent = producer
        .enqueue_with(Double { n: 3 }, EnqueueOptions::new().after(&plain))
        .await
        .expect("enqueue a task with a dependency");
    let (stop, worker) = start_worker(&worker_queue);
    for (handle, expected) in [(&plain, 2), (&unique, 4), (&dependent, 6)] {
        let result = within("a result", handle.wait()).await.expect("it ran");
        assert_eq!(result, expected);
    }
    let record = producer.get(plain.id()).await.expect("read the task");
    assert_eq!(record.status, TaskStatus::Succeeded);
    assert_eq!(
        producer.status(dependent.id()).await.expect("status"),
        TaskStatus::Succeeded
    );
    producer.failures(plain.id()).await.expect("read failures");
    producer.stats().await.expect("read statistics");
    within("the worker stopping", stop.shutdown()).await;
    worker.await.expect("the worker task");

    // A task claimed by the admin, for the calls that take a claim.
    let pending = producer.enqueue(Double { n: 4 }).await.expect("enqueue");
    let names = names();
    let claimed = admin
        .backend()
        .claim(request("admin-claim", &names))
        .await
        .expect("the admin claims");
    let claim: ClaimRef = claimed.first().expect("one task").claim_ref();
    let backend = producer.backend();

    refused(
        backend.claim(request("producer", &names)).await,
        "claiming tasks",
        "sitq_tasks",
    );
    refused(
        backend
            .heartbeat("admin-claim", &[claim], Duration::from_secs(60))
            .await,
        "extending task leases",
        "sitq_tasks",
    );
    refused(
        backend.start(vec![claim]).await,
        "marking reserved tasks started",
        "sitq_tasks",
    );
    refused(
        backend.release(vec![claim]).await,
        "giving reserved tasks back",
        "sitq_tasks",
    );
    refused(
        backend
            .complete(vec![Completion {
                claim,
                outcome: Outcome::Succeeded(codec::encode(&0_i64, "result").expect("encode")),
            }])
            .await,
        "completing tasks",
        "sitq_tasks",
    );
    refused(
        backend.recover_expired().await,
        "recovering expired leases",
        "sitq_tasks",
    );
    refused(
        producer.cancel(pending.id()).await,
        "cancelling a task",
        "sitq_tasks",
    );
    refused(
        producer.retry(plain.id()).await,
        "retrying a task",
        "sitq_tasks",
    );
    refused(
        backend.delete(plain.id()).await,
        "deleting a task",
        "sitq_tasks",
    );
    refused(
        backend.purge(chrono::Utc::now(), &[]).await,
        "deleting finished tasks",
        "sitq_tasks",
    );
    // Admin actions are refused before they start: the producer may not
    // write the audit log.
    let audited = producer.audited("producer");
    refused(
        audited.delete(plain.id()).await,
        "recording an admin action",
        "sitq_audit",
    );
    refused(
        audited
            .enqueue_json(
                "double",
                &serde_json::json!({"n": 1}),
                EnqueueOptions::new(),
            )
            .await,
        "recording an admin action",
        "sitq_audit",
    );
    refused(
        producer.pause("default").await,
        "pausing or resuming a queue",
        "sitq_queues",
    );
    refused(
        producer
            .set_queue_limits("default", QueueLimits::new().concurrency(1))
            .await,
        "setting a queue's limits",
        "sitq_queues",
    );
    refused(producer.workers().await, "listing workers", "sitq_workers");
    refused(
        backend.worker_beat(&beat("producer")).await,
        "recording a worker's beat",
        "sitq_workers",
    );
    refused(
        producer.drain_worker("anyone").await,
        "asking a worker to drain",
        "sitq_workers",
    );
    refused(
        producer.schedules().await,
        "listing schedules",
        "sitq_schedules",
    );
    refused(
        producer.audit_log(10, None).await,
        "reading the audit log",
        "sitq_audit",
    );
    refused(
        backend.record_audit(&entry("producer")).await,
        "recording an admin action",
        "sitq_audit",
    );

    // Nothing the refusals touched changed: the admin's claim still holds.
    let record = admin.get(pending.id()).await.expect("read");
    assert_eq!(record.status, TaskStatus::Running);
    assert_eq!(record.worker_id.as_deref(), Some("admin-claim"));
    assert_eq!(
        producer.status(plain.id()).await.expect("status"),
        TaskStatus::Succeeded
    );

    producer.close().await;
    worker_queue.close().await;
    admin.close().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_tasks_but_not_the_admins_operations() {
    let Some(db) = RoleDb::set_up().await else {
        return;
    };
    let worker_queue = connect(&db.worker_url).await;
    let (stop, worker) = start_worker(&worker_queue);
    // The worker's own role enqueues too (follow-up tasks).
    let handle = worker_queue
        .enqueue(Double { n: 5 })
        .await
        .expect("enqueue");
    assert_eq!(within("the result", handle.wait()).await.expect("ran"), 10);
    let worker_id = within("the worker registering", async {
        loop {
            if let Some(info) = worker_queue
                .workers()
                .await
                .expect("list workers")
                .into_iter()
                .next()
            {
                return info.id;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Pruning past retention is the worker's.
    worker_queue
        .backend()
        .prune(chrono::Utc::now() - chrono::Duration::days(1))
        .await
        .expect("prune");

    refused(
        worker_queue.pause("default").await,
        "pausing or resuming a queue",
        "sitq_queues",
    );
    refused(
        worker_queue
            .set_queue_limits("default", QueueLimits::new().concurrency(1))
            .await,
        "setting a queue's limits",
        "sitq_queues",
    );
    refused(
        worker_queue.drain_worker(&worker_id).await,
        "asking a worker to drain",
        "sitq_workers",
    );
    refused(
        worker_queue.audit_log(10, None).await,
        "reading the audit log",
        "sitq_audit",
    );
    refused(
        worker_queue.backend().record_audit(&entry("worker")).await,
        "recording an admin action",
        "sitq_audit",
    );
    // The worker's role may delete finished tasks (it prunes them), but an
    // admin purge or delete through it would go unrecorded: refused before
    // anything is deleted.
    let audited = worker_queue.audited("ops");
    refused(
        audited.purge(Duration::ZERO, &[]).await,
        "recording an admin action",
        "sitq_audit",
    );
    refused(
        audited.delete(handle.id()).await,
        "recording an admin action",
        "sitq_audit",
    );
    assert_eq!(
        worker_queue.status(handle.id()).await.expect("status"),
        TaskStatus::Succeeded,
        "the finished task is still there"
    );
    assert!(
        worker_queue
            .queues()
            .await
            .expect("list queues")
            .iter()
            .all(|queue| !queue.paused),
        "no queue was paused"
    );

    within("the worker stopping", stop.shutdown()).await;
    worker.await.expect("the worker task");
    worker_queue.close().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_does_everything() {
    let Some(db) = RoleDb::set_up().await else {
        return;
    };
    let admin = connect(&db.admin_url).await;
    let worker_queue = connect(&db.worker_url).await;
    let audited = admin.audited("ops");

    audited.pause("mail").await.expect("pause");
    audited.resume("mail").await.expect("resume");
    admin
        .set_queue_limits("mail", QueueLimits::new().concurrency(2))
        .await
        .expect("limit a queue");

    // Claims in a limited queue (a worker's lock on the settings row).
    let limited = admin
        .enqueue_with(Double { n: 6 }, EnqueueOptions::new().queue("mail"))
        .await
        .expect("enqueue");
    let (stop, worker) = start_worker(&worker_queue);
    assert_eq!(within("the result", limited.wait()).await.expect("ran"), 12);

    // Claim and complete by hand, cancel, retry, delete, purge.
    within("the worker stopping", stop.shutdown()).await;
    worker.await.expect("the worker task");
    let handle = admin.enqueue(Double { n: 7 }).await.expect("enqueue");
    let names = names();
    let claimed = admin
        .backend()
        .claim(request("admin-claim", &names))
        .await
        .expect("claim");
    let claim = claimed.first().expect("one task").claim_ref();
    admin
        .backend()
        .heartbeat("admin-claim", &[claim], Duration::from_secs(60))
        .await
        .expect("heartbeat");
    let applied = admin
        .backend()
        .complete(vec![Completion {
            claim,
            outcome: Outcome::Succeeded(codec::encode(&14_i64, "result").expect("encode")),
        }])
        .await
        .expect("complete");
    assert_eq!(applied, [true]);
    assert_eq!(handle.wait().await.expect("result"), 14);
    let cancelled = admin.enqueue(Double { n: 8 }).await.expect("enqueue");
    audited.cancel(cancelled.id(), None).await.expect("cancel");
    audited.retry(cancelled.id()).await.expect("retry");
    audited
        .cancel(cancelled.id(), None)
        .await
        .expect("cancel again");
    audited.delete(cancelled.id()).await.expect("delete");
    let purged = audited
        .purge(Duration::ZERO, &[TaskStatus::Succeeded])
        .await
        .expect("purge");
    assert!(purged >= 2, "purged {purged}");
    admin
        .backend()
        .worker_beat(&beat("admin-worker"))
        .await
        .expect("beat");
    audited.drain_worker("admin-worker").await.expect("drain");
    let log = admin.audit_log(50, None).await.expect("read the audit log");
    assert!(log.len() >= 7, "{log:?}");
    admin.diagnose().await.expect("diagnose");

    admin.close().await;
    worker_queue.close().await;
    db.drop().await;
}

/// A worker beat for `id`.
fn beat(id: &str) -> WorkerBeat {
    WorkerBeat {
        id: id.to_owned(),
        host: "test".to_owned(),
        pid: 1,
        version: "test".to_owned(),
        queues: Vec::new(),
        tasks: names(),
        concurrency: 1,
        running: 0,
        ttl: PATIENCE,
    }
}

/// An audit entry by `actor`.
fn entry(actor: &str) -> NewAuditEntry {
    NewAuditEntry {
        actor: actor.to_owned(),
        action: "test".to_owned(),
        target: "nothing".to_owned(),
        detail: None,
    }
}
