//! The pages' actions: POST forms carrying the browser's CSRF token.
//! Retry, pause and resume act at once; cancel and delete first show a
//! confirmation (`GET /tasks/{id}/cancel`) whose form says `confirm=yes`.
//! Every action goes through [`Audited`](sitq_core::Audited), so it is in
//! the audit log, and ends in a redirect (303) to a page saying what
//! happened.

use axum::Form;
use axum::extract::Path;
use axum::extract::rejection::FormRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use sitq_core::CancelOutcome;

use super::Ctx;
use super::layout::Nav;
use crate::auth::form_token_matches;
use crate::error::WebError;
use crate::filter::{encode, task_id};

/// An action form's fields.
#[derive(Deserialize)]
pub struct ActionForm {
    csrf: String,
    confirm: Option<String>,
    reason: Option<String>,
}

/// A task action a form can ask for.
#[derive(Copy, Clone, PartialEq, Eq)]
enum TaskAction {
    Retry,
    Cancel,
    Delete,
}

impl TaskAction {
    fn parse(text: &str) -> Result<TaskAction, WebError> {
        match text {
            "retry" => Ok(TaskAction::Retry),
            "cancel" => Ok(TaskAction::Cancel),
            "delete" => Ok(TaskAction::Delete),
            _ => Err(WebError::not_found("no such page")),
        }
    }

    fn destructive(self) -> bool {
        self != TaskAction::Retry
    }
}

/// `GET /tasks/{id}/{cancel|delete}`: asks before acting.
pub async fn confirm(ctx: Ctx, Path((id, action)): Path<(String, String)>) -> Response {
    let checked = TaskAction::parse(&action).and_then(|action| Ok((task_id(&id)?, action)));
    let (id, action) = match checked {
        Ok(found) if found.1.destructive() => found,
        // Retry has no confirmation: its form posts from the task page.
        Ok(_) => return ctx.error(WebError::not_found("no such page")),
        Err(err) => return ctx.error(err),
    };
    if ctx.state.read_only {
        return ctx.error(WebError::read_only());
    }
    let summary = match ctx.state.queue.get(id).await {
        Ok(record) => record,
        Err(err) => return ctx.error(err.into()),
    };
    let (title, question, label) = match action {
        TaskAction::Cancel => (
            format!("Cancel task {id}?"),
            "It will not run (or, if running, its worker is asked to stop it). A cancelled task can be retried later.",
            "Cancel the task",
        ),
        _ => (
            format!("Delete task {id}?"),
            "Its record, arguments, result and attempt history are removed for good.",
            "Delete the task",
        ),
    };
    let body = html! {
        p { strong { (summary.name) } " on queue " (summary.queue) ", " (summary.status.as_str()) "." }
        p { (question) }
        form method="post" action=(ctx.link(&format!("/tasks/{id}/{}", name(action)))) {
            input type="hidden" name="csrf" value=(ctx.csrf);
            input type="hidden" name="confirm" value="yes";
            @if action == TaskAction::Cancel {
                p { label { "Reason (optional) " input type="text" name="reason" size="40"; } }
            }
            button.danger type="submit" { (label) }
            " "
            a.button.plain href=(ctx.link(&format!("/tasks/{id}"))) { "Keep it" }
        }
    };
    ctx.respond(&title, Nav::None, Ok(body))
}

/// `POST /tasks/{id}/{retry|cancel|delete}`.
pub async fn task_action(
    ctx: Ctx,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let result = async {
        let action = TaskAction::parse(&action)?;
        let id = task_id(&id)?;
        let form = checked_form(&ctx, &headers, form)?;
        if action.destructive() && form.confirm.as_deref() != Some("yes") {
            return Ok(Redirect::to(
                &ctx.link(&format!("/tasks/{id}/{}", name(action))),
            ));
        }
        let audited = ctx.state.queue.audited(&ctx.state.actor);
        let done = match action {
            TaskAction::Retry => {
                audited.retry(id).await?;
                "retried"
            }
            TaskAction::Cancel => {
                let reason = form.reason.filter(|reason| !reason.trim().is_empty());
                match audited.cancel(id, reason).await? {
                    CancelOutcome::Requested => "cancel-requested",
                    _ => "cancelled",
                }
            }
            TaskAction::Delete => {
                audited.delete(id).await?;
                return Ok(Redirect::to(&ctx.link("/tasks?done=deleted")));
            }
        };
        Ok(Redirect::to(&ctx.link(&format!("/tasks/{id}?done={done}"))))
    }
    .await;
    match result {
        Ok(redirect) => redirect.into_response(),
        Err(err) => ctx.error(err),
    }
}

fn name(action: TaskAction) -> &'static str {
    match action {
        TaskAction::Retry => "retry",
        TaskAction::Cancel => "cancel",
        TaskAction::Delete => "delete",
    }
}

/// `POST /queues/{name}/{pause|resume}`.
pub async fn queue_action(
    ctx: Ctx,
    headers: HeaderMap,
    Path((queue, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let result = async {
        checked_form(&ctx, &headers, form)?;
        let audited = ctx.state.queue.audited(&ctx.state.actor);
        let done = match action.as_str() {
            "pause" => {
                audited.pause(&queue).await?;
                "paused"
            }
            "resume" => {
                audited.resume(&queue).await?;
                "resumed"
            }
            _ => return Err(WebError::not_found("no such page")),
        };
        Ok(Redirect::to(&ctx.link(&format!(
            "/queues?done={done}&queue={}",
            encode(&queue)
        ))))
    }
    .await;
    match result {
        Ok(redirect) => redirect.into_response(),
        Err(err) => ctx.error(err),
    }
}

/// The form, once the dashboard allows actions and its CSRF token matches
/// the browser's cookie.
fn checked_form(
    ctx: &Ctx,
    headers: &HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<ActionForm, WebError> {
    if ctx.state.read_only {
        return Err(WebError::read_only());
    }
    let Ok(Form(form)) = form else {
        return Err(WebError::csrf());
    };
    if !form_token_matches(headers, &form.csrf) {
        return Err(WebError::csrf());
    }
    Ok(form)
}
