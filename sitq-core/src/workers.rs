//! The worker registry: each worker process's row, refreshed by its
//! heartbeat, and the control a row carries back (a drain request).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How often a worker refreshes its row ([`Backend::worker_beat`](crate::Backend::worker_beat)),
/// and so how soon it sees a drain request on a backend without
/// notifications.
pub const WORKER_BEAT: Duration = Duration::from_secs(1);

/// How long a worker's row stays live without a beat. A worker killed
/// without a clean stop is listed until then; a clean stop removes its row.
pub const WORKER_TTL: Duration = Duration::from_secs(15);

/// What a worker process tells the database about itself at every beat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerBeat {
    /// The worker's id (stored with every attempt it runs).
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The sitq version it was built with.
    pub version: String,
    /// The queues it takes from; empty for every queue.
    pub queues: Vec<String>,
    /// The task names it runs, sorted.
    pub tasks: Vec<String>,
    /// How many tasks it runs at once now (it may scale between bounds).
    pub concurrency: u32,
    /// How many tasks it runs now.
    pub running: u32,
    /// How long its row stays live without another beat.
    pub ttl: Duration,
}

/// A live worker, as [`Backend::workers`](crate::Backend::workers) lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The sitq version it was built with.
    pub version: String,
    /// The queues it takes from; empty for every queue.
    pub queues: Vec<String>,
    /// The task names it runs, sorted.
    pub tasks: Vec<String>,
    /// How many tasks it runs at once now.
    pub concurrency: u32,
    /// How many tasks it ran at its last beat.
    pub running: u32,
    /// Its first beat (the database's clock).
    pub started_at: DateTime<Utc>,
    /// Its last beat (the database's clock).
    pub last_seen: DateTime<Utc>,
    /// When its row expires unless it beats again.
    pub expires_at: DateTime<Utc>,
    /// Whether it was asked to drain (stop claiming and exit once its
    /// running tasks finish).
    pub draining: bool,
}

impl WorkerInfo {
    /// Whether this worker claims tasks named `name` from `queue`.
    pub fn runs(&self, queue: &str, name: &str) -> bool {
        (self.queues.is_empty() || self.queues.iter().any(|q| q == queue))
            && self.tasks.iter().any(|t| t == name)
    }
}

/// What a beat answers: what the worker is asked to do.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerControl {
    /// Stop claiming and exit once the running tasks finish.
    pub drain: bool,
}
