//! Admin actions on tasks and queues, each written to the audit log:
//! `retry`, `cancel`, `purge`, `pause`, `resume`.

use serde_json::json;
use sitq::CancelOutcome;

use super::Ctx;
use crate::error::{CliError, Result};
use crate::output;
use crate::parse;

/// Runs a failed or cancelled task again.
pub async fn retry(ctx: &Ctx, id: &str) -> Result<()> {
    let id = parse::task_id(id)?;
    ctx.queue.audited(&ctx.actor).retry(id).await?;
    if ctx.json {
        return output::print_json(&json!({ "id": id, "retried": true }));
    }
    output::print(&format!("task {id} will run again\n"));
    Ok(())
}

/// Cancels a task.
pub async fn cancel(ctx: &Ctx, id: &str, reason: Option<String>) -> Result<()> {
    let id = parse::task_id(id)?;
    let outcome = ctx.queue.audited(&ctx.actor).cancel(id, reason).await?;
    let (code, text) = match outcome {
        CancelOutcome::Cancelled => ("cancelled".to_owned(), format!("task {id} cancelled")),
        CancelOutcome::Requested => (
            "requested".to_owned(),
            format!("task {id} is running: its worker was asked to stop it"),
        ),
        CancelOutcome::AlreadyFinished(status) => (
            "already_finished".to_owned(),
            format!("task {id} had already finished ({status}); nothing changed"),
        ),
        other => (format!("{other:?}"), format!("task {id}: {other:?}")),
    };
    if ctx.json {
        return output::print_json(&json!({ "id": id, "outcome": code }));
    }
    output::print(&format!("{text}\n"));
    Ok(())
}

/// Deletes finished tasks older than `older_than`, in `statuses`.
pub async fn purge(ctx: &Ctx, older_than: &str, statuses: &[String]) -> Result<()> {
    let age = parse::duration(older_than)?;
    let statuses = parse::statuses(statuses)?;
    if let Some(status) = statuses.iter().find(|status| !status.is_finished()) {
        return Err(CliError::new(format!(
            "only finished tasks can be purged (succeeded, failed, cancelled), not {status} ones"
        )));
    }
    let deleted = ctx.queue.audited(&ctx.actor).purge(age, &statuses).await?;
    if ctx.json {
        return output::print_json(&json!({ "deleted": deleted }));
    }
    output::print(&format!(
        "purged {deleted} task(s) finished more than {} ago\n",
        output::duration(age)
    ));
    Ok(())
}

/// Pauses a queue.
pub async fn pause(ctx: &Ctx, queue: &str) -> Result<()> {
    ctx.queue.audited(&ctx.actor).pause(queue).await?;
    if ctx.json {
        return output::print_json(&json!({ "queue": queue, "paused": true }));
    }
    output::print(&format!(
        "queue {queue} paused: no worker claims its tasks until `sitq resume {queue}`\n"
    ));
    Ok(())
}

/// Resumes a queue.
pub async fn resume(ctx: &Ctx, queue: &str) -> Result<()> {
    ctx.queue.audited(&ctx.actor).resume(queue).await?;
    if ctx.json {
        return output::print_json(&json!({ "queue": queue, "paused": false }));
    }
    output::print(&format!("queue {queue} resumed\n"));
    Ok(())
}
