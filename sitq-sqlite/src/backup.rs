//! A consistent copy of a live database, with SQLite's online backup API.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};
use sitq_core::{Error, Result};

use crate::connect::{BUSY_TIMEOUT, Target, absolute, db};

/// Pages copied per step: a few hundred (about a megabyte with 4 KiB pages)
/// between progress reports.
const STEP_PAGES: i32 = 256;

/// How far a [`backup`] has come, reported after every step.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BackupProgress {
    /// Pages copied so far.
    pub copied_pages: u64,
    /// Pages in the database being copied.
    pub total_pages: u64,
}

/// Copies the sitq database at `url` (a `sqlite:` file URL) to a new file
/// `dest`, readable by its owner only, while other connections and
/// processes keep reading and writing it. Blocking: from async code, call
/// it in `tokio::task::spawn_blocking`. `progress` hears after every step
/// of a few hundred pages.
///
/// The copy is the database as it was when the backup started: it holds a
/// read transaction on the source throughout, so concurrent commits (which
/// would otherwise make SQLite restart the copy) never disturb it; they
/// wait in the `-wal` file until the next checkpoint after it.
///
/// [`Error::Config`] when `dest` exists (a backup never overwrites a
/// file), when the database file does not exist, or for `sqlite::memory:`;
/// a partial copy is removed when the backup fails.
///
/// ```no_run
/// # fn demo() -> sitq_core::Result<()> {
/// sitq_sqlite::backup("sqlite://tasks.db", "tasks-backup.db".as_ref(), |p| {
///     eprintln!("{}/{} pages", p.copied_pages, p.total_pages);
/// })?;
/// # Ok(())
/// # }
/// ```
pub fn backup(url: &str, dest: &Path, mut progress: impl FnMut(BackupProgress)) -> Result<()> {
    let target = Target::parse(url)?;
    if target.path.is_none() {
        return Err(Error::Config(
            "an in-memory database (sqlite::memory:) is private to the process that opened it \
             and cannot be backed up; give the database file's URL"
                .into(),
        ));
    }
    target.require_existing(url)?;
    let source = target.open_reader()?;
    // The snapshot: one read transaction, held until the copy is done.
    source
        .execute_batch("BEGIN")
        .map_err(db("starting the backup's read transaction"))?;
    let is_sitq: bool = source
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'sitq_tasks')",
            [],
            |row| row.get(0),
        )
        .map_err(db("reading the database to back up"))?;
    if !is_sitq {
        return Err(Error::Config(format!(
            "{url} is not a sitq database (it has no sitq_tasks table)"
        )));
    }

    create_new(dest)?;
    let result = copy(&source, dest, &mut progress);
    let _ = source.execute_batch("COMMIT");
    if result.is_err() {
        // Never leave a partial copy that looks like a backup.
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut file = dest.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
    result
}

/// Creates `dest`, empty and mode 0600, refusing one that exists. SQLite
/// gives its journal the same mode.
fn create_new(dest: &Path) -> Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
    {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Config(format!(
            "{} already exists; a backup never overwrites a file: choose a new path",
            absolute(dest).display()
        ))),
        Err(source) => Err(Error::Io {
            op: "creating the backup file",
            source,
        }),
    }
}

fn copy(source: &Connection, dest: &Path, progress: &mut impl FnMut(BackupProgress)) -> Result<()> {
    let op = "backing up the SQLite database";
    let mut copy = Connection::open(dest)
        .map_err(|err| Error::database(op, format!("{}: {err}", dest.display())))?;
    {
        let backup = Backup::new(source, &mut copy).map_err(db(op))?;
        let deadline = Instant::now() + BUSY_TIMEOUT;
        loop {
            let step = backup.step(STEP_PAGES).map_err(db(op))?;
            let p = backup.progress();
            let total = u64::try_from(p.pagecount).unwrap_or(0);
            let remaining = u64::try_from(p.remaining).unwrap_or(0);
            match step {
                StepResult::Done => {
                    progress(BackupProgress {
                        copied_pages: total,
                        total_pages: total,
                    });
                    break;
                }
                StepResult::More => progress(BackupProgress {
                    copied_pages: total.saturating_sub(remaining),
                    total_pages: total,
                }),
                // Another connection holds a lock the step needs (not the
                // source's: our read transaction is already open).
                StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    return Err(Error::database(
                        op,
                        "the database stayed locked for the whole busy timeout",
                    ));
                }
            }
        }
    }
    copy.close()
        .map_err(|(_, err)| Error::database("closing the backup file", err))
}
