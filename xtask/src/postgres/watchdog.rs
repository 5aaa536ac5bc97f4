//! Cleaning up after an xtask that was killed (Ctrl-C, SIGTERM, SIGKILL).
//!
//! `pg_ctl` starts the server in its own session, so Ctrl-C does not reach it,
//! and std offers no way to catch the signal that does end xtask. So every
//! cluster gets a small `sh` watchdog that ignores the signals sent to a whole
//! process group (Ctrl-C, hang-up, `timeout`'s SIGTERM) and waits on a pipe
//! whose write end only xtask holds (std opens pipes close-on-exec, so no other
//! child inherits it). The kernel closes that end however xtask ends: a line
//! on it means "already cleaned up", end-of-file means "xtask died, clean up".

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::process;

/// The watchdog: `$1` is the cluster directory, the rest the stop command.
const SCRIPT: &str = r#"
trap '' INT HUP TERM
dir=$1
shift
if read -r _done; then exit 0; fi
"$@" >/dev/null 2>&1
rm -rf "$dir"
"#;

/// A running watchdog for one cluster.
pub(super) struct Watchdog {
    /// The `sh` process.
    child: Child,
    /// The write end of its stdin.
    stdin: ChildStdin,
}

impl Watchdog {
    /// Starts a watchdog that, if xtask dies first, runs `stop` and deletes `dir`.
    pub(super) fn spawn(dir: &Path, stop: &Command) -> Result<Self, String> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(SCRIPT)
            .arg("sh")
            .arg(dir)
            .arg(stop.get_program())
            .args(stop.get_args())
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().map_err(|error| {
            format!(
                "could not start the cleanup watchdog `{}`: {error}",
                process::display(&command)
            )
        })?;
        let Some(stdin) = child.stdin.take() else {
            return Err("the cleanup watchdog has no stdin pipe".to_string());
        };
        Ok(Watchdog { child, stdin })
    }

    /// Tells the watchdog the cluster is already gone and waits for it to exit.
    pub(super) fn dismiss(mut self) {
        // If it is already gone there is nobody left to tell.
        let _ = self.stdin.write_all(b"done\n");
        drop(self.stdin);
        let _ = self.child.wait();
    }
}
