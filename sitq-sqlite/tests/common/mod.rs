//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sitq_core::{Backend, ClaimRequest, ClaimedTask, ConnectOptions, NewTask};
use sitq_sqlite::SqliteBackend;

/// A database file in the temp dir, removed (with its WAL files) on drop.
pub struct TempDb {
    pub path: PathBuf,
}

impl TempDb {
    pub fn new(label: &str) -> TempDb {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "sitq-sqlite-{label}-{}-{n}-{nanos}.db",
            std::process::id()
        ));
        TempDb { path }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    pub async fn connect(&self) -> SqliteBackend {
        SqliteBackend::connect(&self.url(), ConnectOptions::new())
            .await
            .expect("connecting to a temp file database")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-sitq"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

pub async fn memory() -> SqliteBackend {
    SqliteBackend::connect("sqlite::memory:", ConnectOptions::new())
        .await
        .expect("connecting to an in-memory database")
}

/// A task on queue "default", runnable now.
pub fn task(name: &str) -> NewTask {
    NewTask {
        name: name.to_owned(),
        queue: "default".to_owned(),
        payload: vec![0x90],
        priority: 0,
        run_at: Utc::now(),
        max_attempts: 3,
        unique: None,
        sequence: None,
        deps: Default::default(),
        trace: None,
    }
}

pub fn task_at(name: &str, priority: i32, run_at: DateTime<Utc>) -> NewTask {
    NewTask {
        priority,
        run_at,
        ..task(name)
    }
}

pub const LEASE: Duration = Duration::from_secs(60);

pub async fn claim(backend: &SqliteBackend, worker: &str, limit: usize) -> Vec<ClaimedTask> {
    claim_with_lease(backend, worker, limit, LEASE).await
}

pub async fn claim_with_lease(
    backend: &SqliteBackend,
    worker: &str,
    limit: usize,
    lease: Duration,
) -> Vec<ClaimedTask> {
    backend
        .claim(ClaimRequest {
            worker_id: worker,
            queues: &[],
            names: &names(),
            limit,
            start: limit,
            lease,
        })
        .await
        .expect("claiming")
}

/// Polls `check` until true, failing with `what` after 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(1);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after 30 s waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Every task name these tests enqueue: a claim takes only names it is given.
pub fn names() -> Vec<String> {
    [
        "a",
        "b",
        "c",
        "d",
        "t",
        "m",
        "ok",
        "now",
        "done",
        "held",
        "pending",
        "running",
        "cancelled",
        "high-early",
        "high-late",
        "later",
        "low",
        "low-late",
    ]
    .map(str::to_owned)
    .to_vec()
}
