//! The CLI's error: one line of text, whatever went wrong.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

/// What a command failed with, printed as `error: …` on one line.
#[derive(Debug)]
pub struct CliError(String);

impl CliError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> CliError {
        CliError(message.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sitq error with its source chain, joined on one line (a database
/// error's cause is in its source, not in its message).
impl From<sitq::Error> for CliError {
    fn from(err: sitq::Error) -> CliError {
        CliError(sitq_core::inspect::one_line(&err))
    }
}

/// The result of a command.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// Handles a command line clap could not parse: help and version go to
/// stdout as clap prints them; a mistake is one line on stderr (clap's own
/// first line, which starts with `error:`) and exit code 2.
pub fn clap_exit(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // clap's message runs until its first blank line (then usage and
            // tips follow); joined, it is one line.
            let rendered = err.render().to_string();
            let message = rendered
                .lines()
                .map(str::trim)
                .skip_while(|line| line.is_empty())
                .take_while(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let line = if message.starts_with("error:") {
                message
            } else {
                format!("error: {message}")
            };
            let _ = writeln!(std::io::stderr().lock(), "{line} (see --help)");
            ExitCode::from(2)
        }
    }
}
