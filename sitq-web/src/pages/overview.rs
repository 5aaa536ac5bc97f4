//! `/`: counts by status and queue, throughput and failure rate over the
//! last hour and day, queue wait, the oldest pending task, live workers.
//!
//! The counts and the charts read the whole task table (every row of the
//! last day, every row for the counts): about a second with a million rows.
//! So they are kept between renders: a render within the refresh interval
//! of the last read uses it; a later one uses it too and starts a new read
//! in the background (one at a time), so no render but the first waits for
//! the table. Workers and queues are read on every render (they are small).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use sitq_core::{ActivityBucket, Queue, Stats, TaskStatus};

use super::layout::{self, Nav};
use super::{Ctx, chart};
use crate::State;
use crate::error::WebError;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// How old the kept reads may be when the pages do not refresh themselves.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10);

/// The whole-table reads behind the overview.
struct Reads {
    stats: Stats,
    hour: Vec<ActivityBucket>,
    day: Vec<ActivityBucket>,
    /// When they were read, and how long that took.
    at: DateTime<Utc>,
    took: Duration,
}

/// The overview's last [`Reads`] and whether a new read is under way.
#[derive(Default)]
pub struct Cache {
    last: Mutex<Option<(Instant, Arc<Reads>)>>,
    reading: AtomicBool,
}

impl Cache {
    fn get(&self) -> Option<(Instant, Arc<Reads>)> {
        self.last
            .lock()
            .map(|last| last.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn put(&self, reads: Arc<Reads>) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *last = Some((Instant::now(), reads));
    }
}

async fn read(queue: &Queue) -> Result<Reads, WebError> {
    let started = Instant::now();
    let (stats, hour, day) = tokio::try_join!(
        queue.stats(),
        queue.activity(HOUR, Duration::from_secs(60)),
        queue.activity(DAY, HOUR),
    )?;
    Ok(Reads {
        at: stats.now,
        stats,
        hour,
        day,
        took: started.elapsed(),
    })
}

/// The kept reads, read first when there are none; a new read starts in
/// the background once they are older than the refresh interval.
async fn reads(state: &Arc<State>) -> Result<Arc<Reads>, WebError> {
    let max_age = if state.refresh.is_zero() {
        DEFAULT_MAX_AGE
    } else {
        state.refresh
    };
    if let Some((at, reads)) = state.overview.get() {
        if at.elapsed() >= max_age
            && state
                .overview
                .reading
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let state = Arc::clone(state);
            tokio::spawn(async move {
                match read(&state.queue).await {
                    Ok(fresh) => state.overview.put(Arc::new(fresh)),
                    Err(err) => {
                        tracing::warn!(error = %err.message, "the overview's background read failed")
                    }
                }
                state.overview.reading.store(false, Ordering::Release);
            });
        }
        return Ok(reads);
    }
    let fresh = Arc::new(read(&state.queue).await?);
    state.overview.put(Arc::clone(&fresh));
    Ok(fresh)
}

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
    let (reads, workers, queues) = tokio::try_join!(
        reads(&ctx.state),
        async { Ok(queue.workers().await?) },
        async { Ok(queue.queues().await?) }
    )?;
    let (stats, hour, day) = (&reads.stats, &reads.hour, &reads.day);
    let now = Utc::now();
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
                div.value { (rate_text(hour)) }
            }
            div.card {
                div.label { "queue wait last hour" }
                div.value.small { (mean_wait(hour).map_or("-".to_owned(), layout::duration)) }
            }
            div.card {
                div.label { "oldest pending" }
                div.value.small {
                    @match oldest_due {
                        Some(due) if due <= now => (layout::duration((now - due).to_std().unwrap_or_default())),
                        Some(_) => "none due yet",
                        None if total(TaskStatus::Pending) > 0 => "none due yet",
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
                (chart::throughput(hour, "%H:%M"))
            }
            div.chart {
                h3 { "Throughput and failure rate, last day (per hour)" }
                (chart::throughput(day, "%d %H:00"))
            }
            div.chart {
                h3 { "Queue wait, last hour (per minute)" }
                (chart::wait(hour, "%H:%M"))
            }
        }
        p.muted {
            "Counts and charts as of " (reads.at.format("%H:%M:%S UTC"))
            " (read in " (layout::duration(reads.took)) ")."
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
