//! The `NOTIFY` side of wake-ups: channel names and payload format.
//!
//! `sitq_work` carries no payload: any enqueue or retry wakes idle workers,
//! which then claim. `sitq_finished` carries the ids of finished tasks as
//! comma-separated decimals, so only their waiters wake.

use sitq_core::{Result, TaskId};
use sqlx::PgConnection;

use crate::connect::db_error;

/// New or newly ready work.
pub(crate) const WORK: &str = "sitq_work";

/// Tasks that finished; the payload lists their ids.
pub(crate) const FINISHED: &str = "sitq_finished";

/// PostgreSQL rejects payloads of 8000 bytes or more; stay well below.
const MAX_PAYLOAD: usize = 7900;

/// What to `NOTIFY` at the end of a transaction.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    /// Whether tasks became pending.
    pub(crate) work: bool,
    /// Tasks that finished.
    pub(crate) finished: Vec<TaskId>,
}

impl Notices {
    /// Nothing to say.
    pub(crate) fn is_empty(&self) -> bool {
        !self.work && self.finished.is_empty()
    }

    /// Queues the notifications on `connection`'s open transaction; PostgreSQL
    /// delivers them at commit, and drops them on rollback.
    pub(crate) async fn send(&self, connection: &mut PgConnection, op: &'static str) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut channels = Vec::new();
        let mut payloads = Vec::new();
        if self.work {
            channels.push(WORK);
            payloads.push(String::new());
        }
        for chunk in finished_payloads(&self.finished) {
            channels.push(FINISHED);
            payloads.push(chunk);
        }
        sqlx::query("SELECT pg_notify(channel, payload) FROM UNNEST($1::text[], $2::text[]) AS n(channel, payload)")
            .bind(&channels)
            .bind(&payloads)
            .execute(connection)
            .await
            .map_err(db_error(op))?;
        Ok(())
    }
}

/// The ids as comma-separated payloads, each under PostgreSQL's size limit.
pub(crate) fn finished_payloads(ids: &[TaskId]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for id in ids {
        let id = id.to_string();
        if !current.is_empty() && current.len() + 1 + id.len() > MAX_PAYLOAD {
            payloads.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(&id);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

/// The ids in a `sitq_finished` payload; malformed entries (from a newer
/// or foreign sender) are skipped.
pub(crate) fn parse_finished(payload: &str) -> impl Iterator<Item = TaskId> + '_ {
    payload
        .split(',')
        .filter_map(|id| id.trim().parse::<TaskId>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_keep_every_id() {
        let ids: Vec<TaskId> = (1_000_000_000_000..1_000_000_003_000).map(TaskId).collect();
        let payloads = finished_payloads(&ids);
        assert!(payloads.len() > 1, "3000 long ids need several payloads");
        assert!(payloads.iter().all(|payload| payload.len() <= MAX_PAYLOAD));
        let parsed: Vec<TaskId> = payloads.iter().flat_map(|p| parse_finished(p)).collect();
        assert_eq!(parsed, ids);
    }

    #[test]
    fn no_ids_no_payload() {
        assert!(finished_payloads(&[]).is_empty());
        assert_eq!(parse_finished("").count(), 0);
        assert_eq!(
            parse_finished("7,x,9").collect::<Vec<_>>(),
            [TaskId(7), TaskId(9)]
        );
    }
}
