//! The list pages: queues (with pause and resume), workers, schedules and
//! the audit log.

use axum::extract::Query;
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::Ctx;
use super::layout::{self, Nav};
use crate::error::WebError;
use crate::views::QueueView;

/// `?done=` after an action.
#[derive(Deserialize)]
pub struct Notice {
    done: Option<String>,
}

/// `/queues`.
pub async fn queues(ctx: Ctx, Query(notice): Query<Notice>) -> Response {
    let body = render_queues(&ctx, notice.done.as_deref()).await;
    ctx.respond("Queues", Nav::Queues, body)
}

async fn render_queues(ctx: &Ctx, done: Option<&str>) -> Result<Markup, WebError> {
    let queues: Vec<QueueView> = ctx
        .state
        .queue
        .queues()
        .await?
        .into_iter()
        .map(QueueView::from)
        .collect();
    Ok(html! {
        (layout::done_notice(done))
        @if queues.is_empty() {
            p.muted { "No queues yet: a queue appears with its first task or setting." }
        } @else {
            table {
                thead { tr {
                    th { "Queue" } th { "State" } th.num { "Pending" } th.num { "Running" }
                    th { "Limits" }
                    @if !ctx.state.read_only { th { "" } }
                } }
                tbody {
                    @for queue in &queues {
                        tr {
                            td { a href=(ctx.link(&format!("/tasks?queue={}", crate::filter::encode(&queue.name)))) { (queue.name) } }
                            td {
                                @if queue.paused { span.badge.paused { "paused" } }
                                @else { span.badge.active { "active" } }
                            }
                            td.num { (queue.pending) }
                            td.num { (queue.running) }
                            td { (limits(queue)) }
                            @if !ctx.state.read_only {
                                td {
                                    @let path = format!("/queues/{}/", crate::filter::encode(&queue.name));
                                    @if queue.paused {
                                        (ctx.button(&format!("{path}resume"), "Resume", "", &[]))
                                    } @else {
                                        (ctx.button(&format!("{path}pause"), "Pause", "plain", &[]))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn limits(queue: &QueueView) -> String {
    let mut limits = Vec::new();
    if let Some(concurrency) = queue.concurrency_limit {
        limits.push(format!("{concurrency} at once"));
    }
    if let Some(rate) = &queue.rate_limit {
        let period =
            std::time::Duration::from_millis(u64::try_from(rate.period_ms).unwrap_or(u64::MAX));
        limits.push(format!("{} per {}", rate.count, layout::duration(period)));
    }
    if limits.is_empty() {
        "-".to_owned()
    } else {
        limits.join(", ")
    }
}

/// `/workers`.
pub async fn workers(ctx: Ctx) -> Response {
    let body = async {
        let workers = ctx.state.queue.workers().await?;
        let now = Utc::now();
        Ok(html! {
            @if workers.is_empty() {
                p.muted { "No live workers." }
            } @else {
                table {
                    thead { tr {
                        th { "Worker" } th { "Host" } th.num { "Pid" } th.num { "Busy" }
                        th { "Queues" } th { "Tasks" } th { "Started" } th { "Last seen" } th { "State" }
                    } }
                    tbody {
                        @for worker in &workers {
                            tr {
                                td { (worker.id) }
                                td { (worker.host) }
                                td.num { (worker.pid) }
                                td.num { (worker.running) " / " (worker.concurrency) }
                                td { @if worker.queues.is_empty() { "all" } @else { (worker.queues.join(", ")) } }
                                td { (worker.tasks.join(", ")) }
                                td { (layout::instant(worker.started_at, now)) }
                                td { (layout::instant(worker.last_seen, now)) }
                                td { @if worker.draining { span.badge.paused { "draining" } } @else { span.badge.active { "running" } } }
                            }
                        }
                    }
                }
            }
        })
    }
    .await;
    ctx.respond("Workers", Nav::Workers, body)
}

/// `/schedules`.
pub async fn schedules(ctx: Ctx) -> Response {
    let body = async {
        let schedules = ctx.state.queue.schedules().await?;
        let now = Utc::now();
        Ok(html! {
            @if schedules.is_empty() {
                p.muted { "No schedules: a worker defines them when it starts with cron tasks." }
            } @else {
                table {
                    thead { tr {
                        th { "Schedule" } th { "Task" } th { "Queue" } th { "Cron" } th { "Zone" }
                        th { "Next fire" } th { "Last fire" } th { "Last seen" }
                    } }
                    tbody {
                        @for schedule in &schedules {
                            tr {
                                td { (schedule.name) }
                                td { a href=(ctx.link(&format!("/tasks?name={}", crate::filter::encode(&schedule.task)))) { (schedule.task) } }
                                td { (schedule.queue) }
                                td { code { (schedule.expression) } }
                                td { (schedule.zone) }
                                td { @match schedule.next_fire { Some(at) => (layout::instant(at, now)), None => "-" } }
                                td { @match schedule.last_fire { Some(at) => (layout::instant(at, now)), None => "-" } }
                                td { (layout::instant(schedule.last_seen, now)) }
                            }
                        }
                    }
                }
            }
        })
    }
    .await;
    ctx.respond("Schedules", Nav::Schedules, body)
}

/// `?before=` for the audit page.
#[derive(Deserialize)]
pub struct AuditPage {
    before: Option<i64>,
}

/// `/audit`: admin actions, newest first, 100 to a page.
pub async fn audit(ctx: Ctx, Query(page): Query<AuditPage>) -> Response {
    const PAGE: usize = 100;
    let body = async {
        let entries = ctx.state.queue.audit_log(PAGE, page.before).await?;
        let now = Utc::now();
        Ok(html! {
            @if entries.is_empty() {
                p.muted { "No admin actions recorded." }
            } @else {
                table {
                    thead { tr { th { "When" } th { "Actor" } th { "Action" } th { "Target" } th { "Detail" } } }
                    tbody {
                        @for entry in &entries {
                            tr {
                                td { (layout::instant(entry.at, now)) }
                                td { (entry.actor) }
                                td { (entry.action) }
                                td { (entry.target) }
                                td { (entry.detail.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
                @if entries.len() == PAGE {
                    @if let Some(last) = entries.last() {
                        div.pager { a href=(ctx.link(&format!("/audit?before={}", last.id))) { "Older →" } }
                    }
                }
            }
        })
    }
    .await;
    ctx.respond("Audit log", Nav::Audit, body)
}
