//! From a `sqlite:` URL to open, configured, migrated connections.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sitq_core::{Error, Result};
use sqlx::migrate::{Migrate as _, MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};

/// The schema, embedded at compile time.
static MIGRATIONS: Migrator = sqlx::migrate!();

/// sitq's own bookkeeping table, so that an application keeping its own sqlx
/// migrations in the same file does not see ours as unknown (and vice versa).
const MIGRATIONS_TABLE: &str = "sitq_migrations";

/// Several worker processes share one file and the writer holds the lock for
/// a whole group commit: wait generously rather than fail with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Enough for every distinct statement the backend prepares (a handful of
/// chunk sizes per operation), so the hot path never re-prepares.
const STATEMENT_CACHE: usize = 256;

/// Readers beside the writer when `ConnectOptions::max_connections` is unset.
const DEFAULT_READERS: u32 = 4;

/// What a `sqlite:` URL points at, with the options every connection gets.
#[derive(Debug)]
pub(crate) struct Target {
    /// Options for every connection to the database.
    pub(crate) options: SqliteConnectOptions,
    /// An in-memory database lives only as long as its single connection.
    pub(crate) in_memory: bool,
}

impl Target {
    /// Parses `sqlite://tasks.db`, `sqlite:///abs.db`, `sqlite:tasks.db`,
    /// `sqlite::memory:`, with an optional `?synchronous=FULL` (or `NORMAL`,
    /// `OFF`, `EXTRA`) next to sqlx's own parameters (`mode`, `cache`, …).
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
        if database.is_empty() && !query.is_some_and(|q| q.contains("mode=memory")) {
            return Err(invalid(
                "no database file; use sqlite://tasks.db or sqlite::memory:".into(),
            ));
        }

        // `synchronous` is ours; sqlx rejects parameters it does not know.
        let mut synchronous = SqliteSynchronous::Normal;
        let mut passed = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some((key, value)) if key.eq_ignore_ascii_case("synchronous") => {
                    synchronous = SqliteSynchronous::from_str(value).map_err(|_| {
                        invalid(format!(
                            "unknown synchronous mode {value:?}; use OFF, NORMAL, FULL or EXTRA"
                        ))
                    })?;
                }
                _ if !pair.is_empty() => passed.push(pair),
                _ => {}
            }
        }
        let in_memory = database == ":memory:" || passed.contains(&"mode=memory");
        let sqlx_url = if passed.is_empty() {
            format!("sqlite:{database}")
        } else {
            format!("sqlite:{database}?{}", passed.join("&"))
        };
        let options = SqliteConnectOptions::from_str(&sqlx_url)
            .map_err(|err| invalid(err.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .statement_cache_capacity(STATEMENT_CACHE);
        Ok(Target { options, in_memory })
    }

    /// Creates the database file, readable by its owner only, if it is missing.
    ///
    /// Done before SQLite opens it because SQLite would create it with the
    /// umask's mode (often world-readable), and task payloads may be private.
    /// SQLite gives the `-wal` and `-shm` files the database file's mode.
    pub(crate) fn create_file(&self) -> Result<()> {
        if self.in_memory {
            return Ok(());
        }
        let path: &Path = self.options.get_filename();
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map(drop)
            .map_err(|source| Error::Io {
                op: "creating the SQLite database file",
                source,
            })
    }

    /// Opens the writer's connection and brings the schema up to date.
    pub(crate) async fn connect_writer(&self) -> Result<SqliteConnection> {
        let mut conn = self
            .options
            .connect()
            .await
            .map_err(|err| Error::database("opening the SQLite database", err))?;
        migrate(&mut conn).await?;
        Ok(conn)
    }

    /// A pool of readers beside the writer (WAL lets them read while it writes).
    ///
    /// `None` for an in-memory database: it exists only inside the writer's
    /// connection, so reads go through the writer too.
    pub(crate) fn reader_pool(&self, max_connections: Option<u32>) -> Option<SqlitePool> {
        if self.in_memory {
            return None;
        }
        let options = self.options.clone().pragma("query_only", "ON");
        Some(
            SqlitePoolOptions::new()
                .max_connections(max_connections.unwrap_or(DEFAULT_READERS).max(1))
                .min_connections(0)
                .connect_lazy_with(options),
        )
    }
}

/// Applies pending migrations inside one `BEGIN IMMEDIATE` transaction, so two
/// processes connecting at once take turns: the second waits for the write
/// lock, then finds everything applied.
///
/// This is sqlx's `Migrator::run` spelled out over the public `Migrate`
/// trait: `run` cannot be called here (its `Acquire` bound is "not general
/// enough" inside the `Send` future a connector returns), and spelling it out
/// also lets the bookkeeping table be sitq's own.
async fn migrate(conn: &mut SqliteConnection) -> Result<()> {
    let db = |err: MigrateError| Error::database("migrating the SQLite schema", err);
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|err| db(err.into()))?;
    tx.ensure_migrations_table(MIGRATIONS_TABLE)
        .await
        .map_err(db)?;
    if let Some(version) = tx.dirty_version(MIGRATIONS_TABLE).await.map_err(db)? {
        return Err(db(MigrateError::Dirty(version)));
    }
    let applied: HashMap<i64, _> = tx
        .list_applied_migrations(MIGRATIONS_TABLE)
        .await
        .map_err(db)?
        .into_iter()
        .map(|applied| (applied.version, applied.checksum))
        .collect();
    // Versions applied by a newer sitq are left alone: its schema only adds.
    for migration in MIGRATIONS.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        match applied.get(&migration.version) {
            Some(checksum) if *checksum != migration.checksum => {
                return Err(db(MigrateError::VersionMismatch(migration.version)));
            }
            Some(_) => {}
            None => {
                tx.apply(MIGRATIONS_TABLE, migration).await.map_err(db)?;
            }
        }
    }
    tx.commit().await.map_err(|err| db(err.into()))
}

#[cfg(test)]
mod tests {
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
            assert!(!target.in_memory, "{url}");
            assert_eq!(target.options.get_filename(), Path::new(file), "{url}");
        }
        assert!(Target::parse("sqlite::memory:")?.in_memory);
        assert!(Target::parse("sqlite://:memory:")?.in_memory);
        Ok(())
    }

    #[test]
    fn bad_urls_say_why() {
        for url in [
            "sqlite://",
            "postgres://x",
            "sqlite://a.db?synchronous=SOMETIMES",
        ] {
            assert!(
                matches!(Target::parse(url), Err(Error::InvalidUrl { .. })),
                "{url}"
            );
        }
    }
}
