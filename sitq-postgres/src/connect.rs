//! From a URL to a migrated database and a connection pool.

use std::str::FromStr;
use std::time::Duration;

use sitq_core::{Error, Result};
use sqlx::ConnectOptions as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// How long a call waits for a connection when the URL does not say
/// (`connect_timeout`): long enough for a busy pool, short enough that a dead
/// server is reported instead of hanging a worker.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pool size when [`sitq_core::ConnectOptions::max_connections`] is unset.
pub(crate) const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// A pooled connection idle for longer than this is pinged before use. A
/// busier one is used straight away: a ping before every call (sqlx's
/// default) would double each call's round trips, and a connection that
/// died under load fails its call, which the worker retries.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// `application_name` of the pool's connections, unless the URL sets one.
const APPLICATION_NAME: &str = "sitq";

/// `application_name` of the listening connection, so operators (and tests)
/// can find it in `pg_stat_activity`.
pub(crate) const LISTENER_APPLICATION_NAME: &str = "sitq-listener";

/// The table that records applied migrations. Not sqlx's default
/// `_sqlx_migrations`: an application that runs its own sqlx migrations in the
/// same database would otherwise see sitq's as unknown versions, and sitq theirs.
const MIGRATIONS_TABLE: &str = "sitq_migrations";

/// Where and how to connect, parsed from a URL.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// sqlx's options for the pool's connections.
    pub(crate) connect: PgConnectOptions,
    /// Bounds connecting and waiting for a pooled connection.
    pub(crate) connect_timeout: Duration,
}

impl Settings {
    /// Parses `url`: sqlx's format plus libpq's `connect_timeout` (seconds),
    /// which sqlx ignores and which sitq uses as the pool's acquire timeout.
    pub(crate) fn parse(url: &str) -> Result<Settings> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact(url),
            reason,
        };
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, query),
            None => (url, ""),
        };
        let mut connect_timeout = DEFAULT_CONNECT_TIMEOUT;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.strip_prefix("connect_timeout=") {
                Some(seconds) => {
                    connect_timeout = seconds
                        .parse::<u64>()
                        .ok()
                        .filter(|&seconds| seconds > 0)
                        .map(Duration::from_secs)
                        .ok_or_else(|| {
                            invalid(format!(
                                "connect_timeout must be a positive number of seconds, not {seconds:?}"
                            ))
                        })?;
                }
                None => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut connect =
            PgConnectOptions::from_str(&url).map_err(|error| invalid(error.to_string()))?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name(APPLICATION_NAME);
        }
        Ok(Settings {
            connect,
            connect_timeout,
        })
    }

    /// Where the database is, without user or password:
    /// `postgres://host:port/database`.
    pub(crate) fn location(&self) -> String {
        let host = self.connect.get_host();
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        // PostgreSQL's default database is the user's name.
        let database = self
            .connect
            .get_database()
            .unwrap_or(self.connect.get_username());
        format!("postgres://{host}:{}/{database}", self.connect.get_port())
    }

    /// The pool for every call except listening. Connections are opened on
    /// demand, so the pool recovers by itself when the server comes back.
    pub(crate) fn pool(&self, max_connections: Option<u32>) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1))
            .min_connections(0)
            .acquire_timeout(self.connect_timeout)
            .test_before_acquire(false)
            .before_acquire(|connection, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_IDLE_AFTER {
                        sqlx::Connection::ping(connection).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(self.connect.clone())
    }

    /// A pool of one connection for the listener; sqlx's `PgListener` takes
    /// its replacement connection from it after a disconnect.
    pub(crate) fn listener_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(self.connect_timeout)
            // A listening connection is idle by nature; never retire it for that.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(
                self.connect
                    .clone()
                    .application_name(LISTENER_APPLICATION_NAME),
            )
    }

    /// Checks that the server is there by opening one connection directly:
    /// through a pool, whose retries turn "connection refused" into a
    /// timeout after `connect_timeout`, the caller would wait and then get
    /// the vaguer error.
    pub(crate) async fn probe(&self) -> Result<()> {
        const OP: &str = "connecting to PostgreSQL";
        let connection = tokio::time::timeout(self.connect_timeout, self.connect.connect())
            .await
            .map_err(|_| {
                Error::database(
                    OP,
                    format!(
                        "no connection to {}:{} within {:?} (set connect_timeout=SECONDS in the URL to change)",
                        self.connect.get_host(),
                        self.connect.get_port(),
                        self.connect_timeout
                    ),
                )
            })?
            .map_err(|error| Error::database(OP, error))?;
        // Its job is done; failing to say goodbye politely changes nothing.
        if let Err(error) = sqlx::Connection::close(connection).await {
            tracing::debug!(%error, "closing the probe connection");
        }
        Ok(())
    }
}

/// Wraps a driver error from doing `op`; the pool's errors say what they
/// usually mean, since sqlx's own words ("pool timed out") do not.
pub(crate) fn db_error(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| match error {
        sqlx::Error::PoolTimedOut => Error::database(
            op,
            "no connection to PostgreSQL within connect_timeout: the server is down or \
             unreachable, or every pooled connection is busy (see max_connections)",
        ),
        sqlx::Error::PoolClosed => Error::database(op, "the sitq backend was closed"),
        sqlx::Error::Io(error) => Error::database(
            op,
            format!(
                "the connection to PostgreSQL broke ({error}): the server is down or \
                 unreachable, or restarted; the next call connects again"
            ),
        ),
        other => Error::database(op, other),
    }
}

/// Applies sitq's migrations with a connection from `pool`.
///
/// Safe when many processes connect at once: sqlx takes a PostgreSQL
/// advisory lock (per database) before it looks at the migrations table, and
/// releases it when done.
pub(crate) async fn migrate(pool: &PgPool) -> Result<()> {
    migrator().run(pool).await.map_err(|error| match error {
        sqlx::migrate::MigrateError::Execute(error) => db_error("migrating the sitq schema")(error),
        other => Error::database("migrating the sitq schema", other),
    })
}

/// sitq's migrations, recorded in [`MIGRATIONS_TABLE`].
fn migrator() -> Migrator {
    let mut migrator: Migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// The newest migration this build has.
pub(crate) fn latest_migration() -> i64 {
    migrator()
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0)
}

/// The newest migration applied to the database, from [`MIGRATIONS_TABLE`];
/// 0 when none is.
pub(crate) async fn applied_migration(pool: &PgPool) -> Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(max(version), 0)::bigint FROM sitq_migrations WHERE success",
    )
    .fetch_one(pool)
    .await
    .map_err(db_error("reading the schema version"))
}

/// `url` with its password replaced, for error messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_is_taken_out_of_the_url() {
        let settings =
            Settings::parse("postgres://u@localhost:5433/db?connect_timeout=3&sslmode=disable")
                .expect("valid URL");
        assert_eq!(settings.connect_timeout, Duration::from_secs(3));
        assert_eq!(settings.connect.get_port(), 5433);
        assert_eq!(settings.connect.get_database(), Some("db"));
        assert_eq!(settings.connect.get_application_name(), Some("sitq"));
    }

    #[test]
    fn a_bad_connect_timeout_is_an_invalid_url_without_the_password() {
        let err = Settings::parse("postgres://u:secret@localhost/db?connect_timeout=soon")
            .expect_err("invalid timeout");
        let message = err.to_string();
        assert!(message.contains("connect_timeout"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn the_url_may_name_the_application() {
        let settings =
            Settings::parse("postgresql://localhost/db?application_name=mailer").expect("valid");
        assert_eq!(settings.connect.get_application_name(), Some("mailer"));
    }
}
