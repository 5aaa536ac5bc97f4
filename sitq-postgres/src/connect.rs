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
            .map_err(|error| match tls_failure(&error) {
                Some(reason) => Error::database(OP, reason),
                None => Error::database(OP, error),
            })?;
        // Its job is done; failing to say goodbye politely changes nothing.
        if let Err(error) = sqlx::Connection::close(connection).await {
            tracing::debug!(%error, "closing the probe connection");
        }
        Ok(())
    }
}

/// PostgreSQL's SQLSTATE for a privilege the role lacks (`insufficient_privilege`).
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// Wraps a driver error from doing `op`; the pool's errors say what they
/// usually mean, since sqlx's own words ("pool timed out") do not, and a
/// privilege the role lacks is [`Error::PermissionDenied`].
pub(crate) fn db_error(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| {
        if let Some(reason) = tls_failure(&error) {
            return Error::database(op, reason);
        }
        match error {
            sqlx::Error::Database(error)
                if error.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE) =>
            {
                Error::PermissionDenied {
                    op,
                    reason: error.message().to_owned(),
                }
            }
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
}

/// What `error` means for the user when it is a failed TLS handshake; sqlx
/// reports rustls' refusal of the server's certificate as an I/O error,
/// and rustls names the check that failed in its own terms
/// (`UnknownIssuer`, `certificate not valid for name`).
fn tls_failure(error: &sqlx::Error) -> Option<String> {
    let text = match error {
        sqlx::Error::Tls(error) => error.to_string(),
        sqlx::Error::Io(error) => error.to_string(),
        _ => return None,
    };
    let is_tls = matches!(error, sqlx::Error::Tls(_))
        || text.contains("peer certificate")
        || text.contains("received fatal alert");
    is_tls.then(|| tls_reason(&text))
}

/// [`tls_failure`]'s words for rustls' `error`.
fn tls_reason(error: &str) -> String {
    let hint = if error.contains("UnknownIssuer") || error.contains("BadSignature") {
        "the server's certificate is not signed by a trusted authority: with \
         sslmode=verify-ca or verify-full, sslrootcert=PATH in the URL must name the PEM file of \
         the authority that signed it"
    } else if error.contains("NotValidForName") || error.contains("not valid for name") {
        "the server's certificate is not valid for the host in the URL: with \
         sslmode=verify-full, connect by a name the certificate holds"
    } else if error.contains("Expired") || error.contains("NotValidYet") {
        "the server's certificate is outside its validity period"
    } else {
        "the TLS handshake with the server failed"
    };
    format!("{hint} (TLS: {error})")
}

/// Applies sitq's migrations with a connection from `pool`, unless every
/// one of them is applied already.
///
/// That look comes first, in one query, so that a role without the
/// privilege to change the schema (a producer or a worker, see
/// [`Roles`](crate::Roles)) connects to a current database: sqlx's migrator
/// would start with `CREATE TABLE IF NOT EXISTS`, which needs `CREATE` on
/// the schema even when the table exists. When something is left to apply,
/// the migrator runs, and is safe when many processes connect at once: it
/// takes a PostgreSQL advisory lock (per database) before it looks at the
/// migrations table, and releases it when done.
pub(crate) async fn migrate(pool: &PgPool) -> Result<()> {
    const OP: &str = "migrating the sitq schema";
    let applied = match applied_migrations(pool).await {
        Ok(applied) if is_current(&applied) => return Ok(()),
        Ok(applied) => applied,
        // No migrations table yet: the migrator creates it.
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some(UNDEFINED_TABLE) => {
            Vec::new()
        }
        Err(error) => return Err(db_error("reading which sitq migrations are applied")(error)),
    };
    migrator().run(pool).await.map_err(|error| {
        let error = match error {
            sqlx::migrate::MigrateError::Execute(error)
            | sqlx::migrate::MigrateError::ExecuteMigration(error, _) => db_error(OP)(error),
            other => Error::database(OP, other),
        };
        match error {
            Error::PermissionDenied { op, reason } => {
                let at = applied
                    .iter()
                    .filter(|migration| migration.success)
                    .map(|migration| migration.version)
                    .max()
                    .unwrap_or(0);
                Error::PermissionDenied {
                    op,
                    reason: format!(
                        "{reason}: the database's sitq schema is at version {at} and this \
                         build of sitq needs version {}, which this role may not create; \
                         connect once as a role that may (the tables' owner, or a member of \
                         the admin role of `sitq postgres roles`), then connect as this one \
                         again",
                        latest_migration()
                    ),
                }
            }
            other => other,
        }
    })
}

/// PostgreSQL's SQLSTATE for a table that does not exist (`undefined_table`).
const UNDEFINED_TABLE: &str = "42P01";

/// A row of [`MIGRATIONS_TABLE`].
#[derive(Debug, sqlx::FromRow)]
struct Applied {
    version: i64,
    checksum: Vec<u8>,
    success: bool,
}

/// Every row of [`MIGRATIONS_TABLE`].
async fn applied_migrations(pool: &PgPool) -> std::result::Result<Vec<Applied>, sqlx::Error> {
    sqlx::query_as("SELECT version, checksum, success FROM sitq_migrations ORDER BY version")
        .fetch_all(pool)
        .await
}

/// Whether `applied` is exactly this build's migrations, each applied in
/// full and unchanged: what would leave sqlx's migrator nothing to do and
/// nothing to complain about (it would report a changed, unknown or failed
/// migration, which it therefore runs to do).
fn is_current(applied: &[Applied]) -> bool {
    let migrator = migrator();
    let wanted: Vec<_> = migrator
        .iter()
        .filter(|migration| !migration.migration_type.is_down_migration())
        .collect();
    applied.len() == wanted.len()
        && applied.iter().all(|row| {
            row.success
                && wanted.iter().any(|migration| {
                    migration.version == row.version && *migration.checksum == *row.checksum
                })
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
