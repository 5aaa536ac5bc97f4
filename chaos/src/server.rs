//! Faults of the PostgreSQL server: a restart with `pg_ctl restart -m
//! immediate` (the command line comes from `cargo xtask chaos`, which owns
//! the throw-away cluster), and terminating every client connection of the
//! database with `pg_terminate_backend`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use sqlx::Connection;
use tokio::process::Command;

use crate::Result;

/// How long a restart may take before the run fails.
const RESTART_WITHIN: Duration = Duration::from_secs(120);

/// Runs the restart command (`program args…`, from `dir` if given) and
/// waits for it: `pg_ctl -w` returns once the server accepts connections
/// again.
pub async fn restart(command: &[String], dir: Option<&Path>) -> Result<()> {
    let (program, args) = command
        .split_first()
        .ok_or("no server restart command was given")?;
    let mut restart = Command::new(program);
    restart.args(args).stdin(Stdio::null()).kill_on_drop(true);
    if let Some(dir) = dir {
        restart.current_dir(dir);
    }
    let output = tokio::time::timeout(RESTART_WITHIN, restart.output())
        .await
        .map_err(|_| {
            format!(
                "`{}` did not finish within {RESTART_WITHIN:?}",
                command.join(" ")
            )
        })??;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "`{}` failed ({}): {}{}",
        command.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
    .into())
}

/// Terminates every other client connection to the database `url` names;
/// how many it terminated. Retried while the server is not reachable (a
/// restart may be under way).
pub async fn terminate_backends(url: &str) -> Result<i64> {
    let mut tries = 0;
    loop {
        match try_terminate(url).await {
            Ok(count) => return Ok(count),
            Err(error) if tries >= 50 => return Err(error),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn try_terminate(url: &str) -> Result<i64> {
    let mut connection = sqlx::PgConnection::connect(url).await?;
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ( \
             SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND backend_type = 'client backend' \
         ) AS t WHERE terminated",
    )
    .fetch_one(&mut connection)
    .await?;
    connection.close().await?;
    Ok(count)
}
