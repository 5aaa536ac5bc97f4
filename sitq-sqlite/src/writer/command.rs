//! What callers send the writer thread, and how answers go back.

use std::sync::Arc;
use std::time::Duration;

use sitq_core::schedule::{ScheduleDefinition, TickFire};
use sitq_core::{
    CancelOutcome, CancelRequest, ClaimRef, ClaimedTask, Completion, Enqueued, Error,
    NewAuditEntry, NewTask, NewWorkflow, Result, ScheduleInfo, StoredWorkflow, TaskId, WorkerBeat,
    WorkerControl,
};
use tokio::sync::oneshot;

use crate::ops::read::{Found, Read};
use crate::ops::write::Claim;

/// Where a command's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// One request to the writer. Each becomes part of the next group commit.
#[derive(Debug)]
pub(crate) enum Command {
    /// `Backend::enqueue`.
    Enqueue {
        tasks: Vec<NewTask>,
        reply: Reply<Vec<TaskId>>,
    },
    /// `Backend::claim`.
    Claim {
        claim: Claim,
        reply: Reply<Vec<ClaimedTask>>,
    },
    /// `Backend::start`.
    Start {
        claims: Vec<ClaimRef>,
        reply: Reply<()>,
    },
    /// `Backend::release`.
    Release {
        claims: Vec<ClaimRef>,
        reply: Reply<u64>,
    },
    /// `Backend::heartbeat`.
    Heartbeat {
        worker_id: String,
        claims: Vec<ClaimRef>,
        lease: Duration,
        reply: Reply<Vec<ClaimRef>>,
    },
    /// `Backend::complete`.
    Complete {
        completions: Vec<Completion>,
        reply: Reply<Vec<bool>>,
    },
    /// `Backend::recover_expired`.
    Recover { reply: Reply<u64> },
    /// `Backend::cancel`.
    Cancel {
        id: TaskId,
        request: CancelRequest,
        reply: Reply<CancelOutcome>,
    },
    /// `Backend::retry`.
    Retry { id: TaskId, reply: Reply<()> },
    /// `Backend::purge` (and so `prune`), with `before` in stored form and
    /// the statuses a JSON array of finished states.
    Purge {
        before: i64,
        statuses: String,
        reply: Reply<u64>,
    },
    /// `Backend::worker_beat`.
    WorkerBeat {
        beat: Box<WorkerBeat>,
        reply: Reply<WorkerControl>,
    },
    /// `Backend::remove_worker`.
    RemoveWorker { id: String, reply: Reply<()> },
    /// `Backend::drain_worker`.
    DrainWorker { id: String, reply: Reply<bool> },
    /// `Backend::delete`.
    Delete { id: TaskId, reply: Reply<()> },
    /// `Backend::record_audit`.
    RecordAudit {
        entry: Box<NewAuditEntry>,
        reply: Reply<()>,
    },
    /// `Backend::set_queue_paused`.
    SetPaused {
        queue: String,
        paused: bool,
        reply: Reply<()>,
    },
    /// `Backend::set_queue_limits`.
    SetLimits {
        queue: String,
        limits: sitq_core::QueueLimits,
        reply: Reply<()>,
    },
    /// A read, for an in-memory database (which only the writer's connection sees).
    Read { read: Read, reply: Reply<Found> },
    /// The database files changed: another process may have written.
    External,
    /// Finish the commands already received, close the connection, then answer.
    Close { reply: oneshot::Sender<()> },
    /// A user's closure in the group's transaction (`sitq_sqlite::transaction`).
    Transaction {
        job: Box<dyn crate::transaction::Job>,
    },
    /// `Backend::enqueue` or `enqueue_unique` of tasks of which some have
    /// dependencies.
    EnqueueDeps {
        tasks: Vec<NewTask>,
        reply: Reply<Vec<Enqueued>>,
    },
    /// `Backend::enqueue_workflow`.
    EnqueueWorkflow {
        workflow: Box<NewWorkflow>,
        reply: Reply<StoredWorkflow>,
    },
    /// `Backend::enqueue_unique` (and `enqueue` of tasks with unique keys).
    EnqueueUnique {
        tasks: Vec<NewTask>,
        reply: Reply<Vec<Enqueued>>,
    },
    /// `Backend::register_schedules`.
    RegisterSchedules {
        schedules: Vec<ScheduleDefinition>,
        reply: Reply<Vec<ScheduleInfo>>,
    },
    /// `Backend::fire_tick`.
    FireTick {
        fire: Box<TickFire>,
        reply: Reply<Option<TaskId>>,
    },
}

/// A result held until its group commits, then sent (or replaced by the
/// commit's failure: nothing of the group was stored).
pub(crate) type Answer = Box<dyn FnOnce(Option<&Arc<rusqlite::Error>>) + Send>;

/// The answer that sends `result` to `reply` after the commit.
pub(crate) fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> Answer {
    Box::new(move |failed_commit| {
        let result = match failed_commit {
            Some(err) => Err(Error::database("committing a group of writes", err.clone())),
            None => result,
        };
        // The caller may have stopped waiting (its future was dropped); the
        // write stands either way, as it would for a lost network reply.
        let _ = reply.send(result);
    })
}

/// The error a caller gets when the writer thread is gone.
pub(crate) fn writer_gone(op: &'static str) -> Error {
    Error::database(
        op,
        "the SQLite writer thread has stopped (the backend was closed or dropped)",
    )
}
