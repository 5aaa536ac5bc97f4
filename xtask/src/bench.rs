//! `cargo xtask bench [FLAGS]`: builds the benchmark harness (`sitq-bench`)
//! in release mode and runs it, with a throw-away PostgreSQL cluster when
//! PostgreSQL is measured and its server binaries are installed.
//!
//! The flags are `sitq-bench`'s own (`--n`, `--concurrency`, `--batch`,
//! `--backend sqlite|postgres|all`, `--synchronous`, `--samples`, `--filler`,
//! `--only`, `--pg-fsync on|off`, `--quick`, `--json`, `--help`); they are
//! checked here only enough to know whether PostgreSQL is wanted and how to
//! start it, and passed on as given. The throw-away cluster runs with
//! `fsync` on, the server's default, unless `--pg-fsync off` (tests run
//! theirs with it off); the harness reports the server's setting.
//! The figures go to stdout (a table, or one JSON object with `--json`);
//! the build, the cluster and the progress bar talk on stderr.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use crate::postgres::TempCluster;
use crate::process;

/// The environment variable through which the harness finds a PostgreSQL
/// server on which it may create and drop databases.
const URL_VAR: &str = "SITQ_BENCH_POSTGRES_URL";

/// The error for `--backend postgres` without a server to start.
const NO_SERVER_BINARIES: &str = "--backend postgres needs PostgreSQL's server binaries \
     (pg_ctl, initdb); install the postgresql package or set SITQ_BENCH_POSTGRES_URL";

/// Flags of `sitq-bench` that take a value.
const VALUE_FLAGS: &[&str] = &[
    "--n",
    "--concurrency",
    "--batch",
    "--backend",
    "--synchronous",
    "--samples",
    "--filler",
    "--only",
    "--pg-fsync",
];

/// Flags of `sitq-bench` that stand alone.
const SWITCHES: &[&str] = &["--quick", "--json", "--help", "-h"];

/// Builds and runs the harness with `args`; a throw-away cluster, if one was
/// started, is stopped and deleted afterwards whatever the outcome.
pub fn run(args: &[String]) -> Result<(), String> {
    let wants_postgres = wants_postgres(args)?;
    let fsync = pg_fsync(args)?;

    let mut build = process::cargo();
    build.args(["build", "--release", "--package", "sitq-bench"]);
    eprintln!("xtask: {}", process::display(&build));
    process::run(&mut build)?;

    // A server given from outside is used as is; otherwise start our own.
    let outside = env::var(URL_VAR).ok().filter(|url| !url.is_empty());
    let cluster = match (&wants_postgres, &outside) {
        (Postgres::No, _) | (_, Some(_)) => None,
        (Postgres::Required, None) => Some(
            TempCluster::start_for_bench(fsync)?.ok_or_else(|| NO_SERVER_BINARIES.to_owned())?,
        ),
        (Postgres::IfAvailable, None) => TempCluster::start_for_bench(fsync)?,
    };

    let mut bench = Command::new(binary());
    bench.args(args).current_dir(process::project_root());
    match (&cluster, &outside) {
        (Some(cluster), _) => {
            bench.env(URL_VAR, cluster.url());
        }
        (None, Some(url)) if wants_postgres != Postgres::No => {
            bench.env(URL_VAR, url);
        }
        _ => {
            bench.env_remove(URL_VAR);
        }
    }
    eprintln!("xtask: {}", process::display(&bench));
    let result = process::run(&mut bench);
    // Stop the server before reporting, so its messages come first.
    drop(cluster);
    result
}

/// Whether a run measures PostgreSQL.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Postgres {
    /// `--backend sqlite`, or `--help`.
    No,
    /// `--backend postgres`: a missing server is an error.
    Required,
    /// `--backend all` (the default): measured when a server can be had.
    IfAvailable,
}

/// Reads `--backend` (and rejects flags the harness does not know, before
/// a release build is spent on them).
fn wants_postgres(args: &[String]) -> Result<Postgres, String> {
    let mut wanted = Postgres::IfAvailable;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let arg = arg.as_str();
        if SWITCHES.contains(&arg) {
            if matches!(arg, "--help" | "-h") {
                return Ok(Postgres::No);
            }
            continue;
        }
        if !VALUE_FLAGS.contains(&arg) {
            return Err(format!(
                "bench: unknown flag `{arg}`; flags: {} {}",
                VALUE_FLAGS.join(" "),
                SWITCHES.join(" ")
            ));
        }
        let value = args
            .next()
            .ok_or_else(|| format!("bench: `{arg}` needs a value"))?;
        if arg == "--backend" {
            wanted = match value.as_str() {
                "sqlite" => Postgres::No,
                "postgres" => Postgres::Required,
                "all" => Postgres::IfAvailable,
                other => {
                    return Err(format!(
                        "bench: --backend expects sqlite, postgres or all, not `{other}`"
                    ));
                }
            };
        }
    }
    Ok(wanted)
}

/// Whether the throw-away cluster syncs to disk: `--pg-fsync on|off`, on
/// when not given (the last one given wins).
fn pg_fsync(args: &[String]) -> Result<bool, String> {
    let mut fsync = true;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--pg-fsync" {
            fsync = match args.next().map(String::as_str) {
                Some("on") => true,
                Some("off") => false,
                other => {
                    return Err(format!(
                        "bench: --pg-fsync expects on or off, not {}",
                        other.map_or("nothing".to_owned(), |value| format!("`{value}`"))
                    ));
                }
            };
        } else if VALUE_FLAGS.contains(&arg.as_str()) {
            // Skip the value, which might read `--pg-fsync`.
            args.next();
        }
    }
    Ok(fsync)
}

/// Where `cargo build --release` puts the harness: under `CARGO_TARGET_DIR`
/// when set (relative to the workspace root, as cargo reads it), else `target`.
fn binary() -> PathBuf {
    process::target_dir().join("release").join("sitq-bench")
}

#[cfg(test)]
mod tests {
    use super::{Postgres, pg_fsync, wants_postgres};

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn backend_flag_decides_about_postgres() {
        assert_eq!(wants_postgres(&strings(&[])), Ok(Postgres::IfAvailable));
        assert_eq!(
            wants_postgres(&strings(&["--quick", "--backend", "sqlite"])),
            Ok(Postgres::No)
        );
        assert_eq!(
            wants_postgres(&strings(&["--backend", "postgres", "--n", "5"])),
            Ok(Postgres::Required)
        );
        assert_eq!(wants_postgres(&strings(&["--help"])), Ok(Postgres::No));
    }

    #[test]
    fn fsync_is_on_unless_asked_off() {
        assert_eq!(pg_fsync(&strings(&["--quick"])), Ok(true));
        assert_eq!(pg_fsync(&strings(&["--pg-fsync", "off"])), Ok(false));
        assert_eq!(
            pg_fsync(&strings(&["--pg-fsync", "off", "--pg-fsync", "on"])),
            Ok(true)
        );
        assert!(pg_fsync(&strings(&["--pg-fsync", "maybe"])).is_err());
        assert!(pg_fsync(&strings(&["--pg-fsync"])).is_err());
    }

    #[test]
    fn unknown_flags_and_missing_values_are_errors() {
        assert!(wants_postgres(&strings(&["--fast"])).is_err());
        assert!(wants_postgres(&strings(&["--n"])).is_err());
        assert!(wants_postgres(&strings(&["--backend", "mysql"])).is_err());
    }
}
