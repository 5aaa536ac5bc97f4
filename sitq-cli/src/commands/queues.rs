//! `sitq queues` and `sitq schedules`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Ctx;
use crate::error::Result;
use crate::output::{self, Column, Table};

/// A queue, as `queues --json` prints it.
#[derive(Serialize)]
struct QueueJson {
    name: String,
    paused: bool,
    pending: u64,
    running: u64,
    concurrency_limit: Option<u32>,
    rate_limit: Option<RateJson>,
}

#[derive(Serialize)]
struct RateJson {
    count: u32,
    period_ms: u128,
}

/// Lists the queues.
pub async fn queues(ctx: &Ctx) -> Result<()> {
    let queues: Vec<QueueJson> = ctx
        .queue
        .queues()
        .await?
        .into_iter()
        .map(|queue| QueueJson {
            concurrency_limit: queue.limits.get_concurrency(),
            rate_limit: queue.limits.get_rate().map(|rate| RateJson {
                count: rate.count,
                period_ms: rate.period.as_millis(),
            }),
            name: queue.name,
            paused: queue.paused,
            pending: queue.pending,
            running: queue.running,
        })
        .collect();
    if ctx.json {
        return output::print_json(&queues);
    }
    if queues.is_empty() {
        output::print("no queues\n");
        return Ok(());
    }
    let mut table = Table::new(vec![
        Column::flex("QUEUE", 8),
        Column::text("STATE"),
        Column::number("PENDING"),
        Column::number("RUNNING"),
        Column::flex("LIMITS", 8),
    ]);
    for queue in &queues {
        let mut limits = Vec::new();
        if let Some(concurrency) = queue.concurrency_limit {
            limits.push(format!("{concurrency} at once"));
        }
        if let Some(rate) = &queue.rate_limit {
            limits.push(format!(
                "{} per {}",
                rate.count,
                output::duration(std::time::Duration::from_millis(
                    u64::try_from(rate.period_ms).unwrap_or(u64::MAX)
                ))
            ));
        }
        table.row(vec![
            queue.name.clone(),
            if queue.paused { "paused" } else { "active" }.to_owned(),
            queue.pending.to_string(),
            queue.running.to_string(),
            if limits.is_empty() {
                "-".to_owned()
            } else {
                limits.join(", ")
            },
        ]);
    }
    output::print(&table.render());
    Ok(())
}

/// A schedule, as `schedules --json` prints it.
#[derive(Serialize)]
struct ScheduleJson {
    name: String,
    task: String,
    queue: String,
    expression: String,
    zone: String,
    defined_at: DateTime<Utc>,
    last_fire: Option<DateTime<Utc>>,
    next_fire: Option<DateTime<Utc>>,
    last_seen: DateTime<Utc>,
}

/// Lists the cron schedules.
pub async fn schedules(ctx: &Ctx) -> Result<()> {
    let schedules: Vec<ScheduleJson> = ctx
        .queue
        .schedules()
        .await?
        .into_iter()
        .map(|schedule| ScheduleJson {
            name: schedule.name,
            task: schedule.task,
            queue: schedule.queue,
            expression: schedule.expression,
            zone: schedule.zone,
            defined_at: schedule.defined_at,
            last_fire: schedule.last_fire,
            next_fire: schedule.next_fire,
            last_seen: schedule.last_seen,
        })
        .collect();
    if ctx.json {
        return output::print_json(&schedules);
    }
    if schedules.is_empty() {
        output::print("no schedules\n");
        return Ok(());
    }
    let now = Utc::now();
    let mut table = Table::new(vec![
        Column::flex("SCHEDULE", 10),
        Column::flex("CRON", 9),
        Column::flex("ZONE", 5),
        Column::number("NEXT"),
        Column::number("LAST"),
        Column::number("SEEN"),
    ]);
    for schedule in &schedules {
        table.row(vec![
            schedule.name.clone(),
            schedule.expression.clone(),
            schedule.zone.clone(),
            output::or_dash(schedule.next_fire.map(|at| output::ago(at, now))),
            output::or_dash(schedule.last_fire.map(|at| output::ago(at, now))),
            output::ago(schedule.last_seen, now),
        ]);
    }
    output::print(&table.render());
    Ok(())
}
