//! `cargo xtask`: the project's own automation (see `cargo xtask help`).
//!
//! Subcommands rather than shell scripts, std only, so that what CI checks is
//! one command a contributor can run on their own machine. Each subcommand
//! lives in its own module and returns `Result<(), String>`; `main` prints the
//! error and exits with status 1.

// A command-line tool talks to people through stdout; the workspace lint is
// meant for the library crates.
#![allow(clippy::print_stdout, reason = "xtask is a command-line tool")]

mod bench;
mod chaos;
mod ci;
mod postgres;
mod process;
mod test;

use std::ffi::OsString;
use std::process::ExitCode;

/// What `cargo xtask help` prints.
const USAGE: &str = "\
Usage: cargo xtask <COMMAND>

Commands:
  test [-- ARGS...]  cargo test --workspace --all-features [ARGS...], against a
                     throw-away PostgreSQL cluster (SITQ_TEST_POSTGRES_URL) when
                     PostgreSQL's server binaries are installed; -p NAME in ARGS
                     tests that package instead of the workspace, e.g.
                     cargo xtask test -- -p sitq-postgres -- --nocapture
  ci                 everything CI checks, stopping at the first failure:
                     fmt, clippy, test (as above), doc
  bench [FLAGS]      the benchmarks in release mode, each figure beside the plain
                     SQL ceiling measured in the same run: --n N, --concurrency C,
                     --backend sqlite|postgres|all, --quick, --json
                     (cargo xtask bench -- --help lists every flag)
  chaos [FLAGS]      producers and worker processes under load while workers are
                     SIGKILLed (on PostgreSQL also the server restarted and its
                     connections terminated); fails on any lost task or any
                     rerun no fault explains: --backend sqlite|postgres,
                     --seconds N (default 30), --seed S, --keep (the run's logs)
  postgres           start a throw-away PostgreSQL cluster, print its URL, and
                     stop it (deleting its data) on Enter, end of input or Ctrl-C
  help               print this text

Environment:
  CI=true            missing PostgreSQL server binaries or openssl (for the
                     cluster's TLS certificates) are an error, not a warning
";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Dispatches to the subcommand named by the first argument.
fn run(args: &[OsString]) -> Result<(), String> {
    let Some((command, rest)) = args.split_first() else {
        return Err(format!("no subcommand given\n\n{USAGE}"));
    };
    match command.to_str() {
        Some("test") => test::run(trailing_args("test", rest)?),
        Some("ci") => {
            no_args("ci", rest)?;
            ci::run()
        }
        Some("bench") => {
            let flags: Vec<String> = rest
                .iter()
                .filter(|arg| *arg != "--")
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect();
            bench::run(&flags)
        }
        Some("chaos") => {
            let flags: Vec<String> = rest
                .iter()
                .filter(|arg| *arg != "--")
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect();
            chaos::run(&flags)
        }
        Some("postgres") => {
            no_args("postgres", rest)?;
            postgres::serve()
        }
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Err(format!(
            "unknown subcommand `{}`\n\n{USAGE}",
            command.to_string_lossy()
        )),
    }
}

/// The arguments after a leading `--`, which a subcommand passes on verbatim.
fn trailing_args<'a>(command: &str, args: &'a [OsString]) -> Result<&'a [OsString], String> {
    match args.split_first() {
        None => Ok(args),
        Some((first, rest)) if first == "--" => Ok(rest),
        Some((first, _)) => Err(format!(
            "unexpected argument `{}` for `{command}`; put arguments for cargo after `--`\n\n{USAGE}",
            first.to_string_lossy()
        )),
    }
}

/// Rejects arguments for a subcommand that takes none.
fn no_args(command: &str, args: &[OsString]) -> Result<(), String> {
    match args.first() {
        None => Ok(()),
        Some(arg) => Err(format!(
            "`{command}` takes no arguments, got `{}`\n\n{USAGE}",
            arg.to_string_lossy()
        )),
    }
}
