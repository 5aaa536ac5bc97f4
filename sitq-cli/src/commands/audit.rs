//! `sitq audit`: the admin actions recorded, newest first.

use super::Ctx;
use crate::error::{CliError, Result};
use crate::output::{self, Column, Table};

/// Lists the audit log.
pub async fn run(ctx: &Ctx, limit: usize, before: Option<i64>) -> Result<()> {
    if limit == 0 || limit > sitq_core::inspect::MAX_LIST {
        return Err(CliError::new(format!(
            "bad limit {limit}: list between 1 and {} entries (page with --before)",
            sitq_core::inspect::MAX_LIST
        )));
    }
    let entries = ctx.queue.audit_log(limit, before).await?;
    if ctx.json {
        return output::print_json(&entries);
    }
    if entries.is_empty() {
        output::print("no admin actions recorded\n");
        return Ok(());
    }
    let mut table = Table::new(vec![
        Column::number("ID"),
        Column::text("AT"),
        Column::flex("ACTOR", 6),
        Column::text("ACTION"),
        Column::flex("TARGET", 10),
        Column::flex("DETAIL", 6),
    ]);
    for entry in &entries {
        table.row(vec![
            entry.id.to_string(),
            output::instant(entry.at),
            entry.actor.clone(),
            entry.action.clone(),
            entry.target.clone(),
            entry.detail.clone().unwrap_or_default(),
        ]);
    }
    output::print(&table.render());
    Ok(())
}
