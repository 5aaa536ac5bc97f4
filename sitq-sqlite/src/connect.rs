//! From a `sqlite:` URL to open, configured, migrated connections.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use sitq_core::{Error, Result};

/// Several worker processes share one file and the writer holds the lock for
/// a whole group commit: wait generously rather than fail with "database is locked".
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Enough for every distinct statement the backend prepares, so the hot
/// path never parses SQL again.
const STATEMENT_CACHE: usize = 64;

/// The schema, in order. A version is applied once, in the transaction that
/// records it; versions applied by a newer sitq are left alone (its schema
/// only adds).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "create tasks",
        include_str!("../migrations/0001_create_tasks.sql"),
    ),
    (
        2,
        "queue control",
        include_str!("../migrations/0002_queue_control.sql"),
    ),
    (
        3,
        "unique tasks",
        include_str!("../migrations/0003_unique_tasks.sql"),
    ),
    (
        4,
        "schedules",
        include_str!("../migrations/0004_schedules.sql"),
    ),
    (
        5,
        "task snoozes",
        include_str!("../migrations/0005_task_snoozes.sql"),
    ),
    (
        6,
        "cancel retry",
        include_str!("../migrations/0006_cancel_retry.sql"),
    ),
    (
        7,
        "workflows",
        include_str!("../migrations/0007_workflows.sql"),
    ),
    (
        8,
        "operations",
        include_str!("../migrations/0008_operations.sql"),
    ),
    (
        9,
        "claim fence",
        include_str!("../migrations/0009_claim_fence.sql"),
    ),
];

/// The newest schema version this build knows.
pub(crate) fn newest_migration() -> i64 {
    MIGRATIONS.last().map_or(0, |(version, ..)| *version)
}

/// sitq's own bookkeeping table (the shape sqlx's migrator used, so files
/// created by earlier versions are recognised).
const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS sitq_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// SQLite's `synchronous` setting.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Synchronous {
    Off,
    Normal,
    Full,
    Extra,
}

impl Synchronous {
    fn parse(value: &str) -> Option<Synchronous> {
        match value.to_ascii_uppercase().as_str() {
            "OFF" => Some(Synchronous::Off),
            "NORMAL" => Some(Synchronous::Normal),
            "FULL" => Some(Synchronous::Full),
            "EXTRA" => Some(Synchronous::Extra),
            _ => None,
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Off => "PRAGMA synchronous = OFF",
            Synchronous::Normal => "PRAGMA synchronous = NORMAL",
            Synchronous::Full => "PRAGMA synchronous = FULL",
            Synchronous::Extra => "PRAGMA synchronous = EXTRA",
        }
    }
}

/// What a `sqlite:` URL points at.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The database file; `None` for a private in-memory database.
    pub(crate) path: Option<PathBuf>,
    /// `synchronous` for every connection.
    pub(crate) synchronous: Synchronous,
}

