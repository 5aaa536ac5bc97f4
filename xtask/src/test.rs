//! `cargo xtask test`: the workspace's tests, with PostgreSQL when available.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use crate::postgres::TempCluster;
use crate::process;

/// How the workspace is tested: the one place to change it (`ci` runs it too).
const CARGO_TEST: &[&str] = &["test", "--workspace", "--all-features"];

/// The examples that must run to completion on their own (embedded SQLite,
/// no server), each within [`EXAMPLE_LIMIT`]: the README promises it.
const EXAMPLES: &[&str] = &["quickstart", "cron", "unique", "cancel", "etl"];

/// How long one example may take.
const EXAMPLE_LIMIT: Duration = Duration::from_secs(60);

/// The example Prometheus alerting rules the README points to, checked with
/// `promtool` when it is installed.
const ALERT_RULES: &str = "deploy/prometheus/sitq-alerts.yml";

/// Runs [`CARGO_TEST`] plus `extra` with `SITQ_TEST_POSTGRES_URL` pointing at
/// a throw-away cluster, which is stopped and deleted afterwards whatever the
/// outcome. When the whole workspace is tested, the [`EXAMPLES`] run too,
/// `promtool` checks the [`ALERT_RULES`], and the chaos harness runs briefly
/// on each backend ([`run_chaos`]).
pub(crate) fn run(extra: &[OsString]) -> Result<(), String> {
    check_browser()?;
    let cluster = TempCluster::start()?;
    let mut command = process::cargo();
    let args = cargo_test_args(extra);
    let whole_workspace = args.iter().any(|arg| arg == "--workspace");
    command.args(args);
    if let Some(cluster) = &cluster {
        command.envs(cluster.test_env());
    }
    eprintln!("xtask: {}", process::display(&command));
    let result = process::run(&mut command);
    // Stop the server before reporting, so its messages come first.
    drop(cluster);
    result?;
    if whole_workspace {
        check_alert_rules()?;
        run_examples()?;
        run_chaos()?;
    }
    Ok(())
}

/// The programs the dashboard's browser test (`sitq-web/tests/browser.rs`)
/// drives, found on `PATH` as that test finds them.
const BROWSER: [(&str, &[&str]); 2] = [
    (
        "chromium",
        &["chromium", "chromium-browser", "google-chrome"],
    ),
    ("chromedriver", &["chromedriver"]),
];

/// With `CI=true` a missing browser is an error before anything is built;
/// otherwise the browser test skips, and this says so up front.
fn check_browser() -> Result<(), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = BROWSER
        .iter()
        .filter(|(_, names)| {
            !std::env::split_paths(&path)
                .any(|dir| names.iter().any(|name| dir.join(name).is_file()))
        })
        .map(|(what, _)| *what)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let what = missing.join(" and ");
    if std::env::var("CI").as_deref() == Ok("true") {
        return Err(format!(
            "CI=true but {what} is not on PATH: the dashboard's browser test needs it (.ci/run installs Debian's chromium and chromium-driver)"
        ));
    }
    eprintln!(
        "xtask: {what} not on PATH: the dashboard's browser test will skip (apt-get install chromium chromium-driver)"
    );
    Ok(())
}

/// `promtool check rules` on [`ALERT_RULES`]; skipped, and said so, when
/// promtool is not installed (Debian: `apt-get install prometheus`).
fn check_alert_rules() -> Result<(), String> {
    let mut command = std::process::Command::new("promtool");
    command
        .args(["check", "rules", ALERT_RULES])
        .current_dir(process::project_root());
    eprintln!("xtask: {}", process::display(&command));
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "`promtool check rules {ALERT_RULES}` failed ({status})"
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("xtask: skipped checking {ALERT_RULES}: promtool is not on PATH");
            Ok(())
        }
        Err(error) => Err(format!("could not run promtool: {error}")),
    }
}

