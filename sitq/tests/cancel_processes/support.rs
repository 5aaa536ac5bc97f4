//! A fresh PostgreSQL database per test (a copy of the helper in
//! processes.rs, kept beside the test that uses it).

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

const SERVER_VAR: &str = "SITQ_TEST_POSTGRES_URL";

/// A database of its own on the test server, dropped by [`TestDb::drop`].
pub struct TestDb {
    server: String,
    name: String,
    pub url: String,
}

impl TestDb {
    /// A fresh database, or `None` (after saying so) when no server is
    /// configured. Panics then if `CI=true`: skipping would hide that the
    /// tests never ran.
    pub async fn create(test: &str) -> Option<TestDb> {
        let server = match std::env::var(SERVER_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("{SERVER_VAR} is not set but CI=true: the PostgreSQL tests must run in CI")
            }
            _ => {
                eprintln!("skipped: PostgreSQL tests need {SERVER_VAR} (or `cargo xtask test`)");
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        let name = format!("sitq_cancel_{test}_{}_{nanos}", std::process::id());
        let mut admin = PgConnection::connect(&server)
            .await
            .expect("connect to the test server");
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = with_database(&server, &name);
        Some(TestDb { server, name, url })
    }

    /// Drops the database, forcing out connections left behind.
    pub async fn drop(self) {
        let mut admin = PgConnection::connect(&self.server)
            .await
            .expect("connect to the test server");
        admin
            .execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await
            .expect("drop the test database");
        admin.close().await.ok();
    }
}

/// `url` pointing at database `name` instead, keeping its query string.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(base, query)| (base, Some(query)));
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let mut url = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}
