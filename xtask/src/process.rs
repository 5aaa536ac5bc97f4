//! Running child processes with error messages that name the command.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root: xtask's own manifest directory is one level below it.
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
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
