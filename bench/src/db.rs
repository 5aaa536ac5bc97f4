//! Fresh databases for each workload, raw connections to them, and the SQL
//! that checks what sitq stored.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::Result;
use crate::tasks::NOOP_NAME;

/// The two backends sitq ships.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Embedded SQLite files.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Kind {
    /// The name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    }
}

/// Where fresh databases come from.
#[derive(Clone, Debug)]
pub enum Provider {
    /// Files in a private temporary directory (deleted on [`Provider::cleanup`]).
    Sqlite {
        /// The directory.
        dir: PathBuf,
        /// `NORMAL` or `FULL`.
        synchronous: String,
    },
    /// Databases created on a server, from an admin URL (`postgres://…/postgres`).
    Postgres {
        /// The admin URL.
        admin_url: String,
    },
}

/// One fresh database.
#[derive(Clone, Debug)]
pub struct Fresh {
    /// Which backend.
    pub kind: Kind,
    /// The URL sitq connects to.
    pub url: String,
    /// What to drop afterwards: a file path or a database name.
    name: String,
}

impl Provider {
    /// A provider of SQLite files under a new temporary directory.
    pub fn sqlite(synchronous: &str) -> Result<Provider> {
        let nanos = crate::tasks::now_micros();
        let dir = std::env::temp_dir().join(format!("sitq-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|err| format!("creating {}: {err}", dir.display()))?;
        Ok(Provider::Sqlite {
            dir,
            synchronous: synchronous.to_ascii_uppercase(),
        })
    }

    /// Which backend this provides.
    pub fn kind(&self) -> Kind {
        match self {
            Provider::Sqlite { .. } => Kind::Sqlite,
            Provider::Postgres { .. } => Kind::Postgres,
        }
    }

    /// A new, empty database named after `label`.
    pub async fn fresh(&self, label: &str) -> Result<Fresh> {
        let label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        match self {
            Provider::Sqlite { dir, synchronous } => {
                let path = dir.join(format!("{label}.db"));
                let path = path.display().to_string();
                Ok(Fresh {
                    kind: Kind::Sqlite,
                    url: format!("sqlite://{path}?synchronous={synchronous}"),
                    name: path,
                })
            }
            Provider::Postgres { admin_url } => {
                let name = format!("sitq_bench_{label}_{}", std::process::id());
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(admin_url)
                    .await
                    .map_err(|err| format!("connecting to {admin_url}: {err}"))?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await?;
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                Ok(Fresh {
                    kind: Kind::Postgres,
                    url: with_database(admin_url, &name),
                    name,
                })
            }
        }
    }

    /// Drops `fresh` (its file, or its database).
    pub async fn drop_database(&self, fresh: &Fresh) {
        match self {
            Provider::Sqlite { .. } => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", fresh.name));
                }
            }
            Provider::Postgres { admin_url } => {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(admin_url)
                    .await
                {
                    let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", fresh.name);
                    let _ = sqlx::query(AssertSqlSafe(drop)).execute(&admin).await;
                    admin.close().await;
                }
            }
        }
    }

    /// Removes what the provider made itself (the temporary directory).
    pub fn cleanup(&self) {
        if let Provider::Sqlite { dir, .. } = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The server's durability settings, as `fsync=on synchronous_commit=on`.
pub async fn postgres_durability(admin_url: &str) -> Result<String> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .map_err(|err| format!("connecting to {admin_url}: {err}"))?;
    let mut settings = Vec::new();
    for name in ["fsync", "synchronous_commit"] {
        let value: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(&admin)
            .await?;
        settings.push(format!("{name}={value}"));
    }
    admin.close().await;
    Ok(settings.join(" "))
}

/// `url` with its database (the path) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// A raw connection pool to a database, for the ceiling and for checks.
#[derive(Clone, Debug)]
pub enum Raw {
    /// SQLite, with the same settings sitq uses.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Opens a raw pool of `connections` to the SQLite file at `path` with WAL,
/// `synchronous` and a busy timeout: the settings the issue fixes for both sides.
pub async fn sqlite_pool(path: &str, synchronous: &str, connections: u32) -> Result<SqlitePool> {
    let synchronous = SqliteSynchronous::from_str(synchronous)
        .map_err(|err| format!("synchronous={synchronous}: {err}"))?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(Duration::from_secs(10));
    Ok(SqlitePoolOptions::new()
        .max_connections(connections)
        .connect_with(options)
        .await
        .map_err(|err| format!("opening {path}: {err}"))?)
}

impl Fresh {
    /// The SQLite file (for PostgreSQL, the database's name).
    pub fn path(&self) -> &str {
        &self.name
    }

