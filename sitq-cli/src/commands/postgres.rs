//! `sitq postgres roles`: the SQL for least-privilege PostgreSQL roles.

use crate::cli::RolesArgs;
use crate::error::Result;
use crate::output;

/// Prints the script of [`sitq::postgres::Roles`] for the names in `args`.
pub fn roles(args: &RolesArgs) -> Result<()> {
    let sql = sitq::postgres::Roles::new()
        .producer(&args.producer)
        .worker(&args.worker)
        .admin(&args.admin)
        .schema(&args.schema)
        .sql()?;
    output::print(&sql);
    Ok(())
}
