//! `sitq queues` and `sitq schedules`.

use chrono::Utc;
use sitq_web::views::{QueueView, ScheduleView};

use super::Ctx;
use crate::error::Result;
use crate::output::{self, Column, Table};

/// Lists the queues.
pub async fn queues(ctx: &Ctx) -> Result<()> {
    let queues: Vec<QueueView> = ctx
        .queue
        .queues()
        .await?
        .into_iter()
        .map(QueueView::from)
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

/// Lists the cron schedules.
pub async fn schedules(ctx: &Ctx) -> Result<()> {
    let schedules: Vec<ScheduleView> = ctx
        .queue
        .schedules()
        .await?
        .into_iter()
        .map(ScheduleView::from)
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
