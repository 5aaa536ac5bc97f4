//! The writer task: every write of this process goes through one connection,
//! in group commits.
//!
//! SQLite has one writer at a time, so a pool of writing connections would
//! only queue on the file lock (and pay a commit, an fsync under
//! `synchronous=FULL`, per caller). Instead callers send [`Command`]s over a
//! channel; the task takes whatever is waiting (up to [`MAX_GROUP`]), runs it
//! all in one `BEGIN IMMEDIATE … COMMIT`, and answers after the commit. Under
//! load the group grows by itself: commands pile up while a commit runs.
//!
//! Within a group, all enqueues become one multi-row `INSERT` and all
//! completions one `UPDATE … FROM (VALUES …)`. If such a merged statement
//! fails, it is rolled back to a savepoint and each command runs again on
//! its own, so one bad command fails alone.

pub(crate) mod command;

use std::sync::Arc;

use sitq_core::{Completion, Error, NewTask, Signals, TaskId};
use sqlx::{Connection as _, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::ops::{COMPLETE_MAX_ROWS, INSERT_MAX_ROWS, exec, statement_count, write};
use crate::time;
use command::{Answer, Command, Done, Reply};

/// The most commands in one group commit; bounds how long callers whose
/// command arrived first wait for the others.
const MAX_GROUP: usize = 512;

/// Commands that may queue before callers wait for room (backpressure).
pub(crate) const CHANNEL: usize = 4096;

/// Finished rows one prune deletes per group commit, so that a large backlog
/// never holds the write lock for long.
const PRUNE_STEP: i64 = 5_000;

/// Starts the writer task on the current tokio runtime.
pub(crate) fn spawn(conn: SqliteConnection, signals: Arc<Signals>) -> mpsc::Sender<Command> {
    let (sender, receiver) = mpsc::channel(CHANNEL);
    tokio::spawn(run(conn, receiver, signals));
    sender
}

/// A prune that has more rows to delete in later groups.
#[derive(Debug)]
struct Pruning {
    before: i64,
    deleted: u64,
    reply: Reply<u64>,
}

async fn run(
    mut conn: SqliteConnection,
    mut receiver: mpsc::Receiver<Command>,
    signals: Arc<Signals>,
) {
    let mut commands = Vec::with_capacity(MAX_GROUP);
    let mut pruning = Vec::new();
    loop {
        if pruning.is_empty() {
            // Waits for one command, then takes whatever else is waiting.
            if receiver.recv_many(&mut commands, MAX_GROUP).await == 0 {
                break; // every sender is gone: the backend was dropped
            }
        } else {
            while commands.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
        }
        let mut group = Group::new(&signals);
        let close = group.run(&mut conn, commands.drain(..), &mut pruning).await;
        if let Some(reply) = close {
            if let Err(err) = conn.close().await {
                tracing::warn!(error = %err, "closing the SQLite writer connection failed");
            }
            let _ = reply.send(());
            return;
        }
    }
    let _ = conn.close().await;
}

/// One group commit in progress.
struct Group<'s> {
    now: i64,
    signals: &'s Signals,
    done: Vec<Done>,
    effects: write::Effects,
}

impl<'s> Group<'s> {
    fn new(signals: &'s Signals) -> Self {
        Group {
            // One clock reading per group: every command in it happens at
            // the same instant, as if run back to back.
            now: time::now_micros(),
            signals,
            done: Vec::new(),
            effects: write::Effects::default(),
        }
    }

    /// Runs `commands` (and the next step of unfinished prunes) in one
    /// transaction; returns the reply of a `Close` among them.
    async fn run(
        &mut self,
        conn: &mut SqliteConnection,
        commands: impl Iterator<Item = Command>,
        pruning: &mut Vec<Pruning>,
    ) -> Option<oneshot::Sender<()>> {
        let mut enqueues = Vec::new();
        let mut completes = Vec::new();
        let mut others = Vec::new();
        let mut close = None;
        for command in commands {
            match command {
                Command::Enqueue { tasks, reply } => enqueues.push((tasks, reply)),
                Command::Complete { completions, reply } => completes.push((completions, reply)),
                Command::Close { reply } => close = Some(reply),
                other => others.push(other),
            }
        }

        if let Err(err) = exec(conn, "BEGIN IMMEDIATE").await {
            // Nothing ran: every caller learns why (typically the busy timeout).
            let err = Arc::new(err);
            tracing::warn!(error = %err, "could not start a SQLite write transaction");
            self.answer_all(enqueues, completes, others, pruning);
            self.finish(Some(&err));
            return close;
        }

        for job in std::mem::take(pruning) {
            self.prune(conn, job, pruning).await;
        }
        self.enqueue(conn, enqueues).await;
        self.complete(conn, completes).await;
        for command in others {
            self.one(conn, command, pruning).await;
        }

        let committed = exec(conn, "COMMIT").await;
        match committed {
            Ok(()) => self.finish(None),
            Err(err) => {
                let err = Arc::new(err);
                tracing::warn!(error = %err, "a SQLite group commit failed");
                let _ = exec(conn, "ROLLBACK").await;
                for job in pruning.drain(..) {
                    self.done
                        .push(Done::Count(Answer::new(job.reply, Ok(job.deleted))));
                }
                self.finish(Some(&err));
            }
        }
        close
    }

