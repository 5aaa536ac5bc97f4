//! Cross-process wake-ups without polling.
//!
//! After a group commit that made work ready or finished tasks, the writer
//! writes one byte to a signal file beside the database (`<db>-sitq`, mode
//! 0600). Every process using the database watches that file (inotify on
//! Linux, through one watcher per process): a change becomes a
//! [`Command::External`] for its writer, which asks SQLite (`PRAGMA
//! data_version`) whether another connection committed and, if so, wakes
//! that process's workers and waiters. The byte is written after `COMMIT`
//! returns, so whoever is woken sees the commit; watching the `-wal` file
//! instead would wake readers while the commit is still being written. An
//! idle process sleeps until the file changes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::writer::command::Command;

/// The signal file of `database`.
pub(crate) fn signal_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-sitq");
    PathBuf::from(name)
}

/// The writer's end: touches the signal file after a commit others should see.
#[derive(Debug)]
pub(crate) struct Signal(File);

impl Signal {
    /// Opens (creating, owner-only) the signal file of `database`.
    pub(crate) fn open(database: &Path) -> std::io::Result<Signal> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(signal_path(database))
            .map(Signal)
    }

    /// Tells the other processes that this one committed.
    pub(crate) fn raise(&self) {
        if let Err(err) = self.0.write_at(&[1], 0) {
            tracing::debug!(error = %err, "could not write the SQLite signal file");
        }
    }
}

/// One subscriber: a backend of this process, by its signal file.
struct Subscriber {
    key: u64,
    file: PathBuf,
    writer: mpsc::Sender<Command>,
    /// Set while an `External` is queued and not yet looked at: a burst of
    /// events becomes one check.
    pending: Arc<AtomicBool>,
}

/// The watcher shared by every backend of this process (inotify instances
/// are a scarce per-user resource), and who listens to it.
struct Shared {
    watcher: notify::RecommendedWatcher,
    directories: HashMap<PathBuf, usize>,
}

type Subscribers = Arc<Mutex<Vec<Subscriber>>>;

static SHARED: Mutex<Option<(Shared, Subscribers)>> = Mutex::new(None);
static KEYS: AtomicU64 = AtomicU64::new(0);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps a backend subscribed; dropping it unsubscribes.
#[derive(Debug)]
pub(crate) struct FileWatch {
    key: u64,
    directory: PathBuf,
}

/// Watches `database`'s signal file for this backend's writer. `None` (with
/// a warning) when the platform cannot watch: waiters and idle workers then
/// rely on their poll interval.
pub(crate) fn watch(
    database: &Path,
    writer: mpsc::Sender<Command>,
    pending: Arc<AtomicBool>,
) -> Option<FileWatch> {
    let file = std::path::absolute(signal_path(database)).ok()?;
    // The file itself, not its directory: a watched directory would turn
    // every write to the database's WAL into an event for this process.
    let directory = file.clone();
    let key = KEYS.fetch_add(1, Ordering::Relaxed);
    let mut shared = lock(&SHARED);
    if shared.is_none() {
        let subscribers: Subscribers = Arc::default();
        let listeners = subscribers.clone();
        match notify::recommended_watcher(move |event| dispatch(&listeners, event)) {
            Ok(watcher) => {
                let state = Shared {
                    watcher,
                    directories: HashMap::new(),
                };
                *shared = Some((state, subscribers));
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SQLite databases for changes by other processes; relying on polling");
                return None;
            }
        }
    }
    let (state, subscribers) = shared.as_mut()?;
    let watching = state.directories.entry(directory.clone()).or_insert(0);
    if *watching == 0
        && let Err(err) = state.watcher.watch(&directory, RecursiveMode::NonRecursive)
    {
        tracing::warn!(error = %err, file = %directory.display(), "cannot watch the SQLite signal file for changes by other processes; relying on polling");
        state.directories.remove(&directory);
        return None;
    }
    *watching += 1;
    lock(subscribers).push(Subscriber {
        key,
        file,
        writer,
        pending,
    });
    Some(FileWatch { key, directory })
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        let mut shared = lock(&SHARED);
        let Some((state, subscribers)) = shared.as_mut() else {
            return;
        };
        lock(subscribers).retain(|subscriber| subscriber.key != self.key);
        if let Some(watching) = state.directories.get_mut(&self.directory) {
            *watching -= 1;
            if *watching == 0 {
                state.directories.remove(&self.directory);
                let _ = state.watcher.unwatch(&self.directory);
            }
        }
    }
}

/// Runs on the watcher's thread for every file event.
fn dispatch(subscribers: &Subscribers, event: notify::Result<notify::Event>) {
    let Ok(event) = event else { return };
    if matches!(event.kind, EventKind::Access(_)) {
        return;
    }
    let mut raised = false;
    for subscriber in lock(subscribers).iter() {
        if !event.paths.contains(&subscriber.file) {
            continue;
        }
        // One check pending is enough, however many events arrive meanwhile.
        if !subscriber.pending.swap(true, Ordering::AcqRel) {
            raised = true;
            if subscriber.writer.try_send(Command::External).is_err() {
                subscriber.pending.store(false, Ordering::Release);
            }
        }
    }
    if raised {
        // Lets the events of a busy writer elsewhere pile up (the kernel
        // merges them) instead of waking this thread for each: at most a
        // thousand checks a second, a millisecond later at worst.
        std::thread::sleep(Duration::from_millis(1));
    }
}
