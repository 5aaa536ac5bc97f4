//! Cross-process wake-ups: every commit, from any process, writes the
//! database's `-wal` file. A watch on its directory (inotify on Linux) turns
//! that into a [`Command::External`] for the writer, which asks SQLite
//! (`PRAGMA data_version`) whether another connection committed, and if so
//! wakes this process's workers and waiters. No polling: an idle process
//! sleeps until a file changes.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::writer::command::Command;

/// Keeps the watch alive; dropping it stops watching.
pub(crate) struct FileWatch {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch").finish_non_exhaustive()
    }
}

/// Watches `database`'s directory for changes to it or its `-wal` file.
/// `None` (with a warning) when the platform cannot watch: waiters and idle
/// workers then rely on their poll interval.
pub(crate) fn watch(
    database: &Path,
    writer: mpsc::Sender<Command>,
    pending: Arc<AtomicBool>,
) -> Option<FileWatch> {
    let absolute = std::path::absolute(database).ok()?;
    let directory = absolute.parent()?.to_path_buf();
    let file = absolute.file_name()?.to_owned();
    let mut wal = file.clone();
    wal.push("-wal");
    let names: [OsString; 2] = [file, wal];
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let ours = event.paths.iter().any(|path| {
            path.file_name()
                .is_some_and(|name| names.iter().any(|n| n == name))
        });
        // One check pending is enough, however many events arrive meanwhile.
        if ours
            && !pending.swap(true, Ordering::AcqRel)
            && writer.try_send(Command::External).is_err()
        {
            pending.store(false, Ordering::Release);
        }
    };
    let started = notify::recommended_watcher(handler).and_then(|mut watcher| {
        watcher.watch(&directory, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    match started {
        Ok(watcher) => Some(FileWatch { _watcher: watcher }),
        Err(err) => {
            tracing::warn!(error = %err, directory = %directory.display(), "cannot watch the SQLite database for changes by other processes; relying on polling");
            None
        }
    }
}
