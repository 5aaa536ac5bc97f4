//! `sitq`: the admin binary of the sitq task queue.
//!
//! Connects to a queue's database (`--url` or `SITQ_DATABASE_URL`, SQLite or
//! PostgreSQL) and reads or acts on it: `stats`, `ls`, `show`, `retry`,
//! `cancel`, `purge`, `pause`, `resume`, `queues`, `workers`, `schedules`,
//! `enqueue`, `backup`, `doctor`, `audit`. Every admin action is written to
//! the audit log for `--actor` (the OS user by default).
//!
//! Every read command takes `--json` and prints one JSON document on stdout,
//! built from sitq's own serialisable types; the shapes are listed in each
//! command's `--help`. Bad input is one line on stderr (`error: …`) and a
//! non-zero exit, with nothing changed.

mod cli;
mod commands;
mod error;
mod output;
mod parse;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return error::clap_exit(&err),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return report(&CliError::new(format!(
                "could not start the runtime: {err}"
            )));
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

/// Prints `err` as the one line a bad input gets, and the exit code for it.
fn report(err: &CliError) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    // Nothing more can be said if stderr itself is gone.
    let _ = std::io::Write::write_fmt(&mut stderr, format_args!("error: {err}\n"));
    ExitCode::FAILURE
}