impl Target {
    /// Parses `sqlite://tasks.db`, `sqlite:///abs.db`, `sqlite:tasks.db`,
    /// `sqlite::memory:`, with an optional `?synchronous=FULL` (or `NORMAL`,
    /// `OFF`, `EXTRA`); `mode=memory` also asks for memory.
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("sqlite:")
            .ok_or_else(|| invalid("expected a sqlite: URL, e.g. sqlite://tasks.db".into()))?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (database, query) = match rest.split_once('?') {
            Some((database, query)) => (database, Some(query)),
            None => (rest, None),
        };
        let mut synchronous = Synchronous::Normal;
        let mut memory = database == ":memory:";
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some((key, value)) if key.eq_ignore_ascii_case("synchronous") => {
                    synchronous = Synchronous::parse(value).ok_or_else(|| {
                        invalid(format!(
                            "unknown synchronous mode {value:?}; use OFF, NORMAL, FULL or EXTRA"
                        ))
                    })?;
                }
                Some(("mode", "memory")) => memory = true,
                _ if pair.is_empty() => {}
                _ => {
                    return Err(invalid(format!(
                        "unknown parameter {pair:?}; the one parameter is synchronous=OFF|NORMAL|FULL|EXTRA"
                    )));
                }
            }
        }
        if memory {
            return Ok(Target {
                path: None,
                synchronous,
            });
        }
        if database.is_empty() {
            return Err(invalid(
                "no database file; use sqlite://tasks.db or sqlite::memory:".into(),
            ));
        }
        Ok(Target {
            path: Some(PathBuf::from(database)),
            synchronous,
        })
    }

    /// Refuses a database file that does not exist, creating nothing: for
    /// admin tools (`ConnectOptions::create_missing` off), where a mistyped
    /// path must not become a new, empty database. The error names the
    /// absolute path, and the working directory a relative one resolved against.
    pub(crate) fn require_existing(&self, url: &str) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let absolute = absolute(path);
        match std::fs::exists(&absolute) {
            Ok(true) => Ok(()),
            Ok(false) if path.is_relative() => {
                let cwd = std::env::current_dir()
                    .map(|cwd| cwd.display().to_string())
                    .unwrap_or_else(|_| "(unknown)".into());
                Err(Error::Config(format!(
                    "no sitq database at {} ({url} resolves against the working directory \
                     {cwd}); check the path, or use sqlite:///absolute/path",
                    absolute.display()
                )))
            }
            Ok(false) => Err(Error::Config(format!(
                "no sitq database at {}; check the path",
                absolute.display()
            ))),
            Err(source) => Err(Error::Io {
                op: "looking for the SQLite database file",
                source,
            }),
        }
    }

    /// Where the database is: `sqlite:///abs/path` (canonical, once the
    /// file exists) or `sqlite::memory:`.
    pub(crate) fn location(&self) -> String {
        match &self.path {
            Some(path) => {
                let path = std::fs::canonicalize(path).unwrap_or_else(|_| absolute(path));
                format!("sqlite://{}", path.display())
            }
            None => "sqlite::memory:".to_owned(),
        }
    }

    /// Creates the database file, readable by its owner only, if it is missing.
    ///
    /// Done before SQLite opens it because SQLite would create it with the
    /// umask's mode (often world-readable), and task payloads may be private.
    /// SQLite gives the `-wal` and `-shm` files the database file's mode.
    pub(crate) fn create_file(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map(drop)
            .map_err(|source| {
                Error::database(
                    "creating the SQLite database file",
                    format!("{}: {source}", absolute(path).display()),
                )
            })?;
        warn_if_others_may_write(path);
        Ok(())
    }

    /// Opens the writer's connection: WAL, the schema brought up to date.
    pub(crate) fn open_writer(&self) -> Result<Connection> {
        let conn = self.open(OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        if self.path.is_some() {
            use_wal(&conn)?;
        }
        migrate(&conn)?;
        Ok(conn)
    }

    /// Opens a reader's connection (WAL lets it read while the writer writes).
    pub(crate) fn open_reader(&self) -> Result<Connection> {
        let conn = self.open(OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.execute_batch("PRAGMA query_only = ON")
            .map_err(db("configuring a SQLite reader"))?;
        Ok(conn)
    }

    /// Opens a connection with the busy timeout in force before anything
    /// else runs, so that opening beside other processes waits instead of
    /// failing with "database is locked".
    fn open(&self, flags: OpenFlags) -> Result<Connection> {
        let op = "opening the SQLite database";
        let flags = flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = match &self.path {
            Some(path) => Connection::open_with_flags(path, flags).map_err(|err| {
                Error::database(
                    op,
                    format!("{}: {err}{}", absolute(path).display(), os_reason(path)),
                )
            })?,
            None => Connection::open_in_memory().map_err(db(op))?,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db(op))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(self.synchronous.pragma())
            .map_err(db(op))?;
        conn.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(db(op))?;
        Ok(conn)
    }
}

/// SQLite's open errors do not say why the operating system refused; this
/// asks it: ` (No such file or directory (os error 2))`, or nothing.
fn os_reason(path: &Path) -> String {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) => String::new(),
        Err(err) => format!(" ({err})"),
    }
}

/// Warns when the database's directory is writable by other users: they
/// could delete or replace the file (and its `-wal` and `-shm`) under the
/// queue, whatever the file's own mode.
fn warn_if_others_may_write(path: &Path) {
    let absolute = absolute(path);
    let Some(directory) = absolute.parent() else {
        return;
    };
    if let Some(mode) = others_may_write(directory) {
        tracing::warn!(
            directory = %directory.display(),
            mode = format!("{mode:o}"),
            "the SQLite database's directory is writable by every user: anyone can delete or replace the queue's files; use a directory only the app's user can write"
        );
    }
}

