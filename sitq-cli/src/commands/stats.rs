//! `sitq stats`: counts per queue and state, throughput, failure rate,
//! oldest pending age, paused queues, live workers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sitq::TaskStatus;
use sitq::admin::{Stats, WorkerInfo};

use super::Ctx;
use crate::error::Result;
use crate::output::{self, Column, Table};

/// `stats --json`: the core [`Stats`] with the paused queues and live workers.
#[derive(Serialize)]
struct StatsJson<'a> {
    #[serde(flatten)]
    stats: &'a Stats,
    paused_queues: Vec<String>,
    workers: &'a [WorkerInfo],
}

/// The states in the table's column order.
const COLUMNS: [TaskStatus; 6] = [
    TaskStatus::Pending,
    TaskStatus::Blocked,
    TaskStatus::Running,
    TaskStatus::Succeeded,
    TaskStatus::Failed,
    TaskStatus::Cancelled,
];

/// Prints the statistics.
pub async fn run(ctx: &Ctx) -> Result<()> {
    let stats = ctx.queue.stats().await?;
    let paused_queues: Vec<String> = ctx
        .queue
        .queues()
        .await?
        .into_iter()
        .filter(|queue| queue.paused)
        .map(|queue| queue.name)
        .collect();
    let workers = ctx.queue.workers().await?;
    if ctx.json {
        return output::print_json(&StatsJson {
            stats: &stats,
            paused_queues,
            workers: &workers,
        });
    }
    let mut text = counts_table(&stats);
    text.push('\n');
    text.push_str(&throughput(&stats));
    text.push('\n');
    let paused = if paused_queues.is_empty() {
        "none".to_owned()
    } else {
        paused_queues.join(", ")
    };
    text.push_str(&output::wrap(
        &format!("paused queues: {paused}"),
        "",
        output::WIDTH,
    ));
    let running: u32 = workers.iter().map(|worker| worker.running).sum();
    let draining = workers.iter().filter(|worker| worker.draining).count();
    let mut line = format!("live workers: {} ({running} tasks running", workers.len());
    if draining > 0 {
        line.push_str(&format!(", {draining} draining"));
    }
    line.push(')');
    text.push_str(&line);
    text.push('\n');
    output::print(&text);
    Ok(())
}

/// One row per queue: counts by state and the oldest ready task's wait.
fn counts_table(stats: &Stats) -> String {
    struct Row {
        counts: [u64; COLUMNS.len()],
        oldest_due: Option<DateTime<Utc>>,
    }
    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    for count in &stats.counts {
        let row = rows.entry(&count.queue).or_insert(Row {
            counts: [0; COLUMNS.len()],
            oldest_due: None,
        });
        if let Some(at) = COLUMNS.iter().position(|status| *status == count.status) {
            row.counts[at] += count.count;
        }
        row.oldest_due = match (row.oldest_due, count.oldest_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    if rows.is_empty() {
        return "no tasks\n".to_owned();
    }
    let mut columns = vec![Column::flex("QUEUE", 8)];
    columns.extend(COLUMNS.iter().map(|status| Column::number(header(*status))));
    columns.push(Column::number("WAITING"));
    let mut table = Table::new(columns);
    for (queue, row) in rows {
        let mut cells = vec![queue.to_owned()];
        cells.extend(row.counts.iter().map(u64::to_string));
        cells.push(output::or_dash(row.oldest_due.map(|due| {
            output::duration((stats.now - due).to_std().unwrap_or_default())
        })));
        table.row(cells);
    }
    table.render()
}

fn header(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Pending => "PENDING",
        TaskStatus::Blocked => "BLOCKED",
        TaskStatus::Running => "RUNNING",
        TaskStatus::Succeeded => "SUCCEEDED",
        TaskStatus::Failed => "FAILED",
        TaskStatus::Cancelled => "CANCELLED",
        _ => "OTHER",
    }
}

/// Finished tasks and failed attempts over the last minute and hour, and the
/// failure rate: failed attempts over attempts that ended (failed attempts
/// plus tasks that succeeded).
fn throughput(stats: &Stats) -> String {
    let finished = |status: TaskStatus| {
        stats
            .finished
            .iter()
            .filter(|count| count.status == status)
            .fold((0, 0), |(minute, hour), count| {
                (minute + count.last_minute, hour + count.last_hour)
            })
    };
    let mut table = Table::new(vec![
        Column::text("FINISHED"),
        Column::number("LAST MINUTE"),
        Column::number("LAST HOUR"),
    ]);
    for status in [
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ] {
        let (minute, hour) = finished(status);
        table.row(vec![
            status.to_string(),
            minute.to_string(),
            hour.to_string(),
        ]);
    }
    let (succeeded_minute, succeeded_hour) = finished(TaskStatus::Succeeded);
    table.row(vec![
        "failed attempts".to_owned(),
        stats.failed_attempts_last_minute.to_string(),
        stats.failed_attempts_last_hour.to_string(),
    ]);
    table.row(vec![
        "failure rate".to_owned(),
        rate(stats.failed_attempts_last_minute, succeeded_minute),
        rate(stats.failed_attempts_last_hour, succeeded_hour),
    ]);
    table.render()
}

fn rate(failed: u64, succeeded: u64) -> String {
    let ended = failed + succeeded;
    if ended == 0 {
        return "-".to_owned();
    }
    format!("{:.1}%", failed as f64 * 100.0 / ended as f64)
}
