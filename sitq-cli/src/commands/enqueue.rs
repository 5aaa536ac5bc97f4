//! `sitq enqueue NAME --args JSON`: work for Rust workers from any program.

use serde_json::json;
use sitq::EnqueueOptions;

use super::Ctx;
use crate::cli::EnqueueArgs;
use crate::error::{CliError, Result};
use crate::output;
use crate::parse;

/// The queue of a task enqueued without `--queue`.
const DEFAULT_QUEUE: &str = "default";

/// The `--args` JSON.
pub fn arguments(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|err| {
        CliError::new(format!(
            "bad --args JSON: {err} (e.g. --args '{{\"a\": 2}}')"
        ))
    })
}

/// Enqueues the task and prints its id; warns when no live worker runs it.
pub async fn run(ctx: &Ctx, args: &EnqueueArgs) -> Result<()> {
    let arguments: serde_json::Value = serde_json::from_str(&args.args).map_err(|err| {
        CliError::new(format!(
            "bad --args JSON: {err} (e.g. --args '{{\"a\": 2}}')"
        ))
    })?;
    let mut options = EnqueueOptions::new();
    if let Some(queue) = &args.queue {
        options = options.queue(queue.clone());
    }
    if let Some(priority) = args.priority {
        options = options.priority(priority);
    }
    if let Some(delay) = &args.delay {
        options = options.delay(parse::duration(delay)?);
    }
    if let Some(max_attempts) = args.max_attempts {
        options = options.max_attempts(max_attempts);
    }
    let id = ctx
        .queue
        .audited(&ctx.actor)
        .enqueue_json(&args.name, &arguments, options)
        .await?;
    let queue = args.queue.as_deref().unwrap_or(DEFAULT_QUEUE);
    // The task is stored either way; the warning only says it will wait.
    if let Ok(workers) = ctx.queue.workers().await
        && !workers.iter().any(|worker| worker.runs(queue, &args.name))
    {
        output::warn(&format!(
            "no live worker runs {} on queue {queue}: the task waits until one does",
            args.name
        ));
    }
    if ctx.json {
        return output::print_json(&json!({ "id": id }));
    }
    output::print(&format!("{id}\n"));
    Ok(())
}
