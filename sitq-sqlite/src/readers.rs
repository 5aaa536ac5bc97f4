//! Reader threads: `get`, `status`, `finished` and `next_run_at` beside the
//! writer (WAL lets them read while it writes), each thread with its own
//! connection, each read one message to the thread and one back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;
use sitq_core::{Error, Result};
use tokio::sync::oneshot;

use crate::connect::{Target, db};
use crate::guard::FileGuard;
use crate::ops::read::{Found, Read};

/// Reads a thread takes at once, inside one read transaction.
const MAX_BATCH: usize = 64;

struct Job {
    read: Read,
    reply: oneshot::Sender<Result<Found>>,
}

/// A few reader threads; reads go to them in turn.
#[derive(Debug)]
pub(crate) struct Readers {
    senders: Vec<mpsc::Sender<Job>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("read", &self.read).finish()
    }
}

impl Readers {
    /// Opens `count` reader connections, each on its own thread.
    pub(crate) async fn start(
        target: &Target,
        count: usize,
        guard: Option<Arc<FileGuard>>,
    ) -> Result<Readers> {
        let mut senders = Vec::with_capacity(count);
        for i in 0..count.max(1) {
            let (sender, receiver) = mpsc::channel::<Job>();
            let (opened_tx, opened) = oneshot::channel();
            let target = target.clone();
            let guard = guard.clone();
            std::thread::Builder::new()
                .name(format!("sitq-sqlite-reader-{i}"))
                .spawn(move || match target.open_reader() {
                    Ok(conn) => {
                        let _ = opened_tx.send(Ok(()));
                        serve(&conn, &receiver, guard.as_deref());
                    }
                    Err(err) => {
                        let _ = opened_tx.send(Err(err));
                    }
                })
                .map_err(|source| Error::Io {
                    op: "starting a SQLite reader thread",
                    source,
                })?;
            opened
                .await
                .map_err(|_| gone("opening a SQLite reader"))??;
            senders.push(sender);
        }
        Ok(Readers {
            senders,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `read` on the next reader.
    pub(crate) async fn read(&self, read: Read) -> Result<Found> {
        let op = read.op();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        let (reply, answer) = oneshot::channel();
        self.senders[i]
            .send(Job { read, reply })
            .map_err(|_| gone(op))?;
        answer.await.map_err(|_| gone(op))?
    }
}

fn gone(op: &'static str) -> Error {
    Error::database(op, "the SQLite reader thread has stopped")
}

/// Answers reads until every sender is gone. Reads that queued up together
/// share one read transaction.
fn serve(conn: &Connection, receiver: &mpsc::Receiver<Job>, guard: Option<&FileGuard>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Ok(job) = receiver.recv() {
        jobs.push(job);
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // One stat per batch: a file deleted or replaced under this
        // process is not read as if nothing happened.
        if let Some(guard) = guard
            && guard.check().is_err()
        {
            for job in jobs.drain(..) {
                let _ = job
                    .reply
                    .send(Err(guard.check().err().unwrap_or_else(|| gone("reading"))));
            }
            continue;
        }
        let batched = jobs.len() > 1 && conn.execute_batch("BEGIN").is_ok();
        for job in jobs.drain(..) {
            let op = job.read.op();
            let _ = job.reply.send(job.read.run(conn).map_err(db(op)));
        }
        if batched {
            let _ = conn.execute_batch("COMMIT");
        }
    }
}