/// The mode of `directory` when every user may create and remove files in
/// it (other-writable and not sticky: in a sticky one such as /tmp, users
/// remove only their own files).
fn others_may_write(directory: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(directory).ok()?.permissions().mode() & 0o7777;
    (mode & 0o002 != 0 && mode & 0o1000 == 0).then_some(mode)
}

/// `path` made absolute against the working directory (as SQLite opens it),
/// or left as it is when there is none.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// `map_err` for a rusqlite error during `op`.
pub(crate) fn db(op: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |err| Error::database(op, err)
}

/// Switches the file to WAL. The switch takes an exclusive lock, and SQLite
/// does not always wait for it through the busy handler, so a connect racing
/// others retries for as long as the busy timeout allows.
fn use_wal(conn: &Connection) -> Result<()> {
    let op = "switching the SQLite database to WAL";
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        }) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(Error::database(
                    op,
                    format!(
                        "SQLite kept journal mode {mode:?}; is the file on a network file system?"
                    ),
                ));
            }
            Err(err) if is_busy(&err) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(err) => return Err(Error::database(op, err)),
        }
    }
}

/// Whether `err` is SQLite's "database is locked" (or busy).
pub(crate) fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Applies missing migrations inside one `BEGIN IMMEDIATE` transaction, so
/// two processes connecting at once take turns: the second waits for the
/// write lock, then finds everything applied.
fn migrate(conn: &Connection) -> Result<()> {
    let op = "migrating the SQLite schema";
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match migrate_once(conn) {
            Err(err) if is_busy(&err) && Instant::now() < deadline => {
                let _ = conn.execute_batch("ROLLBACK");
                std::thread::sleep(Duration::from_millis(5));
            }
            result => return result.map_err(db(op)),
        }
    }
}

fn migrate_once(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        conn.execute_batch(MIGRATIONS_TABLE)?;
        for (version, description, sql) in MIGRATIONS {
            let applied: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM sitq_migrations WHERE version = ?1)",
                [version],
                |row| row.get(0),
            )?;
            if applied {
                continue;
            }
            let started = Instant::now();
            conn.execute_batch(sql)?;
            conn.execute(
                "INSERT INTO sitq_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, X'', ?3)",
                rusqlite::params![
                    version,
                    description,
                    i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX)
                ],
            )?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any text is a target or an error naming what is wrong.
        #[test]
        fn any_url_parses_or_is_refused(url in proptest::prelude::any::<String>()) {
            let _ = Target::parse(&url);
            let _ = Target::parse(&format!("sqlite://{url}"));
            let _ = Target::parse(&format!("sqlite:///tmp/x.db?{url}"));
        }
    }

    #[test]
    fn directories_others_may_write_are_found() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("sitq-open-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let set = |mode| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode));
        set(0o777).expect("chmod");
        assert_eq!(others_may_write(&dir), Some(0o777));
        set(0o1777).expect("chmod");
        assert_eq!(others_may_write(&dir), None, "sticky, like /tmp");
        set(0o755).expect("chmod");
        assert_eq!(others_may_write(&dir), None);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    use super::*;

    #[test]
    fn url_forms() -> Result<()> {
        for (url, file) in [
            ("sqlite://tasks.db", "tasks.db"),
            ("sqlite:///abs/path.db", "/abs/path.db"),
            ("sqlite:tasks.db", "tasks.db"),
            ("sqlite://tasks.db?synchronous=FULL", "tasks.db"),
        ] {
            let target = Target::parse(url)?;
            assert_eq!(target.path.as_deref(), Some(Path::new(file)), "{url}");
        }
        assert_eq!(
            Target::parse("sqlite://tasks.db?synchronous=full")?.synchronous,
            Synchronous::Full
        );
        assert!(Target::parse("sqlite::memory:")?.path.is_none());
        assert!(Target::parse("sqlite://:memory:")?.path.is_none());
        Ok(())
    }

    #[test]
    fn bad_urls_say_why() {
        for url in [
            "sqlite://",
            "postgres://x",
            "sqlite://a.db?synchronous=SOMETIMES",
            "sqlite://a.db?cache=shared",
        ] {
            assert!(
                matches!(Target::parse(url), Err(Error::InvalidUrl { .. })),
                "{url}"
            );
        }
    }
}
