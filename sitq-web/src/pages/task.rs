//! `/tasks/{id}`: one task whole: its facts, the actions its state allows,
//! arguments and result as JSON, every attempt with its worker, duration
//! and error, and its dependencies and dependents.

use axum::extract::{Path, Query};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use sitq_core::{AttemptOutcome, TaskDetail, TaskStatus, TaskSummary};

use super::Ctx;
use super::layout::{self, Nav};
use super::tasks::Done;
use crate::error::WebError;
use crate::filter::task_id;

/// The task page.
pub async fn page(ctx: Ctx, Path(id): Path<String>, Query(done): Query<Done>) -> Response {
    let title = format!("Task {id}");
    let body = render(&ctx, &id, done.done()).await;
    ctx.respond(&title, Nav::Tasks, body)
}

async fn render(ctx: &Ctx, id: &str, done: Option<&str>) -> Result<Markup, WebError> {
    let id = task_id(id)?;
    let queue = &ctx.state.queue;
    let (record, attempts, links) =
        tokio::try_join!(queue.get(id), queue.attempts(id), queue.links(id))?;
    let detail = TaskDetail::new(&record, attempts);
    let task = &detail.task;
    let now = Utc::now();
    let when = |at: Option<DateTime<Utc>>| match at {
        Some(at) => {
            html! { (at.format("%Y-%m-%d %H:%M:%S%.3f UTC")) " " span.muted { "(" (layout::ago(at, now)) ")" } }
        }
        None => html! { "-" },
    };
    Ok(html! {
        (layout::done_notice(done))
        dl.facts {
            dt { "Task" } dd { strong { (task.name) } }
            dt { "Status" } dd { (layout::status(task.status)) }
            dt { "Queue" } dd { a href=(ctx.link(&format!("/tasks?queue={}", crate::filter::encode(&task.queue)))) { (task.queue) } " (priority " (task.priority) ")" }
            dt { "Attempts" } dd {
                (task.attempts) " of " (task.max_attempts)
                @if task.snoozes > 0 { ", " (task.snoozes) " snoozes" }
            }
            dt { "Created" } dd { (when(Some(task.created_at))) }
            dt { "Due" } dd { (when(Some(task.run_at))) }
            dt { "Started" } dd { (when(task.started_at)) }
            dt { "Finished" } dd {
                (when(task.finished_at))
                @if let Some(took) = record.duration() { " took " (layout::duration(took)) }
            }
            dt { "Worker" } dd { (task.worker_id.as_deref().unwrap_or("-")) }
            @if let Some(workflow) = links.workflow {
                dt { "Workflow" } dd { a href=(ctx.link(&format!("/workflows/{}", workflow.0))) { "workflow " (workflow.0) } }
            }
            @if let Some(cancel) = &task.cancellation {
                dt { "Cancellation" } dd {
                    "requested by " (cancel.by) " " (layout::ago(cancel.requested_at, now))
                    @if let Some(reason) = &cancel.reason { ": " (reason) }
                }
            }
        }
        @if !ctx.state.read_only {
            div.actions {
                @if matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled) {
                    (ctx.button(&format!("/tasks/{id}/retry"), "Retry", "", &[]))
                }
                @if !task.status.is_finished() {
                    a.button.danger href=(ctx.link(&format!("/tasks/{id}/cancel"))) { "Cancel…" }
                }
                @if task.status.is_finished() {
                    " " a.button.danger href=(ctx.link(&format!("/tasks/{id}/delete"))) { "Delete…" }
                }
            }
        }
        @if let Some(failure) = &task.failure {
            h2 { "Error" }
            pre { (failure.kind) ": " (failure.message) }
        }
        h2 { "Arguments" }
        (json_block(detail.arguments.as_ref(), detail.arguments_error.as_deref()))
        @if task.status == TaskStatus::Succeeded {
            h2 { "Result" }
            (json_block(detail.result.as_ref(), detail.result_error.as_deref()))
        }
        h2 { "Attempts (" (detail.attempts.len()) ")" }
        @if detail.attempts.is_empty() {
            p.muted { "Not started yet." }
        } @else {
            table {
                thead { tr { th.num { "#" } th { "Outcome" } th { "Worker" } th { "Started" } th.num { "Duration" } th { "Error" } } }
                tbody {
                    @for attempt in &detail.attempts {
                        tr {
                            td.num { (attempt.attempt) }
                            td { @match attempt.outcome {
                                AttemptOutcome::Running => (layout::status(TaskStatus::Running)),
                                AttemptOutcome::Succeeded => (layout::status(TaskStatus::Succeeded)),
                                AttemptOutcome::Failed => (layout::status(TaskStatus::Failed)),
                            } }
                            td { (attempt.worker_id.as_deref().unwrap_or("-")) }
                            td { @match attempt.started_at {
                                Some(at) => (layout::instant(at, now)),
                                None => "-",
                            } }
                            td.num { (attempt.duration().map_or("-".to_owned(), layout::duration)) }
                            td.error { @if let Some(error) = &attempt.error {
                                pre { (error.kind) ": " (error.message) }
                            } }
                        }
                    }
                }
            }
        }
        @if !links.dependencies.is_empty() {
            h2 { "Depends on (" (links.dependencies.len()) ")" }
            (summaries(ctx, &links.dependencies))
        }
        @if !links.dependents.is_empty() {
            h2 { "Needed by (" (links.dependents.len()) ")" }
            (summaries(ctx, &links.dependents))
        }
    })
}

fn json_block(value: Option<&serde_json::Value>, error: Option<&str>) -> Markup {
    match (value, error) {
        (Some(value), _) => {
            let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
            html! { pre { (pretty) } }
        }
        (None, Some(error)) => html! { div.notice.error { "Unreadable: " (error) } },
        (None, None) => html! { p.muted { "-" } },
    }
}

/// A short table of related tasks.
pub fn summaries(ctx: &Ctx, tasks: &[TaskSummary]) -> Markup {
    html! {
        table {
            thead { tr { th.num { "Id" } th { "Task" } th { "Queue" } th { "Status" } } }
            tbody {
                @for task in tasks {
                    tr {
                        td.num { a href=(ctx.link(&format!("/tasks/{}", task.id))) { (task.id) } }
                        td { (task.name) }
                        td { (task.queue) }
                        td { (layout::status(task.status)) }
                    }
                }
            }
        }
    }
}
