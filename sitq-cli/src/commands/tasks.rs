//! `sitq ls`: tasks, newest first, filtered.

use chrono::Utc;
use sitq::admin::TaskFilter;

use super::Ctx;
use crate::cli::LsArgs;
use crate::error::{CliError, Result};
use crate::output::{self, Column, Table};
use crate::parse;

/// Lists the tasks `args` select.
pub async fn ls(ctx: &Ctx, args: &LsArgs) -> Result<()> {
    let filter = filter(args)?;
    let tasks = ctx.queue.tasks(&filter).await?;
    if ctx.json {
        return output::print_json(&tasks);
    }
    if tasks.is_empty() {
        output::print("no tasks\n");
        return Ok(());
    }
    let now = Utc::now();
    let mut table = Table::new(vec![
        Column::number("ID"),
        Column::text("STATUS"),
        Column::flex("QUEUE", 7),
        Column::flex("NAME", 12),
        Column::number("TRIES"),
        Column::number("AGE"),
        Column::flex("ERROR", 5),
    ]);
    for task in &tasks {
        table.row(vec![
            task.id.to_string(),
            task.status.to_string(),
            task.queue.clone(),
            task.name.clone(),
            format!("{}/{}", task.attempts, task.max_attempts),
            output::duration((now - task.created_at).to_std().unwrap_or_default()),
            task.error.clone().unwrap_or_default(),
        ]);
    }
    output::print(&table.render());
    if tasks.len() == filter.limit
        && let Some(last) = tasks.last()
    {
        output::warn(&format!(
            "showing the newest {}; the next page: --before {}",
            filter.limit, last.id
        ));
    }
    Ok(())
}

fn filter(args: &LsArgs) -> Result<TaskFilter> {
    if args.limit == 0 || args.limit > sitq_core::inspect::MAX_LIST {
        return Err(CliError::new(format!(
            "bad limit {}: list between 1 and {} tasks (page with --before)",
            args.limit,
            sitq_core::inspect::MAX_LIST
        )));
    }
    Ok(TaskFilter {
        statuses: parse::statuses(&args.status)?,
        queue: args.queue.clone(),
        name: args.name.clone(),
        since: args
            .since
            .as_deref()
            .map(|since| parse::since(since, Utc::now()))
            .transpose()?,
        before: args.before.as_deref().map(parse::task_id).transpose()?,
        limit: args.limit,
    })
}