    /// A raw pool of `connections` to this database.
    pub async fn raw(&self, synchronous: &str, connections: u32) -> Result<Raw> {
        match self.kind {
            Kind::Sqlite => Ok(Raw::Sqlite(
                sqlite_pool(&self.name, synchronous, connections).await?,
            )),
            Kind::Postgres => Ok(Raw::Postgres(
                PgPoolOptions::new()
                    .max_connections(connections)
                    .connect(&self.url)
                    .await
                    .map_err(|err| format!("connecting to {}: {err}", self.url))?,
            )),
        }
    }
}

impl Raw {
    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            Raw::Sqlite(pool) => pool.close().await,
            Raw::Postgres(pool) => pool.close().await,
        }
    }

    /// How many no-op tasks sitq stored as succeeded at the first attempt,
    /// and how many no-op tasks there are in all.
    pub async fn noop_tally(&self) -> Result<(i64, i64)> {
        const SQL: &str = "SELECT \
             COALESCE(SUM(CASE WHEN status = 'succeeded' AND attempts = 1 THEN 1 ELSE 0 END), 0), \
             COUNT(*) FROM sitq_tasks WHERE name = ";
        let tally = match self {
            Raw::Sqlite(pool) => {
                sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(format!("{SQL}?1")))
                    .bind(NOOP_NAME)
                    .fetch_one(pool)
                    .await?
            }
            Raw::Postgres(pool) => {
                sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(format!("{SQL}$1")))
                    .bind(NOOP_NAME)
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(tally)
    }

    /// The columns of `sitq_tasks` other than `id`, read from the schema
    /// itself so the filler follows whatever the migrations made.
    async fn task_columns(&self) -> Result<Vec<String>> {
        let columns: Vec<String> = match self {
            Raw::Sqlite(pool) => {
                sqlx::query_scalar("SELECT name FROM pragma_table_info('sitq_tasks') ORDER BY cid")
                    .fetch_all(pool)
                    .await?
            }
            Raw::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns \
                     WHERE table_name = 'sitq_tasks' AND table_schema = current_schema() \
                     ORDER BY ordinal_position",
                )
                .fetch_all(pool)
                .await?
            }
        };
        let columns: Vec<String> = columns.into_iter().filter(|c| c != "id").collect();
        if columns.is_empty() {
            return Err("no table sitq_tasks: has the schema changed?".into());
        }
        Ok(columns)
    }

    /// Inserts `count` copies of the row `template` (every column but `id`),
    /// in transactions of at most `chunk`, calling `progress` after each.
    pub async fn clone_rows(
        &self,
        template: i64,
        count: u64,
        chunk: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<()> {
        let columns = self.task_columns().await?.join(", ");
        let mut done = 0;
        while done < count {
            let take = chunk.min(count - done);
            let take_i64 = i64::try_from(take).map_err(|_| "chunk too large")?;
            match self {
                Raw::Sqlite(pool) => {
                    let sql = format!(
                        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1) \
                         INSERT INTO sitq_tasks ({columns}) \
                         SELECT {columns} FROM sitq_tasks, n WHERE id = ?2"
                    );
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(take_i64)
                        .bind(template)
                        .execute(pool)
                        .await?;
                }
                Raw::Postgres(pool) => {
                    let sql = format!(
                        "INSERT INTO sitq_tasks ({columns}) \
                         SELECT {columns} FROM sitq_tasks, generate_series(1, $1) WHERE id = $2"
                    );
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(take_i64)
                        .bind(template)
                        .execute(pool)
                        .await?;
                }
            }
            done += take;
            progress(done);
        }
        // A server's autovacuum would have analyzed a table this size; SQLite
        // has no such thing, and sitq's own settings decide its plans there.
        if let Raw::Postgres(pool) = self {
            sqlx::query("ANALYZE sitq_tasks").execute(pool).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(
            with_database("postgresql://u@%2Ftmp/postgres", "x"),
            "postgresql://u@%2Ftmp/x"
        );
    }
}
