//! Noticing that the database file was deleted or replaced under a running
//! process.
//!
//! Open connections keep using the file they opened: deleted, it lives on
//! unseen by any other process, so work enqueued here is never run there
//! and work enqueued there never reaches a worker here. The guard remembers
//! the file's identity (device and inode) at connect and compares it with
//! what the path names now before every write group and every read batch;
//! once they differ, every call fails with [`Error::DatabaseGone`] (a worker
//! stops), and nothing opens or creates a file at that path again.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sitq_core::{Error, Result};

/// The database file's identity at connect, and what was found since.
#[derive(Debug)]
pub(crate) struct FileGuard {
    path: PathBuf,
    identity: (u64, u64),
    /// Why the file is no longer ours, once noticed.
    gone: OnceLock<String>,
}

impl FileGuard {
    /// The guard of the file at `path`, which must exist.
    pub(crate) fn new(path: &Path) -> Result<FileGuard> {
        let path = crate::connect::absolute(path);
        let metadata = std::fs::metadata(&path).map_err(|source| {
            Error::database(
                "reading the SQLite database file's identity",
                format!("{}: {source}", path.display()),
            )
        })?;
        Ok(FileGuard {
            identity: (metadata.dev(), metadata.ino()),
            path,
            gone: OnceLock::new(),
        })
    }

    /// `Ok` while the path still names the file opened at connect.
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(reason) = self.gone.get() {
            return Err(self.error(reason));
        }
        let reason = match std::fs::metadata(&self.path) {
            Ok(metadata) if (metadata.dev(), metadata.ino()) == self.identity => return Ok(()),
            Ok(_) => "was replaced by another file".to_owned(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => "was deleted".to_owned(),
            Err(err) => format!("can no longer be read ({err})"),
        };
        let reason = self.gone.get_or_init(|| {
            tracing::error!(
                database = %self.path.display(),
                "the SQLite database file {reason} while this process had it open; every call fails from now on"
            );
            reason
        });
        Err(self.error(reason))
    }

    fn error(&self, reason: &str) -> Error {
        Error::DatabaseGone {
            location: format!("sqlite://{}", self.path.display()),
            reason: reason.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_and_replaced_files_are_noticed() {
        let dir = std::env::temp_dir().join(format!("sitq-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tasks.db");
        std::fs::write(&path, b"x").expect("file");
        let guard = FileGuard::new(&path).expect("guard");
        assert!(guard.check().is_ok());
        std::fs::remove_file(&path).expect("delete");
        let err = guard.check().expect_err("deleted");
        assert!(err.to_string().contains("was deleted"), "{err}");
        // Once gone, always gone: a new file at the path is not ours.
        std::fs::write(&path, b"y").expect("a new file");
        assert!(guard.check().is_err());
        let other = FileGuard::new(&path).expect("guard");
        let moved = dir.join("moved.db");
        std::fs::write(&moved, b"z").expect("another file");
        std::fs::rename(&moved, &path).expect("replace");
        let err = other.check().expect_err("replaced");
        assert!(err.to_string().contains("replaced"), "{err}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