    /// Signals waiters (only after a successful commit), then answers everyone.
    fn finish(&mut self, failed_commit: Option<&Arc<sqlx::Error>>) {
        if failed_commit.is_none() {
            let effects = std::mem::take(&mut self.effects);
            if !effects.finished.is_empty() {
                self.signals.notify_finished(effects.finished);
            }
            if effects.work {
                self.signals.notify_work();
            }
        }
        for done in self.done.drain(..) {
            done.send(failed_commit);
        }
    }

    /// Queues an answer for every command, so that [`finish`](Self::finish)
    /// sends them all the transaction's failure.
    fn answer_all(
        &mut self,
        enqueues: Vec<(Vec<NewTask>, Reply<Vec<TaskId>>)>,
        completes: Vec<(Vec<Completion>, Reply<Vec<bool>>)>,
        others: Vec<Command>,
        pruning: &mut Vec<Pruning>,
    ) {
        // The placeholder results are replaced by the failure in `finish`.
        for (_, reply) in enqueues {
            self.done
                .push(Done::Ids(Answer::new(reply, Ok(Vec::new()))));
        }
        for (_, reply) in completes {
            self.done
                .push(Done::Applied(Answer::new(reply, Ok(Vec::new()))));
        }
        for job in pruning.drain(..) {
            self.done
                .push(Done::Count(Answer::new(job.reply, Ok(job.deleted))));
        }
        for command in others {
            let done = match command {
                Command::Claim { reply, .. } => Done::Claimed(Answer::new(reply, Ok(Vec::new()))),
                Command::Heartbeat { reply, .. } => Done::Lost(Answer::new(reply, Ok(Vec::new()))),
                Command::Recover { reply } | Command::Prune { reply, .. } => {
                    Done::Count(Answer::new(reply, Ok(0)))
                }
                Command::Cancel { reply, .. } => Done::Flag(Answer::new(reply, Ok(false))),
                Command::Read { reply, read } => Done::Found(Answer::new(
                    reply,
                    Err(Error::database(read.op(), "no transaction")),
                )),
                // Sorted out by `run` before this point.
                Command::Enqueue { .. } | Command::Complete { .. } | Command::Close { .. } => {
                    continue;
                }
            };
            self.done.push(done);
        }
    }

    /// All enqueues of the group as one multi-row insert; one by one if that fails.
    async fn enqueue(
        &mut self,
        conn: &mut SqliteConnection,
        commands: Vec<(Vec<NewTask>, Reply<Vec<TaskId>>)>,
    ) {
        const OP: &str = "enqueueing tasks";
        let now = self.now;
        if commands.len() > 1 {
            let all: Vec<&NewTask> = commands.iter().flat_map(|(tasks, _)| tasks).collect();
            if let Ok(ids) = guarded(
                conn,
                statement_count(all.len(), INSERT_MAX_ROWS) > 1,
                async |conn| write::insert(conn, &all, now).await,
            )
            .await
            {
                self.effects.work |= !ids.is_empty();
                let mut ids = ids.into_iter();
                for (tasks, reply) in commands {
                    let mine = ids.by_ref().take(tasks.len()).collect();
                    self.done.push(Done::Ids(Answer::new(reply, Ok(mine))));
                }
                return;
            }
        }
        for (tasks, reply) in commands {
            let tasks: Vec<&NewTask> = tasks.iter().collect();
            let result = guarded(
                conn,
                statement_count(tasks.len(), INSERT_MAX_ROWS) > 1,
                async |conn| write::insert(conn, &tasks, now).await,
            )
            .await;
            if let Ok(ids) = &result {
                self.effects.work |= !ids.is_empty();
            }
            let result = result.map_err(|err| Error::database(OP, err));
            self.done.push(Done::Ids(Answer::new(reply, result)));
        }
    }

