//! `/tasks`: the task list with its filters and keyset pages, and
//! `/tasks/find?id=` (find by id).

use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use sitq_core::TaskStatus;

use super::Ctx;
use super::layout::{self, Nav};
use crate::error::WebError;
use crate::filter::{TaskQuery, task_id};

/// The list's extra query field: the notice of an action just done.
#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

impl Done {
    /// The action just done, if any.
    pub fn done(&self) -> Option<&str> {
        self.done.as_deref()
    }
}

/// The task list.
pub async fn page(ctx: Ctx, Query(query): Query<TaskQuery>, Query(done): Query<Done>) -> Response {
    let body = render(&ctx, &query, done.done()).await;
    ctx.respond("Tasks", Nav::Tasks, body)
}

async fn render(ctx: &Ctx, query: &TaskQuery, done: Option<&str>) -> Result<Markup, WebError> {
    // The form is shown with a bad query too, so it can be corrected.
    let filter = query.filter();
    let tasks = match &filter {
        Ok(filter) => Some(ctx.state.queue.tasks(filter).await?),
        Err(_) => None,
    };
    let now = Utc::now();
    let field = |value: &Option<String>| value.clone().unwrap_or_default();
    let selected = field(&query.status);
    Ok(html! {
        (layout::done_notice(done))
        form.filters method="get" action=(ctx.link("/tasks")) {
            label { "Status"
                select name="status" {
                    option value="" selected[selected.is_empty()] { "any" }
                    @for status in TaskStatus::ALL {
                        option value=(status.as_str()) selected[selected == status.as_str()] { (status.as_str()) }
                    }
                }
            }
            label { "Queue" input type="text" name="queue" value=(field(&query.queue)) size="12"; }
            label { "Task name" input type="text" name="name" value=(field(&query.name)) size="24"; }
            label { "Created since" input type="text" name="since" value=(field(&query.since)) size="14" placeholder="1h or 2026-12-01T00:00:00Z"; }
            button type="submit" { "Filter" }
            a.button.plain href=(ctx.link("/tasks")) { "Clear" }
        }
        form.filters method="get" action=(ctx.link("/tasks/find")) {
            label { "Task id" input type="text" name="id" size="10" inputmode="numeric"; }
            button.plain type="submit" { "Open" }
        }
        @if let Err(err) = &filter {
            div.notice.error { (err.message) }
        }
        @if let (Some(tasks), Ok(filter)) = (&tasks, &filter) {
            @if tasks.is_empty() {
                p.muted { "No tasks match." }
            } @else {
                table {
                    thead { tr {
                        th.num { "Id" } th { "Task" } th { "Queue" } th { "Status" }
                        th.num { "Attempts" } th { "Created" } th { "Finished" } th { "Error" }
                    } }
                    tbody {
                        @for task in tasks {
                            tr {
                                td.num { a href=(ctx.link(&format!("/tasks/{}", task.id))) { (task.id) } }
                                td { (task.name) }
                                td { (task.queue) }
                                td { (layout::status(task.status)) }
                                td.num { (task.attempts) "/" (task.max_attempts) }
                                td { (layout::instant(task.created_at, now)) }
                                td { @match task.finished_at {
                                    Some(at) => (layout::instant(at, now)),
                                    None => "-",
                                } }
                                td.error { @if let Some(error) = &task.error { (error) } }
                            }
                        }
                    }
                }
                div.pager {
                    @if query.before.as_deref().is_some_and(|b| !b.is_empty()) {
                        a href=(ctx.link(&format!("/tasks?{}", TaskQuery { before: None, ..query.clone() }.encode()))) { "← Newest" }
                    }
                    @if tasks.len() == filter.limit {
                        @if let Some(last) = tasks.last() {
                            a href=(ctx.link(&format!("/tasks?{}", query.next_page(last.id).encode()))) { "Older →" }
                        }
                    }
                }
            }
        }
    })
}

/// `?id=` of the find form.
#[derive(Deserialize)]
pub struct Find {
    id: Option<String>,
}

/// Redirects to the task, or says what is wrong with the id.
pub async fn find(ctx: Ctx, Query(find): Query<Find>) -> Response {
    match task_id(find.id.as_deref().unwrap_or("")) {
        Ok(id) => Redirect::to(&ctx.link(&format!("/tasks/{id}"))).into_response(),
        Err(err) => ctx.error(err),
    }
}