/// Each of [`EXAMPLES`] as `cargo run --example NAME` runs it, from the
/// binary `cargo test` just built (so no second build with other features),
/// each bounded by [`EXAMPLE_LIMIT`].
fn run_examples() -> Result<(), String> {
    let dir = process::target_dir().join("debug").join("examples");
    for example in EXAMPLES {
        let binary = dir.join(example);
        if !binary.is_file() {
            return Err(format!(
                "the example {example} was not built at {}: is it declared in examples/?",
                binary.display()
            ));
        }
        let mut command = std::process::Command::new(binary);
        command.current_dir(process::project_root());
        eprintln!("xtask: example {example}");
        process::run_within(&mut command, EXAMPLE_LIMIT)?;
    }
    Ok(())
}

/// `cargo xtask chaos` for [`TEST_SECONDS`](crate::chaos::TEST_SECONDS)
/// on SQLite, then on a throw-away PostgreSQL cluster of its own (it is
/// restarted under the harness; skipped with a warning when PostgreSQL is
/// not installed, an error with `CI=true`), with the harness `cargo test`
/// just built for its own tests.
fn run_chaos() -> Result<(), String> {
    use crate::chaos;
    let harness = chaos::binary();
    if !harness.is_file() {
        return Err(format!(
            "the chaos harness was not built at {}: does chaos/ still have an integration test?",
            harness.display()
        ));
    }
    let seconds = chaos::TEST_SECONDS;
    chaos::run_harness(&harness, chaos::Backend::Sqlite, seconds, &[], None)?;
    match TempCluster::start()? {
        Some(cluster) => {
            let result = chaos::run_harness(
                &harness,
                chaos::Backend::Postgres,
                seconds,
                &[],
                Some(&cluster),
            );
            drop(cluster);
            result
        }
        None => {
            eprintln!("xtask: skipped the PostgreSQL chaos run: PostgreSQL is not installed");
            Ok(())
        }
    }
}

/// [`CARGO_TEST`] followed by `extra`, except that `--workspace` is left out
/// when `extra` picks packages: cargo would otherwise ignore `-p` and test
/// everything.
fn cargo_test_args(extra: &[OsString]) -> Vec<OsString> {
    let picks_packages = extra
        .iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| is_package_flag(arg));
    CARGO_TEST
        .iter()
        .filter(|arg| !(picks_packages && **arg == "--workspace"))
        .map(OsString::from)
        .chain(extra.iter().cloned())
        .collect()
}

/// `-p`, `-pNAME`, `--package` or `--package=NAME`.
fn is_package_flag(arg: &OsStr) -> bool {
    let Some(arg) = arg.to_str() else {
        return false;
    };
    arg.starts_with("-p") || arg == "--package" || arg.starts_with("--package=")
}

#[cfg(test)]
mod tests {
    use super::cargo_test_args;
    use std::ffi::OsString;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn whole_workspace_by_default() {
        assert_eq!(
            cargo_test_args(&args(&["--", "--nocapture"])),
            args(&["test", "--workspace", "--all-features", "--", "--nocapture"])
        );
    }

    #[test]
    fn picked_packages_replace_the_workspace() {
        assert_eq!(
            cargo_test_args(&args(&["-p", "sitq-postgres"])),
            args(&["test", "--all-features", "-p", "sitq-postgres"])
        );
        assert_eq!(
            cargo_test_args(&args(&["--package=sitq-core"])),
            args(&["test", "--all-features", "--package=sitq-core"])
        );
    }

    /// Checks the real file when promtool is installed, else says it skipped.
    #[test]
    fn the_alert_rules_pass_promtool() {
        super::check_alert_rules().expect("promtool check rules");
    }

    #[test]
    fn test_binary_arguments_do_not_pick_packages() {
        assert_eq!(
            cargo_test_args(&args(&["--", "-p"])),
            args(&["test", "--workspace", "--all-features", "--", "-p"])
        );
    }
}
