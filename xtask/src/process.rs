//! Running child processes with error messages that name the command.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root: xtask's own manifest directory is one level below it.
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Where cargo puts what it builds: `CARGO_TARGET_DIR` when set (relative to
/// the workspace root, as cargo reads it), else `target`.
pub(crate) fn target_dir() -> PathBuf {
    let root = project_root();
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// A `cargo` command run from the workspace root.
///
/// Uses the cargo that runs xtask (`$CARGO`), so the toolchain stays the same.
pub(crate) fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(project_root());
    command
}

/// Runs `command` with inherited stdio; a non-zero exit is an error.
pub(crate) fn run(command: &mut Command) -> Result<(), String> {
    let shown = display(command);
    let status = command
        .status()
        .map_err(|error| format!("could not run `{shown}`: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// Runs `command` with inherited stdio like [`run`], but kills it and fails
/// when it has not finished within `limit`.
pub(crate) fn run_within(command: &mut Command, limit: Duration) -> Result<(), String> {
    let shown = display(command);
    let mut child = command
        .stdin(Stdio::null())
        .spawn()
        .map_err(|error| format!("could not run `{shown}`: {error}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("`{shown}` failed ({status})")),
            Ok(None) if Instant::now() >= deadline => {
                // Best effort: it may have exited just now.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{shown}` did not finish within {}s and was killed",
                    limit.as_secs()
                ));
            }
            // Polling a child is the portable way to bound its run time.
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => return Err(format!("could not wait for `{shown}`: {error}")),
        }
    }
}

/// Runs `command` capturing its output and returns its stdout; a non-zero
/// exit is an error that includes everything the command printed.
pub(crate) fn output(command: &mut Command) -> Result<String, String> {
    let shown = display(command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("could not run `{shown}`: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let printed = format!("{}\n{}", stdout.trim_end(), stderr.trim_end());
    Err(format!(
        "`{shown}` failed ({}):\n{}",
        output.status,
        printed.trim()
    ))
}

/// `command` as a person would type it (program without its directory, no
/// quoting), for messages.
pub(crate) fn display(command: &Command) -> String {
    let program = Path::new(command.get_program());
    let mut shown = program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned();
    for arg in command.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}
