//! What the multi-process tests share: fresh databases (a SQLite file in the
//! temp directory, a PostgreSQL database of its own on the test server) and
//! child processes of the test binary itself.
#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long a child has to say what it is asked for.
pub const CHILD_WAIT: Duration = Duration::from_secs(60);

/// A path in the temp directory no other test (or run) uses.
pub fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("sitq-{name}-{}-{nanos}", std::process::id()))
}

/// A `sqlite://` URL of a fresh file.
pub fn sqlite_url(name: &str) -> String {
    format!("sqlite://{}", temp_path(name).display())
}

/// This test binary re-run with `test` as its only test and `env` set, its
/// stdin and stdout piped; killed when dropped.
pub struct ChildTest {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl ChildTest {
    pub fn spawn(test: &str, env: &[(&str, &str)]) -> ChildTest {
        let exe = std::env::current_exe().expect("test binary path");
        let mut command = Command::new(exe);
        command
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn a child process");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        ChildTest {
            child,
            stdin,
            stdout,
        }
    }

    /// The rest of the child's next line containing `prefix` (the test
    /// harness prints its own lines too, and may begin one of ours with
    /// `test NAME ... `).
    pub async fn line(&mut self, prefix: &str) -> String {
        let read = async {
            while let Some(line) = self.stdout.next_line().await.expect("read the child") {
                if let Some(at) = line.find(prefix) {
                    return line[at + prefix.len()..].trim().to_owned();
                }
            }
            panic!("the child exited before printing {prefix:?}");
        };
        tokio::time::timeout(CHILD_WAIT, read)
            .await
            .unwrap_or_else(|_| panic!("no {prefix:?} from a child within {CHILD_WAIT:?}"))
    }

    /// Closes its stdin and waits for it to exit successfully.
    pub async fn finish(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(CHILD_WAIT, self.child.wait())
            .await
            .expect("the child exits")
            .expect("wait");
        assert!(status.success(), "a child failed: {status}");
    }
}

/// Which backend a test runs on (for `backend_tests!`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A database on the PostgreSQL test server.
    Postgres,
}

/// A database of its own on the PostgreSQL test server, dropped by
/// [`TestDb::drop`].
pub struct TestDb {
    server: String,
    name: String,
    pub url: String,
}

impl TestDb {
    const SERVER_VAR: &str = "SITQ_TEST_POSTGRES_URL";

    /// A fresh database, or `None` (after saying so) when no server is
    /// configured. Panics then if `CI=true`: skipping would hide that the
    /// tests never ran.
    pub async fn create(test: &str) -> Option<TestDb> {
        use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

        let server = match std::env::var(Self::SERVER_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                panic!(
                    "{} is not set but CI=true: the PostgreSQL tests must run in CI",
                    Self::SERVER_VAR
                )
            }
            _ => {
                eprintln!(
                    "skipped: PostgreSQL tests need {} (or `cargo xtask test`)",
                    Self::SERVER_VAR
                );
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        let name = format!("sitq_{test}_{}_{nanos}", std::process::id());
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
        use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

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
pub fn with_database(url: &str, name: &str) -> String {
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

/// Defines `mod NAME { sqlite, postgres }` tests calling `NAME(&db)` with a
/// fresh database of each backend, for test crates whose `support` module
/// has a `Db` (`create(Backend, test) -> Option<Db>`, `finish()`) and a
/// `Backend` (the CLI's and the dashboard's).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::support::{Backend, Db};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = Db::create(Backend::Sqlite, stringify!($name)).await.expect("sqlite");
                super::$name(&db).await;
                db.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = Db::create(Backend::Postgres, stringify!($name)).await else {
                    return;
                };
                super::$name(&db).await;
                db.finish().await;
            }
        }
    )*};
}
