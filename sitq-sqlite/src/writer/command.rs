//! What callers send the writer task, and how answers go back.

use std::sync::Arc;
use std::time::Duration;

use sitq_core::{ClaimRef, ClaimedTask, Completion, Error, NewTask, Result, TaskId};
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
    Cancel { id: TaskId, reply: Reply<bool> },
    /// `Backend::prune`, with `before` in stored form.
    Prune { before: i64, reply: Reply<u64> },
    /// A read, for an in-memory database (which only the writer's connection sees).
    Read { read: Read, reply: Reply<Found> },
    /// Finish the commands already received, close the connection, then answer.
    Close { reply: oneshot::Sender<()> },
}

/// A command's result, held until its group commits.
#[derive(Debug)]
pub(crate) struct Answer<T> {
    reply: Reply<T>,
    result: Result<T>,
}

impl<T> Answer<T> {
    /// `result`, to send to `reply` after the commit.
    pub(crate) fn new(reply: Reply<T>, result: Result<T>) -> Self {
        Answer { reply, result }
    }

    /// Sends the result, or the commit's failure: nothing of the group was stored.
    fn send(self, failed_commit: Option<&Arc<sqlx::Error>>) {
        let result = match failed_commit {
            Some(err) => Err(Error::database("committing a group of writes", err.clone())),
            None => self.result,
        };
        // The caller may have stopped waiting (its future was dropped); the
        // write stands either way, as it would for a lost network reply.
        let _ = self.reply.send(result);
    }
}

/// Any [`Answer`], so one list holds the whole group's.
#[derive(Debug)]
pub(crate) enum Done {
    Ids(Answer<Vec<TaskId>>),
    Claimed(Answer<Vec<ClaimedTask>>),
    Lost(Answer<Vec<ClaimRef>>),
    Applied(Answer<Vec<bool>>),
    Count(Answer<u64>),
    Flag(Answer<bool>),
    Found(Answer<Found>),
}

impl Done {
    /// Sends the answer; see [`Answer::send`].
    pub(crate) fn send(self, failed_commit: Option<&Arc<sqlx::Error>>) {
        match self {
            Done::Ids(answer) => answer.send(failed_commit),
            Done::Claimed(answer) => answer.send(failed_commit),
            Done::Lost(answer) => answer.send(failed_commit),
            Done::Applied(answer) => answer.send(failed_commit),
            Done::Count(answer) => answer.send(failed_commit),
            Done::Flag(answer) => answer.send(failed_commit),
            Done::Found(answer) => answer.send(failed_commit),
        }
    }
}

/// The error a caller gets when the writer task is gone.
pub(crate) fn writer_gone(op: &'static str) -> Error {
    Error::database(
        op,
        "the SQLite writer task has stopped (the backend was closed, or the tokio runtime \
         it was connected on shut down)",
    )
}
