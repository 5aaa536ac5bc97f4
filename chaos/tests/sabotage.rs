//! The harness catches a loss end to end: with `--sabotage-lose` one
//! acknowledged task is cancelled before it can run, and a short run on
//! SQLite (kills included) must report exactly that one task lost and fail.
//! (This test is also why `cargo test` builds the harness that `cargo
//! xtask test` runs.)

use std::process::Command;

#[test]
fn an_acknowledged_task_that_never_succeeds_is_reported_lost() {
    let output = Command::new(env!("CARGO_BIN_EXE_sitq-chaos"))
        .args(["run", "--backend", "sqlite", "--seconds", "4"])
        .args(["--rate", "50", "--sabotage-lose"])
        .output()
        .expect("could not run sitq-chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // A failed run keeps its directory for inspection; this one is expected.
    if let Some(dir) = stdout
        .lines()
        .find_map(|line| line.strip_prefix("chaos: the run's logs are in "))
    {
        let _ = std::fs::remove_dir_all(dir);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a run with a lost task passed:\n{stdout}\n{stderr}"
    );
    let last = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with("chaos: backend=sqlite "))
        .unwrap_or_else(|| panic!("no final line:\n{stdout}\n{stderr}"));
    assert!(last.contains(" lost=1 "), "{last}\n{stdout}");
    assert!(
        stdout.contains("FAIL: lost: task ") && stdout.contains(" is cancelled"),
        "the lost task is not named:\n{stdout}"
    );
    assert_eq!(
        stdout.matches("FAIL: ").count(),
        1,
        "only the sabotaged task may fail the run:\n{stdout}"
    );
}
