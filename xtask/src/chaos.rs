//! `cargo xtask chaos --backend sqlite|postgres --seconds N`: builds the
//! chaos harness (`sitq-chaos`) and runs it; for PostgreSQL against a
//! throw-away cluster, handing the harness the command that restarts it.
//!
//! The harness SIGKILLs worker processes (and restarts the server and
//! terminates its connections) under load, then fails on any acknowledged
//! task that did not succeed or any rerun no fault explains. Its report
//! goes to stdout and ends with one `chaos: backend=… tasks=… kills=…
//! restarts=… lost=… reruns=… max_recovery=…s` line.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::postgres::TempCluster;
use crate::process;

/// How long each backend's run in `cargo xtask test` injects faults.
pub(crate) const TEST_SECONDS: u64 = 15;

/// Beyond its `--seconds`, how long a run may take (start, drain, checks).
const OVERHEAD: Duration = Duration::from_secs(300);

/// The error for `--backend postgres` without a server to start.
const NO_SERVER_BINARIES: &str = "chaos --backend postgres needs PostgreSQL's server binaries \
     (pg_ctl, initdb); install the postgresql package";

/// The backend a run tortures.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A throw-away PostgreSQL cluster.
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What `cargo xtask chaos` was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Options {
    backend: Backend,
    seconds: u64,
    /// `--seed S`, `--keep`: passed on.
    extra: Vec<String>,
}

/// `cargo xtask chaos [FLAGS]`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let mut build = process::cargo();
    build.args(["build", "--package", "sitq-chaos"]);
    eprintln!("xtask: {}", process::display(&build));
    process::run(&mut build)?;
    let harness = binary();
    match options.backend {
        Backend::Sqlite => run_harness(
            &harness,
            Backend::Sqlite,
            options.seconds,
            &options.extra,
            None,
        ),
        Backend::Postgres => {
            let cluster = TempCluster::start()?.ok_or_else(|| NO_SERVER_BINARIES.to_owned())?;
            let result = run_harness(
                &harness,
                Backend::Postgres,
                options.seconds,
                &options.extra,
                Some(&cluster),
            );
            // Stop the server before reporting, so its messages come first.
            drop(cluster);
            result
        }
    }
}

/// Where cargo puts the harness.
pub(crate) fn binary() -> std::path::PathBuf {
    process::target_dir().join("debug").join("sitq-chaos")
}

/// Runs the harness at `harness` on `backend` for `seconds`; `cluster` is
/// the PostgreSQL cluster it may restart (required for PostgreSQL).
pub(crate) fn run_harness(
    harness: &Path,
    backend: Backend,
    seconds: u64,
    extra: &[String],
    cluster: Option<&TempCluster>,
) -> Result<(), String> {
    let mut command = Command::new(harness);
    command
        .args(["run", "--backend", backend.name(), "--seconds"])
        .arg(seconds.to_string())
        .args(extra)
        .current_dir(process::project_root());
    match (backend, cluster) {
        (Backend::Sqlite, _) => {}
        (Backend::Postgres, Some(cluster)) => {
            let restart = cluster.restart_command();
            command.args(["--url", cluster.url()]);
            if let Some(dir) = restart.get_current_dir() {
                command.arg("--restart-dir").arg(dir);
            }
            command
                .arg("--")
                .arg(restart.get_program())
                .args(restart.get_args());
        }
        (Backend::Postgres, None) => return Err(NO_SERVER_BINARIES.to_owned()),
    }
    eprintln!("xtask: {}", process::display(&command));
    process::run_within(&mut command, Duration::from_secs(seconds) + OVERHEAD)
        .map_err(|error| format!("the chaos run on {} failed: {error}", backend.name()))
}

/// Reads `--backend`, `--seconds` and the flags passed on.
fn parse(args: &[String]) -> Result<Options, String> {
    let mut backend = None;
    let mut seconds = 30;
    let mut extra = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("chaos: `{arg}` needs a value"))
        };
        match arg.as_str() {
            "--backend" => {
                backend = Some(match value()?.as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" => Backend::Postgres,
                    other => {
                        return Err(format!(
                            "chaos: --backend expects sqlite or postgres, not `{other}`"
                        ));
                    }
                });
            }
            "--seconds" => {
                let given = value()?;
                seconds = given
                    .parse()
                    .map_err(|_| format!("chaos: --seconds expects a number, not `{given}`"))?;
            }
            "--seed" => {
                let given = value()?.clone();
                extra.extend(["--seed".to_owned(), given]);
            }
            "--keep" => extra.push("--keep".to_owned()),
            other => {
                return Err(format!(
                    "chaos: unknown flag `{other}`; flags: --backend sqlite|postgres, --seconds N, --seed S, --keep"
                ));
            }
        }
    }
    let backend = backend.ok_or("chaos: --backend sqlite|postgres is required")?;
    Ok(Options {
        backend,
        seconds,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::{Backend, Options, parse};

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn flags_are_read_and_passed_on() {
        assert_eq!(
            parse(&strings(&[
                "--backend",
                "postgres",
                "--seconds",
                "60",
                "--seed",
                "7"
            ])),
            Ok(Options {
                backend: Backend::Postgres,
                seconds: 60,
                extra: strings(&["--seed", "7"]),
            })
        );
        assert_eq!(
            parse(&strings(&["--backend", "sqlite"])).map(|options| options.seconds),
            Ok(30)
        );
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(parse(&strings(&[])).is_err());
        assert!(parse(&strings(&["--backend", "mysql"])).is_err());
        assert!(parse(&strings(&["--backend", "sqlite", "--seconds", "soon"])).is_err());
        assert!(parse(&strings(&["--backend", "sqlite", "--fast"])).is_err());
        assert!(parse(&strings(&["--backend"])).is_err());
    }
}
