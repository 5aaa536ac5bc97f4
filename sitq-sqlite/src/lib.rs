//! The embedded SQLite backend of sitq.
//!
//! Linking this crate registers the `sqlite` URL scheme, so
//! `sitq_core::Queue::connect("sqlite://tasks.db")` finds it; use
//! [`SqliteBackend::connect`] to build one directly.
//!
//! - **Files.** `sqlite://tasks.db` (relative), `sqlite:///abs/path.db`,
//!   `sqlite:tasks.db`. A missing file is created with mode 0600 and
//!   migrated; connecting is idempotent and safe from several processes at once.
//! - **Memory.** `sqlite::memory:` is a fresh private database per connect,
//!   gone when the backend is dropped (for tests).
//! - **Durability.** WAL, `synchronous=NORMAL` by default (a commit survives
//!   a process crash; the last ones may not survive a power loss); add
//!   `?synchronous=FULL` to the URL for an fsync per commit.
//! - **Speed.** SQLite has one writer, so each backend funnels its writes
//!   through one thread that drives SQLite's C library directly (rusqlite)
//!   and group-commits whatever is waiting: one channel message per command,
//!   never per row; a claim is one `UPDATE … RETURNING`. Reads run on a few
//!   reader threads beside it.
//! - **Wake-ups.** In this process, commits wake workers and waiters
//!   directly (finished tasks carry their outcome, so a waiter needs no
//!   query). Across processes, a watch on the `-wal` file plus `PRAGMA
//!   data_version` tells within milliseconds that another process committed.
//! - **Backups.** [`backup`] copies a live database to a new file (mode
//!   0600) with SQLite's online backup API while workers keep writing.

mod backend;
mod backup;
mod connect;
mod guard;
mod ops;
mod readers;
mod time;
mod transaction;
mod watch;
mod writer;

pub use backend::SqliteBackend;
pub use backup::{BackupProgress, backup};
pub use transaction::{Transaction, transaction};

/// The rusqlite sitq is built with, for the parameters and rows of a
/// [`Transaction`]'s statements.
pub use rusqlite;

use std::sync::Arc;

use sitq_core::{Backend, BackendConnector, ConnectFuture, ConnectOptions};

fn connect(url: String, options: ConnectOptions) -> ConnectFuture {
    Box::pin(async move {
        let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::connect(&url, options).await?);
        Ok(backend)
    })
}

inventory::submit! {
    BackendConnector { schemes: &["sqlite"], connect }
}
