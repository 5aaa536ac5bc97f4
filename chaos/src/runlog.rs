//! The chaos workload's task, and the run log each worker process writes.
//!
//! Every run of [`work()`] appends a `start` line before it does anything and
//! an `end` line just before it returns, to a file of its own process. The
//! lines are written with one `write` each on an unbuffered file opened for
//! appending, so a SIGKILL cannot take back a line that was written: the log
//! counts runs independently of the queue that is under test.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use sitq::{Context, TaskId};

use crate::now_micros;

/// The registered name of [`work()`], for the queue's statistics and lists.
pub const WORK: &str = "sitq_chaos::work";

/// Sleeps `sleep_ms` and returns `seq`; its runs are counted in this
/// process's [`RunLog`]. Fails (and is retried) when the log cannot be
/// written, so no run goes uncounted. Its attempts are far more than kills
/// can spend (a kill spends the attempts its worker was running), so every
/// task must end `succeeded`.
#[sitq::task(name = "sitq_chaos::work", max_attempts = 1000)]
pub async fn work(ctx: Context, seq: u64, sleep_ms: u64) -> Result<u64, String> {
    let log = installed().ok_or("no run log installed in this process")?;
    log.record(Mark::Start, ctx.id(), ctx.attempt())
        .map_err(|error| format!("could not write the run log: {error}"))?;
    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    log.record(Mark::End, ctx.id(), ctx.attempt())
        .map_err(|error| format!("could not write the run log: {error}"))?;
    Ok(seq)
}

/// How long the task with sequence number `seq` sleeps: one in ten a full
/// second (so that kills find tasks in flight), the rest 10–160 ms.
pub fn sleep_ms(seq: u64) -> u64 {
    if seq.is_multiple_of(10) {
        1000
    } else {
        10 + seq.wrapping_mul(37) % 151
    }
}

/// Which end of a run a line marks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    /// The run began.
    Start,
    /// The run is about to return `Ok`.
    End,
}

impl Mark {
    /// The line's first word.
    pub fn word(self) -> &'static str {
        match self {
            Mark::Start => "start",
            Mark::End => "end",
        }
    }
}

/// One line of a run log: `start|end <task id> <attempt> <µs since the epoch>`.
pub fn line(mark: Mark, task: TaskId, attempt: u32, at_micros: i64) -> String {
    format!("{} {task} {attempt} {at_micros}\n", mark.word())
}

/// A worker process's run log.
#[derive(Debug)]
pub struct RunLog {
    file: Mutex<File>,
}

impl RunLog {
    /// Opens (creating) the log at `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<RunLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RunLog {
            file: Mutex::new(file),
        })
    }

    /// Appends one line, stamped now, in a single write.
    fn record(&self, mark: Mark, task: TaskId, attempt: u32) -> std::io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        // Stamped under the lock, so a file's lines are in time order.
        file.write_all(line(mark, task, attempt, now_micros()).as_bytes())
    }
}

static INSTALLED: OnceLock<RunLog> = OnceLock::new();

/// Makes `log` the one [`work()`] writes to in this process; `false` if one
/// was installed already.
pub fn install(log: RunLog) -> bool {
    INSTALLED.set(log).is_ok()
}

fn installed() -> Option<&'static RunLog> {
    INSTALLED.get()
}
