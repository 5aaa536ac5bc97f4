//! `/`: counts by status and queue, throughput and failure rate over the
//! last hour and day, queue wait, the oldest pending task, live workers.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use sitq_core::{ActivityBucket, TaskStatus};

use super::layout::{self, Nav};
use super::{Ctx, chart};
use crate::error::WebError;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// The overview.
pub async fn page(ctx: Ctx) -> Response {
    let body = render(&ctx).await;
    ctx.respond("Overview", Nav::Overview, body)
}

/// One queue's row: count per status, the oldest due pending task.
#[derive(Default)]
struct QueueRow {
    counts: HashMap<TaskStatus, u64>,
    oldest_due: Option<DateTime<Utc>>,
    paused: bool,
}

async fn render(ctx: &Ctx) -> Result<Markup, WebError> {
    let queue = &ctx.state.queue;
    let (stats, hour, day, workers, queues) = tokio::try_join!(
        queue.stats(),
        queue.activity(HOUR, Duration::from_secs(60)),
        queue.activity(DAY, HOUR),
        queue.workers(),
        queue.queues(),
    )?;
    let now = stats.now;
    let mut totals: HashMap<TaskStatus, u64> = HashMap::new();
    let mut rows: BTreeMap<String, QueueRow> = BTreeMap::new();
    for count in &stats.counts {
        *totals.entry(count.status).or_default() += count.count;
        let row = rows.entry(count.queue.clone()).or_default();
        *row.counts.entry(count.status).or_default() += count.count;
        if count.status == TaskStatus::Pending
            && let Some(due) = count.oldest_due
        {
            row.oldest_due = Some(row.oldest_due.map_or(due, |oldest| oldest.min(due)));
        }
    }
    for info in &queues {
        rows.entry(info.name.clone()).or_default().paused = info.paused;
    }
    let oldest_due = rows.values().filter_map(|row| row.oldest_due).min();
    let busy: u32 = workers.iter().map(|worker| worker.running).sum();
    let slots: u32 = workers.iter().map(|worker| worker.concurrency).sum();
    let finished_last_hour: u64 = hour.iter().map(|b| b.succeeded + b.failed).sum();
    let total = |status| totals.get(&status).copied().unwrap_or(0);
    Ok(html! {
        div.cards {
            @for status in [TaskStatus::Pending, TaskStatus::Running, TaskStatus::Blocked, TaskStatus::Failed] {
                a.card href=(ctx.link(&format!("/tasks?status={status}"))) style="text-decoration:none;color:inherit" {
                    div.label { (status.as_str()) }
                    div.value { (total(status)) }
                }
            }
            div.card {
                div.label { "finished last hour" }
                div.value { (finished_last_hour) }
            }
            div.card {
                div.label { "failure rate last hour" }
                div.value { (rate_text(&hour)) }
            }
            div.card {
                div.label { "queue wait last hour" }
                div.value.small { (mean_wait(&hour).map_or("-".to_owned(), layout::duration)) }
            }
            div.card {
                div.label { "oldest pending" }
                div.value.small {
                    @match oldest_due {
                        Some(due) if due <= now => (layout::duration((now - due).to_std().unwrap_or_default())),
                        Some(_) => "not yet due",
                        None => "-",
                    }
                }
            }
            a.card href=(ctx.link("/workers")) style="text-decoration:none;color:inherit" {
                div.label { "live workers" }
                div.value { (workers.len()) }
                div.muted { (busy) " of " (slots) " slots busy" }
            }
        }
        div.charts {
            div.chart {
                h3 { "Throughput and failure rate, last hour (per minute)" }
                (chart::throughput(&hour, "%H:%M"))
            }
            div.chart {
                h3 { "Throughput and failure rate, last day (per hour)" }
                (chart::throughput(&day, "%d %H:00"))
            }
            div.chart {
                h3 { "Queue wait, last hour (per minute)" }
                (chart::wait(&hour, "%H:%M"))
            }
        }
        h2 { "Queues" }
        @if rows.is_empty() {
            p.muted { "No tasks yet." }
        } @else {
            table {
                thead { tr {
                    th { "Queue" } th { "State" }
                    @for status in TaskStatus::ALL { th.num { (status.as_str()) } }
                    th { "Oldest pending" }
                } }
                tbody {
                    @for (name, row) in &rows {
                        tr {
                            td { a href=(ctx.link(&format!("/tasks?queue={}", crate::filter::encode(name)))) { (name) } }
                            td {
                                @if row.paused { span.badge.paused { "paused" } }
                                @else { span.badge.active { "active" } }
                            }
                            @for status in TaskStatus::ALL {
                                td.num { (row.counts.get(&status).copied().unwrap_or(0)) }
                            }
                            td { @match row.oldest_due {
                                Some(due) => (layout::instant(due, now)),
                                None => "-",
                            } }
                        }
                    }
                }
            }
        }
    })
}

fn rate_text(buckets: &[ActivityBucket]) -> String {
    let failed: u64 = buckets.iter().map(|b| b.failed_attempts).sum();
    let succeeded: u64 = buckets.iter().map(|b| b.succeeded).sum();
    match failed + succeeded {
        0 => "-".to_owned(),
        total => format!("{:.1}%", failed as f64 * 100.0 / total as f64),
    }
}

/// The mean wait over the buckets, each weighted by the tasks that ran in it.
fn mean_wait(buckets: &[ActivityBucket]) -> Option<Duration> {
    let (sum, count) = buckets
        .iter()
        .filter_map(|b| {
            let ran = b.succeeded + b.failed;
            b.mean_wait_micros.map(|wait| {
                (
                    u128::from(wait) * u128::from(ran.max(1)),
                    u128::from(ran.max(1)),
                )
            })
        })
        .fold((0u128, 0u128), |(s, c), (ws, wc)| (s + ws, c + wc));
    (count > 0).then(|| Duration::from_micros(u64::try_from(sum / count).unwrap_or(u64::MAX)))
}
