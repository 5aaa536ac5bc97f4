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
//!
//! The `-wal` and `-shm` files are watched the same way, from the first
//! check that finds them: while any connection is open SQLite never
//! deletes or replaces them, so one that goes away was removed from outside.
//! A deleted `-wal` keeps this process's commits since the last checkpoint
//! where no other process reads them; a deleted `-shm` leaves processes
//! locking through different files.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sitq_core::{Error, Result};

/// The database file's identity at connect, and what was found since.
#[derive(Debug)]
pub(crate) struct FileGuard {
    path: PathBuf,
    identity: (u64, u64),
    /// The `-wal` and `-shm` files' identities, each from the first check
    /// that found it (a new database has neither before its first write).
    sidecars: [Sidecar; 2],
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
            sidecars: ["-wal", "-shm"].map(|suffix| Sidecar {
                suffix,
                path: PathBuf::from(format!("{}{suffix}", path.display())),
                identity: OnceLock::new(),
            }),
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
            Ok(metadata) if (metadata.dev(), metadata.ino()) == self.identity => {
                match self.sidecars.iter().find_map(Sidecar::lost) {
                    None => return Ok(()),
                    Some(reason) => reason,
                }
            }
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

/// A file SQLite keeps next to the database while it is open.
#[derive(Debug)]
struct Sidecar {
    suffix: &'static str,
    path: PathBuf,
    identity: OnceLock<(u64, u64)>,
}

impl Sidecar {
    /// Why the file is no longer the one first found, if it is not.
    fn lost(&self) -> Option<String> {
        match std::fs::metadata(&self.path) {
            Ok(metadata) => {
                let now = (metadata.dev(), metadata.ino());
                (*self.identity.get_or_init(|| now) != now)
                    .then(|| format!("had its {} file replaced by another file", self.suffix))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                self.identity.get().map(|_| self.deleted())
            }
            Err(err) => Some(format!(
                "had its {} file become unreadable ({err})",
                self.suffix
            )),
        }
    }

    fn deleted(&self) -> String {
        match self.suffix {
            "-wal" => "had its -wal file deleted (commits since the last checkpoint are now seen by this process only)".to_owned(),
            suffix => format!("had its {suffix} file deleted (processes no longer share its locks)"),
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

    #[test]
    fn deleted_and_replaced_wal_and_shm_files_are_noticed() {
        let dir = std::env::temp_dir().join(format!("sitq-guard-sidecars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tasks.db");
        let wal = dir.join("tasks.db-wal");
        let shm = dir.join("tasks.db-shm");
        std::fs::write(&path, b"x").expect("file");
        let guard = FileGuard::new(&path).expect("guard");
        // Neither exists yet (a new database): nothing to compare.
        assert!(guard.check().is_ok());
        std::fs::write(&wal, b"w").expect("wal");
        std::fs::write(&shm, b"s").expect("shm");
        assert!(guard.check().is_ok(), "first found: remembered");
        assert!(guard.check().is_ok(), "unchanged");
        std::fs::remove_file(&wal).expect("delete the wal");
        let err = guard.check().expect_err("the wal was deleted");
        let text = err.to_string();
        assert!(text.contains("had its -wal file deleted"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        // Once gone, always gone.
        std::fs::write(&wal, b"w").expect("a new wal");
        assert!(guard.check().is_err());

        let other = FileGuard::new(&path).expect("guard");
        assert!(other.check().is_ok());
        let moved = dir.join("moved-shm");
        std::fs::write(&moved, b"t").expect("another file");
        std::fs::rename(&moved, &shm).expect("replace the shm");
        let err = other.check().expect_err("the shm was replaced");
        assert!(
            err.to_string().contains("had its -shm file replaced"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
