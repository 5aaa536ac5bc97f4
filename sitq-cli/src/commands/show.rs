//! `sitq show ID`: one task's record, arguments and result as JSON, and
//! every attempt with its worker, duration and error.

use chrono::{DateTime, Utc};
use sitq::TaskStatus;
use sitq::admin::{Attempt, AttemptOutcome, TaskDetail};

use super::Ctx;
use crate::error::Result;
use crate::output::{self, WIDTH, wrap};
use crate::parse;

/// Prints task `id`.
pub async fn run(ctx: &Ctx, id: &str) -> Result<()> {
    let id = parse::task_id(id)?;
    let record = ctx.queue.get(id).await?;
    let detail = TaskDetail::new(&record, ctx.queue.attempts(id).await?);
    if ctx.json {
        return output::print_json(&detail);
    }
    let TaskDetail {
        arguments,
        arguments_error,
        result,
        result_error,
        attempts,
        ..
    } = detail;
    let now = Utc::now();
    let mut text = String::new();
    let mut field = |label: &str, value: String| {
        text.push_str(&output::hanging(
            &format!("{label:<10} {value}"),
            "",
            "           ",
            WIDTH,
        ));
    };
    field("task", format!("{} {}", record.id, record.name));
    field(
        "queue",
        format!("{} (priority {})", record.queue, record.priority),
    );
    field(
        "status",
        format!(
            "{} ({} of {} attempts{})",
            record.status,
            record.attempts,
            record.max_attempts,
            if record.snoozes > 0 {
                format!(", {} snoozes", record.snoozes)
            } else {
                String::new()
            }
        ),
    );
    field("created", when(record.created_at, now));
    field("run at", when(record.run_at, now));
    if let Some(started) = record.started_at {
        field("started", when(started, now));
    }
    if let Some(finished) = record.finished_at {
        let took = record
            .duration()
            .map(|took| format!(", took {}", output::duration(took)))
            .unwrap_or_default();
        field("finished", format!("{}{took}", when(finished, now)));
    }
    if let Some(worker) = &record.worker_id {
        field("worker", worker.clone());
    }
    if let Some(cancel) = &record.cancellation {
        let reason = cancel
            .reason
            .as_ref()
            .map(|reason| format!(": {reason}"))
            .unwrap_or_default();
        field(
            "cancelled",
            format!(
                "by {} {}{reason}",
                cancel.by,
                when(cancel.requested_at, now)
            ),
        );
    }
    if let Some(failure) = &record.failure {
        field("error", format!("{}: {}", failure.kind, failure.message));
    }
    text.push_str("arguments\n");
    text.push_str(&json_block(arguments.as_ref(), arguments_error.as_deref()));
    if record.status == TaskStatus::Succeeded {
        text.push_str("result\n");
        text.push_str(&json_block(result.as_ref(), result_error.as_deref()));
    }
    text.push_str(&format!("attempts ({})\n", attempts.len()));
    for attempt in &attempts {
        text.push_str(&attempt_lines(attempt));
    }
    output::print(&text);
    Ok(())
}

/// One attempt: its outcome, worker, start and duration, then its error.
fn attempt_lines(attempt: &Attempt) -> String {
    let outcome = match attempt.outcome {
        AttemptOutcome::Running => "running",
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
    };
    let mut line = format!("#{} {outcome}", attempt.attempt);
    if let Some(duration) = attempt.duration() {
        line.push_str(&format!(" after {}", output::duration(duration)));
    }
    if let Some(worker) = &attempt.worker_id {
        line.push_str(&format!(" on {worker}"));
    }
    match (attempt.started_at, attempt.finished_at) {
        (Some(started), _) => line.push_str(&format!(", started {}", output::instant(started))),
        (None, Some(ended)) => line.push_str(&format!(", ended {}", output::instant(ended))),
        (None, None) => {}
    }
    let mut text = output::hanging(&line, "  ", "     ", WIDTH);
    if let Some(error) = &attempt.error {
        text.push_str(&output::hanging(
            &format!("{}: {}", error.kind, error.message),
            "     ",
            "       ",
            WIDTH,
        ));
    }
    text
}

fn when(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", output::instant(at), output::ago(at, now))
}

fn json_block(value: Option<&serde_json::Value>, error: Option<&str>) -> String {
    match (value, error) {
        (Some(value), _) => {
            let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
            wrap(&pretty, "  ", WIDTH)
        }
        (None, Some(error)) => wrap(&format!("(unreadable: {error})"), "  ", WIDTH),
        (None, None) => "  -\n".to_owned(),
    }
}
