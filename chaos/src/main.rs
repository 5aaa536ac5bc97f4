//! sitq's chaos harness: producers and worker processes under load while
//! worker processes are SIGKILLed (and, on PostgreSQL, the server is
//! restarted and its connections terminated), then every task accounted
//! for. Run it with `cargo xtask chaos --backend sqlite|postgres --seconds N`;
//! `sitq-chaos run --help` lists its flags.

mod check;
mod fleet;
mod produce;
mod report;
mod run;
mod runlog;
mod server;
mod watch;
mod worker;

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

/// The harness's error: anything, with a message that says what failed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The harness's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.split_first() {
        Some((command, rest)) if command == "worker" => worker::main(rest).map(|()| true),
        Some((command, rest)) if command == "run" => run::main(rest),
        _ => Err("usage: sitq-chaos run [FLAGS] (see sitq-chaos run --help)".into()),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("sitq-chaos: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Wall-clock microseconds since the Unix epoch: the one clock the harness
/// and its worker processes share.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}

/// Writes `line` to stdout at once (a line of the report).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // Nobody reading stdout is no reason to stop the run.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
