//! The writer thread: every write of this process goes through one
//! connection, in group commits.
//!
//! SQLite has one writer at a time, so a pool of writing connections would
//! only queue on the file lock (and pay a commit, an fsync under
//! `synchronous=FULL`, per caller). Instead callers send [`Command`]s over a
//! channel, one message per command (never per row); the thread takes
//! whatever is waiting (up to [`MAX_GROUP`]), runs it all in one
//! `BEGIN IMMEDIATE … COMMIT` on SQLite's C library directly, and answers
//! after the commit. Under load the group grows by itself: commands pile up
//! while a commit runs. A command of several statements runs inside a
//! savepoint, so one that fails leaves nothing behind and fails alone.

pub(crate) mod command;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::Connection;
use sitq_core::inspect::not_deletable;
use sitq_core::{Error, Signals};
use tokio::sync::{mpsc, oneshot};

use crate::connect::{Target, db};
use crate::guard::FileGuard;
use crate::ops::queues;
use crate::ops::schedules;
use crate::ops::write::{self, Effects};
use crate::ops::{audit, cancel, deps, workers};
use crate::{time, watch};
use command::{Answer, Command, answer};

/// The most commands in one group commit; bounds how long callers whose
/// command arrived first wait for the others.
const MAX_GROUP: usize = 512;

/// Commands that may queue before callers wait for room (backpressure).
const CHANNEL: usize = 4096;

/// Finished rows one purge deletes per group commit, so that a large backlog
/// never holds the write lock for long.
const PURGE_STEP: i64 = 5_000;

/// The writer's side of the channel and what it shares with the watcher.
pub(crate) struct Spawned {
    pub(crate) sender: mpsc::Sender<Command>,
    /// Set by the file watcher when it has sent [`Command::External`] and the
    /// writer has not yet looked; coalesces a burst of file events into one check.
    pub(crate) external_pending: Arc<AtomicBool>,
}

/// Starts the writer thread, which opens and migrates the database; returns
/// once that is done (or failed).
pub(crate) async fn spawn(
    target: Target,
    signals: Arc<Signals>,
    guard: Option<Arc<FileGuard>>,
) -> sitq_core::Result<Spawned> {
    let (sender, receiver) = mpsc::channel(CHANNEL);
    let (opened_tx, opened) = oneshot::channel();
    let external_pending = Arc::new(AtomicBool::new(false));
    let pending = external_pending.clone();
    std::thread::Builder::new()
        .name("sitq-sqlite-writer".into())
        .spawn(move || match target.open_writer() {
            Ok(conn) => {
                let signal = target.path.as_deref().and_then(|path| {
                    watch::Signal::open(path)
                        .inspect_err(|err| tracing::warn!(error = %err, "cannot create the SQLite signal file; other processes will find this one's work by polling"))
                        .ok()
                });
                let _ = opened_tx.send(Ok(()));
                Writer::new(conn, signals, pending, signal, guard).run(receiver);
            }
            Err(err) => {
                let _ = opened_tx.send(Err(err));
            }
        })
        .map_err(|source| Error::Io {
            op: "starting the SQLite writer thread",
            source,
        })?;
    opened
        .await
        .map_err(|_| command::writer_gone("opening the SQLite database"))??;
    Ok(Spawned {
        sender,
        external_pending,
    })
}

/// A purge that has more rows to delete in later groups.
struct Pruning {
    before: i64,
    /// A JSON array of the finished states to delete.
    statuses: String,
    deleted: u64,
    reply: command::Reply<u64>,
}

struct Writer {
    conn: Connection,
    signals: Arc<Signals>,
    /// Tells other processes about this one's commits (file databases).
    signal: Option<watch::Signal>,
    external_pending: Arc<AtomicBool>,
    /// `PRAGMA data_version` when last looked: it changes only when another
    /// connection (another process) commits.
    data_version: i64,
    pruning: Vec<Pruning>,
    /// Notices a deleted or replaced database file (file databases).
    guard: Option<Arc<FileGuard>>,
}

impl Writer {
    fn new(
        conn: Connection,
        signals: Arc<Signals>,
        external_pending: Arc<AtomicBool>,
        signal: Option<watch::Signal>,
        guard: Option<Arc<FileGuard>>,
    ) -> Self {
        let mut writer = Writer {
            conn,
            signals,
            signal,
            external_pending,
            data_version: 0,
            pruning: Vec::new(),
            guard,
        };
        writer.data_version = writer.read_data_version().unwrap_or(0);
        writer
    }

    fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        let mut commands = Vec::with_capacity(MAX_GROUP);
        let mut busy = false;
        loop {
            if self.pruning.is_empty() {
                // Waits for one command, then takes whatever else is waiting.
                match receiver.blocking_recv() {
                    Some(command) => commands.push(command),
                    None => break, // every sender is gone: the backend was dropped
                }
            }
            while commands.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            if busy {
                linger(&mut receiver, &mut commands);
            }
            busy = commands.len() > 1;
            if let Some(reply) = self.group(&mut commands) {
                drop(self.conn);
                let _ = reply.send(());
                return;
            }
        }
    }

    /// Fails every command and unfinished purge with `err` when nothing
    /// could run; returns the reply of a `Close` among them.
    fn fail_all(
        &mut self,
        commands: &mut Vec<Command>,
        err: &dyn Fn() -> Error,
    ) -> Option<oneshot::Sender<()>> {
        let mut close = None;
        for command in commands.drain(..) {
            if let Command::Close { reply } = command {
                close = Some(reply);
            } else {
                fail(command, err);
            }
        }
        for job in self.pruning.drain(..) {
            let _ = job.reply.send(Err(err()));
        }
        close
    }

    /// Runs `commands` (and the next step of unfinished purges) in one
    /// transaction; returns the reply of a `Close` among them.
    fn group(&mut self, commands: &mut Vec<Command>) -> Option<oneshot::Sender<()>> {
        let mut close = None;
        let mut external = false;
        commands.retain(|command| match command {
            Command::External => {
                external = true;
                false
            }
            _ => true,
        });
        if external {
            self.external_pending.store(false, Ordering::Release);
            self.check_external();
        }
        if commands.is_empty() && self.pruning.is_empty() {
            return None;
        }

        let mut answers: Vec<Answer> = Vec::with_capacity(commands.len());
        let mut effects = Effects::default();
        // One stat per group: a file deleted or replaced under this process
        // is never written again (and never recreated).
        if let Some(guard) = self.guard.clone()
            && guard.check().is_err()
        {
            let gone = || {
                guard
                    .check()
                    .err()
                    .unwrap_or_else(|| command::writer_gone("writing"))
            };
            return self.fail_all(commands, &gone);
        }
        if let Err(err) = exec(&self.conn, "BEGIN IMMEDIATE") {
            // Nothing ran: every caller learns why (typically the busy timeout).
            tracing::warn!(error = %err, "could not start a SQLite write transaction");
            let err = Arc::new(err);
            let failed =
                || Error::database("starting a SQLite write transaction", Arc::clone(&err));
            return self.fail_all(commands, &failed);
        }
        // Read after the lock is ours, so a wait for it never shortens leases.
        let now = time::now_micros();
        for job in std::mem::take(&mut self.pruning) {
            self.prune(job, now, &mut answers);
        }
        for command in commands.drain(..) {
            if let Command::Close { reply } = command {
                close = Some(reply);
            } else {
                self.one(command, now, &mut effects, &mut answers);
            }
        }
        match exec(&self.conn, "COMMIT") {
            Ok(()) => {
                self.signal(effects);
                for answer in answers {
                    answer(None);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "a SQLite group commit failed");
                let _ = self.conn.execute_batch("ROLLBACK");
                let err = Arc::new(err);
                for answer in answers {
                    answer(Some(&err));
                }
                for job in self.pruning.drain(..) {
                    answer(job.reply, Ok(job.deleted))(Some(&err));
                }
            }
        }
        close
    }

    /// Runs one command; queues its answer for after the commit.
    fn one(
        &mut self,
        command: Command,
        now: i64,
        effects: &mut Effects,
        answers: &mut Vec<Answer>,
    ) {
        let conn = &self.conn;
        match command {
            Command::Enqueue { tasks, reply } => {
                let result = guarded(conn, tasks.len() > 1, || write::insert(conn, &tasks, now));
                effects.work |= result.is_ok();
                answers.push(answer(reply, result.map_err(db("enqueueing tasks"))));
            }
            Command::Claim { claim, reply } => {
                let several = claim.start > 0 && claim.limit > claim.start;
                let result = guarded(conn, several, || write::claim(conn, &claim, now));
                answers.push(answer(reply, result.map_err(db("claiming tasks"))));
            }
            Command::Start { claims, reply } => {
                let result = guarded(conn, claims.len() > 1, || write::start(conn, &claims, now));
                answers.push(answer(reply, result.map_err(db("marking tasks started"))));
            }
            Command::Release { claims, reply } => {
                let result = guarded(conn, claims.len() > 1, || write::release(conn, &claims));
                effects.work |= matches!(result, Ok(n) if n > 0);
                answers.push(answer(
                    reply,
                    result.map_err(db("releasing reserved tasks")),
                ));
            }
            Command::Heartbeat {
                worker_id,
                claims,
                lease,
                reply,
            } => {
                let lease_until = time::add(now, lease);
                let result = guarded(conn, claims.len() > 1, || {
                    write::heartbeat(conn, &worker_id, &claims, lease_until)
                });
                answers.push(answer(reply, result.map_err(db("extending leases"))));
            }
            Command::Complete { completions, reply } => {
                let mut mine = Effects::default();
                // A failure is two statements (the outcome and its history).
                let several = completions.len() > 1
                    || completions
                        .iter()
                        .any(|c| !matches!(c.outcome, sitq_core::Outcome::Succeeded(_)));
                let result = guarded(conn, several, || {
                    write::complete(conn, &completions, now, &mut mine)
                });
                if result.is_ok() {
                    merge(effects, mine);
                }
                answers.push(answer(reply, result.map_err(db("recording task outcomes"))));
            }
            Command::Recover { reply } => {
                let mut mine = Effects::default();
                let result = guarded(conn, true, || write::recover_expired(conn, now, &mut mine));
                if result.is_ok() {
                    merge(effects, mine);
                }
                answers.push(answer(
                    reply,
                    result.map_err(db("recovering expired leases")),
                ));
            }
            Command::Cancel { id, request, reply } => {
                let mut mine = Effects::default();
                let result = guarded(conn, true, || {
                    cancel::cancel(conn, id, &request, now, &mut mine)
                });
                if result.is_ok() {
                    merge(effects, mine);
                }
                let result = result
                    .map_err(db("cancelling a task"))
                    .and_then(|outcome| outcome.ok_or(Error::NotFound(id)));
                answers.push(answer(reply, result));
            }
            Command::Retry { id, reply } => {
                let mut mine = Effects::default();
                let result = guarded(conn, true, || cancel::retry(conn, id, now, &mut mine));
                if result.is_ok() {
                    merge(effects, mine);
                }
                let result =
                    result
                        .map_err(db("retrying a task"))
                        .and_then(|retried| match retried {
                            cancel::Retried::Done => Ok(()),
                            cancel::Retried::NotFound => Err(Error::NotFound(id)),
                            cancel::Retried::Refused(status) => {
                                Err(Error::NotRetryable { id, status })
                            }
                        });
                answers.push(answer(reply, result));
            }
            Command::Purge {
                before,
                statuses,
                reply,
            } => {
                let job = Pruning {
                    before,
                    statuses,
                    deleted: 0,
                    reply,
                };
                self.prune(job, now, answers);
            }
            Command::WorkerBeat { beat, reply } => {
                let result = guarded(conn, true, || workers::beat(conn, &beat, now));
                answers.push(answer(reply, result.map_err(db("registering a worker"))));
            }
            Command::RemoveWorker { id, reply } => {
                let result = workers::remove(conn, &id);
                answers.push(answer(reply, result.map_err(db("removing a worker"))));
            }
            Command::DrainWorker { id, reply } => {
                let result = workers::drain(conn, &id, now);
                effects.control |= matches!(result, Ok(true));
                answers.push(answer(reply, result.map_err(db("draining a worker"))));
            }
            Command::Delete { id, reply } => {
                let result = guarded(conn, true, || cancel::delete(conn, id))
                    .map_err(db("deleting a task"))
                    .and_then(|deleted| match deleted {
                        cancel::Deleted::Done => Ok(()),
                        cancel::Deleted::NotFound => Err(Error::NotFound(id)),
                        cancel::Deleted::Refused(status) => Err(not_deletable(id, status)),
                    });
                answers.push(answer(reply, result));
            }
            Command::RecordAudit { entry, reply } => {
                let result = audit::record(conn, &entry, now);
                answers.push(answer(
                    reply,
                    result.map_err(db("recording an audit entry")),
                ));
            }
            Command::SetPaused {
                queue,
                paused,
                reply,
            } => {
                let result = queues::set_paused(conn, &queue, paused, now);
                // Resumed: idle workers here and in other processes look again.
                effects.work |= result.is_ok() && !paused;
                answers.push(answer(
                    reply,
                    result.map_err(db("pausing or resuming a queue")),
                ));
            }
            Command::SetLimits {
                queue,
                limits,
                reply,
            } => {
                let result = guarded(conn, true, || {
                    queues::set_limits(conn, &queue, &limits, now)
                });
                // A raised or cleared limit may let idle workers claim.
                effects.work |= result.is_ok();
                answers.push(answer(
                    reply,
                    result.map_err(db("setting a queue's limits")),
                ));
            }
            Command::Read { read, reply } => {
                let op = read.op();
                answers.push(answer(reply, read.run(conn).map_err(db(op))));
            }
            Command::RegisterSchedules { schedules, reply } => {
                let result = guarded(conn, schedules.len() > 1, || {
                    schedules::register(conn, &schedules)
                });
                answers.push(answer(reply, result.map_err(db("registering schedules"))));
            }
            Command::FireTick { fire, reply } => {
                let mut mine = Effects::default();
                let result = guarded(conn, true, || {
                    schedules::fire_tick(conn, &fire, now, &mut mine)
                });
                if result.is_ok() {
                    merge(effects, mine);
                }
                answers.push(answer(
                    reply,
                    result.map_err(db("firing a schedule's tick")),
                ));
            }
            // Sorted out by `group` before this point.
            Command::External | Command::Close { .. } => {}
            Command::Transaction { job } => {
                let (answer, stored) = job.run(conn, now);
                effects.work |= stored;
                answers.push(answer);
            }
            Command::EnqueueUnique { tasks, reply } => {
                // Always several statements: the holder's lookup, its
                // release, the insert.
                let result = guarded(conn, true, || write::insert_unique(conn, &tasks, now));
                effects.work |= matches!(&result, Ok(e) if e.iter().any(|e| !e.duplicate));
                answers.push(answer(reply, result.map_err(db("enqueueing tasks"))));
            }
            Command::EnqueueDeps { tasks, reply } => {
                let mut mine = Effects::default();
                let result = guarded(conn, true, || {
                    deps::insert(conn, &tasks, now, None, &mut mine)
                });
                let result = result.map_err(db("enqueueing tasks")).and_then(|r| r);
                if result.is_ok() {
                    merge(effects, mine);
                }
                answers.push(answer(reply, result));
            }
            Command::EnqueueWorkflow { workflow, reply } => {
                let mut mine = Effects::default();
                let result = guarded(conn, true, || {
                    deps::insert_workflow(conn, &workflow, now, &mut mine)
                });
                let result = result.map_err(db("enqueueing a workflow")).and_then(|r| r);
                if result.is_ok() {
                    merge(effects, mine);
                }
                answers.push(answer(reply, result));
            }
        }
    }

    /// One step of a purge: answers when done, else keeps it for the next group.
    fn prune(&mut self, mut job: Pruning, _now: i64, answers: &mut Vec<Answer>) {
        let conn = &self.conn;
        match guarded(conn, true, || {
            write::purge_some(conn, job.before, &job.statuses, PURGE_STEP)
        }) {
            Ok(deleted) => {
                job.deleted += deleted;
                if deleted < PURGE_STEP as u64 {
                    answers.push(answer(job.reply, Ok(job.deleted)));
                } else {
                    self.pruning.push(job);
                }
            }
            Err(err) => {
                let err = Error::database("purging finished tasks", err);
                answers.push(answer(job.reply, Err(err)));
            }
        }
    }

    /// Wakes this process's workers and waiters after a commit, and the
    /// other processes' through the signal file.
    fn signal(&self, effects: Effects) {
        if (effects.work || !effects.finished.is_empty() || !effects.cancelled.is_empty())
            && let Some(signal) = &self.signal
        {
            signal.raise();
        }
        for id in effects.retried {
            self.signals.forget_outcome(id);
        }
        if !effects.cancelled.is_empty() {
            self.signals.notify_cancel(effects.cancelled);
        }
        if !effects.finished.is_empty() {
            self.signals.notify_outcomes(effects.finished);
        }
        if effects.control {
            self.signals.notify_control();
        }
        if effects.work {
            self.signals.notify_work();
        }
    }

    /// After a file event: if another process committed, wake everyone here.
    fn check_external(&mut self) {
        match self.read_data_version() {
            Ok(version) if version != self.data_version => {
                self.data_version = version;
                self.signals.notify_work();
                self.signals.notify_external();
                self.signals.notify_cancel_check();
            }
            Ok(_) => {}
            Err(err) => tracing::debug!(error = %err, "could not read PRAGMA data_version"),
        }
    }

    fn read_data_version(&self) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))
    }
}

