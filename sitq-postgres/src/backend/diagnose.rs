//! `doctor`'s look at the database: schema version, expired leases,
//! oversized rows, and the server's settings that matter to sitq.

use sitq_core::{Check, CheckLevel, Diagnosis, OversizedRow, Result, TaskId};
use sqlx::postgres::PgPool;

use crate::connect::{self, db_error};

const OP: &str = "diagnosing the database";

/// The most oversized rows a diagnosis lists.
const OVERSIZED_ROWS: i64 = 20;

/// Connections in use above this share of `max_connections` are a warning.
const CONNECTIONS_WARN_PERCENT: i64 = 80;

/// Tasks whose payload or result is over `$1` bytes, largest first. The
/// sizes come from `octet_length`, which reads a stored value's header,
/// never the value.
const OVERSIZED: &str = "
SELECT id, name, octet_length(payload)::bigint AS payload_bytes,
       coalesce(octet_length(result), 0)::bigint AS result_bytes
FROM sitq_tasks
WHERE octet_length(payload) > $1 OR octet_length(result) > $1
ORDER BY greatest(octet_length(payload), coalesce(octet_length(result), 0)) DESC, id
LIMIT $2";

/// The server's figures for the checks: version, database size (bytes and
/// as text), `synchronous_commit`, connections open to any database, and
/// `max_connections`.
const SERVER: &str = "
SELECT current_setting('server_version'),
       pg_database_size(current_database()),
       pg_size_pretty(pg_database_size(current_database())),
       current_setting('synchronous_commit'),
       (SELECT coalesce(sum(numbackends), 0) FROM pg_stat_database)::bigint,
       current_setting('max_connections')::bigint";

/// The server's figures as [`SERVER`] reads them.
type ServerRow = (String, i64, String, String, i64, i64);

/// What [`Backend::diagnose`](sitq_core::Backend::diagnose) finds on PostgreSQL.
pub(super) async fn diagnose(
    pool: &PgPool,
    location: String,
    oversized_bytes: usize,
) -> Result<Diagnosis> {
    let schema_version = connect::applied_migration(pool).await?;
    let expired: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sitq_tasks WHERE status = 'running' AND lease_until < now()",
    )
    .fetch_one(pool)
    .await
    .map_err(db_error(OP))?;
    let oversized: Vec<(i64, String, i64, i64)> = sqlx::query_as(OVERSIZED)
        .bind(i64::try_from(oversized_bytes).unwrap_or(i64::MAX))
        .bind(OVERSIZED_ROWS)
        .fetch_all(pool)
        .await
        .map_err(db_error(OP))?;
    let server: ServerRow = sqlx::query_as(SERVER)
        .fetch_one(pool)
        .await
        .map_err(db_error(OP))?;
    Ok(Diagnosis {
        location,
        schema_version,
        expected_schema_version: connect::latest_migration(),
        expired_leases: u64::try_from(expired).unwrap_or(0),
        oversized: oversized
            .into_iter()
            .map(|(id, name, payload_bytes, result_bytes)| OversizedRow {
                id: TaskId(id),
                name,
                payload_bytes: u64::try_from(payload_bytes).unwrap_or(0),
                result_bytes: u64::try_from(result_bytes).unwrap_or(0),
            })
            .collect(),
        checks: checks(server),
    })
}

/// The checks of the server's figures.
fn checks(
    (version, size_bytes, size, synchronous_commit, connections, max_connections): ServerRow,
) -> Vec<Check> {
    let synchronous = if synchronous_commit == "off" {
        Check::new(
            "synchronous_commit",
            CheckLevel::Warn,
            "off: a server crash can lose the last moments of committed work (enqueued \
             tasks, finished outcomes) though callers were told it committed; set \
             synchronous_commit = on unless that loss is acceptable",
        )
    } else {
        Check::new(
            "synchronous_commit",
            CheckLevel::Ok,
            format!("{synchronous_commit}: a commit sitq reports survives a server crash"),
        )
    };
    let busy = connections * 100 > max_connections * CONNECTIONS_WARN_PERCENT;
    let connections = Check::new(
        "connections",
        if busy {
            CheckLevel::Warn
        } else {
            CheckLevel::Ok
        },
        if busy {
            format!(
                "{connections} of max_connections = {max_connections} in use: new connections \
                 will soon be refused; raise max_connections, lower sitq's max_connections per \
                 process, or put a connection pooler in front"
            )
        } else {
            format!("{connections} of max_connections = {max_connections} in use")
        },
    );
    vec![
        Check::new(
            "server version",
            CheckLevel::Ok,
            format!("PostgreSQL {version}"),
        ),
        Check::new(
            "database size",
            CheckLevel::Ok,
            format!("{size} ({size_bytes} bytes)"),
        ),
        synchronous,
        connections,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(synchronous_commit: &str, connections: i64) -> ServerRow {
        (
            "17.2".into(),
            8_000_000,
            "8 MB".into(),
            synchronous_commit.into(),
            connections,
            100,
        )
    }

    fn level(checks: &[Check], name: &str) -> CheckLevel {
        checks
            .iter()
            .find(|check| check.name == name)
            .map(|check| check.level)
            .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
    }

    #[test]
    fn synchronous_commit_off_is_a_warning() {
        assert_eq!(
            level(&checks(server("off", 5)), "synchronous_commit"),
            CheckLevel::Warn
        );
        assert_eq!(
            level(&checks(server("on", 5)), "synchronous_commit"),
            CheckLevel::Ok
        );
        assert_eq!(
            level(&checks(server("remote_apply", 5)), "synchronous_commit"),
            CheckLevel::Ok
        );
    }

    #[test]
    fn connections_above_four_fifths_are_a_warning() {
        assert_eq!(
            level(&checks(server("on", 80)), "connections"),
            CheckLevel::Ok
        );
        let checks = checks(server("on", 81));
        assert_eq!(level(&checks, "connections"), CheckLevel::Warn);
        let detail = &checks
            .iter()
            .find(|check| check.name == "connections")
            .map(|check| check.detail.clone())
            .unwrap_or_default();
        assert!(detail.contains("81 of max_connections = 100"), "{detail}");
    }
}
