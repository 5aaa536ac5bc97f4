//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.

use crate::{process, test};

/// One named check.
struct Step {
    /// Short name used in progress lines and in the failure message.
    name: &'static str,
    /// Runs the check.
    run: fn() -> Result<(), String>,
}

/// The checks, cheapest first so that a formatting slip fails in seconds.
const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        run: || cargo(&["fmt", "--all", "--", "--check"], &[]),
    },
    Step {
        name: "clippy",
        run: || {
            cargo(
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            )
        },
    },
    Step {
        name: "test",
        run: || test::run(&[]),
    },
    Step {
        name: "doc",
        run: || {
            cargo(
                &["doc", "--workspace", "--all-features", "--no-deps"],
                &[("RUSTDOCFLAGS", "-D warnings")],
            )
        },
    },
];

/// Runs every step; the error names the step that failed.
pub(crate) fn run() -> Result<(), String> {
    let count = STEPS.len();
    for (index, step) in STEPS.iter().enumerate() {
        eprintln!("xtask ci: [{}/{count}] {}", index + 1, step.name);
        (step.run)().map_err(|error| format!("ci step `{}` failed: {error}", step.name))?;
    }
    eprintln!("xtask ci: all {count} steps passed");
    Ok(())
}

/// Runs cargo with `args` and extra environment variables.
fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let mut command = process::cargo();
    command.args(args).envs(env.iter().copied());
    eprintln!("xtask: {}", process::display(&command));
    process::run(&mut command)
}