    /// All completions of the group as one fenced update; one by one if that fails.
    async fn complete(
        &mut self,
        conn: &mut SqliteConnection,
        commands: Vec<(Vec<Completion>, Reply<Vec<bool>>)>,
    ) {
        const OP: &str = "recording task outcomes";
        let now = self.now;
        let several_statements = |rows: usize| statement_count(rows, COMPLETE_MAX_ROWS) > 1;
        if commands.len() > 1 {
            let all: Vec<&Completion> = commands.iter().flat_map(|(c, _)| c).collect();
            if let Ok((applied, effects)) =
                guarded(conn, several_statements(all.len()), async |conn| {
                    write::complete(conn, &all, now).await
                })
                .await
            {
                self.effects.merge(effects);
                let mut applied = applied.into_iter();
                for (completions, reply) in commands {
                    let mine = applied.by_ref().take(completions.len()).collect();
                    self.done.push(Done::Applied(Answer::new(reply, Ok(mine))));
                }
                return;
            }
        }
        for (completions, reply) in commands {
            let completions: Vec<&Completion> = completions.iter().collect();
            let result = guarded(conn, several_statements(completions.len()), async |conn| {
                write::complete(conn, &completions, now).await
            })
            .await;
            let result = match result {
                Ok((applied, effects)) => {
                    self.effects.merge(effects);
                    Ok(applied)
                }
                Err(err) => Err(Error::database(OP, err)),
            };
            self.done.push(Done::Applied(Answer::new(reply, result)));
        }
    }

    /// A command that is a single statement (atomic by itself in SQLite, so
    /// no savepoint is needed to isolate it).
    async fn one(
        &mut self,
        conn: &mut SqliteConnection,
        command: Command,
        pruning: &mut Vec<Pruning>,
    ) {
        let now = self.now;
        let done = match command {
            Command::Claim { claim, reply } => {
                let result = write::claim(conn, &claim, now).await;
                Done::Claimed(Answer::new(
                    reply,
                    result.map_err(|e| Error::database("claiming tasks", e)),
                ))
            }
            Command::Heartbeat {
                worker_id,
                claims,
                lease,
                reply,
            } => {
                let lease_until = time::add(now, lease);
                let result = guarded(conn, claims.len() > crate::ops::MAX_ROWS, async |conn| {
                    write::heartbeat(conn, &worker_id, &claims, lease_until).await
                })
                .await;
                Done::Lost(Answer::new(
                    reply,
                    result.map_err(|e| Error::database("extending leases", e)),
                ))
            }
            Command::Recover { reply } => {
                let result = match write::recover_expired(conn, now).await {
                    Ok((count, effects)) => {
                        self.effects.merge(effects);
                        Ok(count)
                    }
                    Err(err) => Err(Error::database("recovering expired leases", err)),
                };
                Done::Count(Answer::new(reply, result))
            }
            Command::Cancel { id, reply } => {
                let result = write::cancel(conn, id, now).await;
                if let Ok(true) = result {
                    self.effects.finished.push(id);
                }
                Done::Flag(Answer::new(
                    reply,
                    result.map_err(|e| Error::database("cancelling a task", e)),
                ))
            }
            Command::Prune { before, reply } => {
                let job = Pruning {
                    before,
                    deleted: 0,
                    reply,
                };
                return self.prune(conn, job, pruning).await;
            }
            Command::Read { read, reply } => {
                let result = read.run(conn).await;
                Done::Found(Answer::new(reply, result))
            }
            // Sorted out by `run` before this point.
            Command::Enqueue { .. } | Command::Complete { .. } | Command::Close { .. } => return,
        };
        self.done.push(done);
    }

    /// One step of a prune: answers when done, else keeps it for the next group.
    async fn prune(
        &mut self,
        conn: &mut SqliteConnection,
        mut job: Pruning,
        pruning: &mut Vec<Pruning>,
    ) {
        match write::prune_some(conn, job.before, PRUNE_STEP).await {
            Ok(deleted) => {
                job.deleted += deleted;
                if deleted < PRUNE_STEP as u64 {
                    self.done
                        .push(Done::Count(Answer::new(job.reply, Ok(job.deleted))));
                } else {
                    pruning.push(job);
                }
            }
            Err(err) => {
                let err = Error::database("pruning finished tasks", err);
                self.done
                    .push(Done::Count(Answer::new(job.reply, Err(err))));
            }
        }
    }
}

/// Runs `body`, inside a savepoint when `several_statements` (one statement
/// is atomic by itself), so that its failure leaves nothing behind and the
/// rest of the group goes on.
async fn guarded<T>(
    conn: &mut SqliteConnection,
    several_statements: bool,
    body: impl AsyncFnOnce(&mut SqliteConnection) -> sqlx::Result<T>,
) -> sqlx::Result<T> {
    if !several_statements {
        return body(conn).await;
    }
    exec(conn, "SAVEPOINT sitq_command").await?;
    match body(conn).await {
        Ok(value) => {
            exec(conn, "RELEASE sitq_command").await?;
            Ok(value)
        }
        Err(err) => {
            // ROLLBACK TO keeps the savepoint open; RELEASE then drops it.
            let _ = exec(conn, "ROLLBACK TO sitq_command").await;
            let _ = exec(conn, "RELEASE sitq_command").await;
            Err(err)
        }
    }
}