/// Under load (the last group held several commands), more commands are
/// usually on their way: a worker's completions trickle in as its tasks
/// finish. Collecting them while they keep coming (each within [`GAP`] of
/// the last, for at most [`LINGER`]) makes fewer, larger commits, and each
/// commit rewrites its pages into the WAL, so fewer is much cheaper. Callers
/// that have all sent already lose only one gap.
fn linger(receiver: &mut mpsc::Receiver<Command>, commands: &mut Vec<Command>) {
    let started = std::time::Instant::now();
    let mut last = started;
    while commands.len() < MAX_GROUP && started.elapsed() < LINGER {
        match receiver.try_recv() {
            Ok(command) => {
                commands.push(command);
                last = std::time::Instant::now();
            }
            Err(mpsc::error::TryRecvError::Empty) if last.elapsed() < GAP => {
                std::thread::yield_now();
            }
            Err(_) => return,
        }
    }
}

/// See [`linger`].
const GAP: std::time::Duration = std::time::Duration::from_micros(30);
/// See [`linger`].
const LINGER: std::time::Duration = std::time::Duration::from_micros(500);

fn merge(effects: &mut Effects, other: Effects) {
    effects.absorb(other);
}

/// Answers a command that never ran with the transaction's failure.
fn fail(command: Command, err: &dyn Fn() -> Error) {
    fn send<T: Send + 'static>(reply: command::Reply<T>, err: &dyn Fn() -> Error) {
        let _ = reply.send(Err(err()));
    }
    match command {
        Command::Enqueue { reply, .. } => send(reply, err),
        Command::Claim { reply, .. } => send(reply, err),
        Command::Start { reply, .. } => send(reply, err),
        Command::Release { reply, .. } => send(reply, err),
        Command::Heartbeat { reply, .. } => send(reply, err),
        Command::Complete { reply, .. } => send(reply, err),
        Command::Recover { reply } => send(reply, err),
        Command::Cancel { reply, .. } => send(reply, err),
        Command::Retry { reply, .. } => send(reply, err),
        Command::Purge { reply, .. } => send(reply, err),
        Command::WorkerBeat { reply, .. } => send(reply, err),
        Command::RemoveWorker { reply, .. } => send(reply, err),
        Command::DrainWorker { reply, .. } => send(reply, err),
        Command::RecordAudit { reply, .. } => send(reply, err),
        Command::Delete { reply, .. } => send(reply, err),
        Command::Read { reply, .. } => send(reply, err),
        Command::RegisterSchedules { reply, .. } => send(reply, err),
        Command::FireTick { reply, .. } => send(reply, err),
        Command::SetPaused { reply, .. } => send(reply, err),
        Command::SetLimits { reply, .. } => send(reply, err),
        Command::External | Command::Close { .. } => {}
        Command::EnqueueUnique { reply, .. } => send(reply, err),
        Command::EnqueueDeps { reply, .. } => send(reply, err),
        Command::EnqueueWorkflow { reply, .. } => send(reply, err),
        Command::Transaction { job } => job.fail(err()),
    }
}

/// Runs one fixed statement, prepared once.
fn exec(conn: &Connection, sql: &'static str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs `body`, inside a savepoint when `several_statements` (one statement
/// is atomic by itself), so that its failure leaves nothing behind and the
/// rest of the group goes on.
fn guarded<T>(
    conn: &Connection,
    several_statements: bool,
    body: impl FnOnce() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    if !several_statements {
        return body();
    }
    exec(conn, "SAVEPOINT sitq_command")?;
    match body() {
        Ok(value) => {
            exec(conn, "RELEASE sitq_command")?;
            Ok(value)
        }
        Err(err) => {
            // ROLLBACK TO keeps the savepoint open; RELEASE then drops it.
            let _ = conn.execute_batch("ROLLBACK TO sitq_command; RELEASE sitq_command");
            Err(err)
        }
    }
}
