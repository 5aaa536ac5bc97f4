//! `sitq workers` and `sitq workers drain ID`.

use chrono::Utc;
use serde_json::json;

use super::Ctx;
use crate::error::Result;
use crate::output::{self, Column, Table};

/// Lists the live workers.
pub async fn list(ctx: &Ctx) -> Result<()> {
    let workers = ctx.queue.workers().await?;
    if ctx.json {
        return output::print_json(&workers);
    }
    if workers.is_empty() {
        output::print("no live workers\n");
        return Ok(());
    }
    let now = Utc::now();
    let mut table = Table::new(vec![
        Column::flex("WORKER", 12),
        Column::flex("HOST", 6),
        Column::number("PID"),
        Column::number("BUSY"),
        Column::number("TASKS"),
        Column::flex("QUEUES", 6),
        Column::number("UP"),
        Column::text("STATE"),
    ]);
    for worker in &workers {
        table.row(vec![
            worker.id.clone(),
            worker.host.clone(),
            worker.pid.to_string(),
            format!("{}/{}", worker.running, worker.concurrency),
            worker.tasks.len().to_string(),
            if worker.queues.is_empty() {
                "*".to_owned()
            } else {
                worker.queues.join(",")
            },
            output::duration((now - worker.started_at).to_std().unwrap_or_default()),
            if worker.draining {
                "draining"
            } else {
                "active"
            }
            .to_owned(),
        ]);
    }
    output::print(&table.render());
    Ok(())
}

/// Asks worker `id` to drain.
pub async fn drain(ctx: &Ctx, id: &str) -> Result<()> {
    ctx.queue.audited(&ctx.actor).drain_worker(id).await?;
    if ctx.json {
        return output::print_json(&json!({ "worker": id, "draining": true }));
    }
    output::print(&format!(
        "worker {id} asked to drain: it stops claiming and exits once its running tasks finish\n"
    ));
    Ok(())
}
