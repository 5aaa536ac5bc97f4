//! A progress bar on stderr: redrawn at most ten times a second on a
//! terminal; one line per finished step otherwise (logs stay readable).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const WIDTH: usize = 30;
const REDRAW: Duration = Duration::from_millis(100);

/// Whether bars are drawn at all (off with `--json` piped, or `--quiet`).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns all progress output on or off.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// One step's bar.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: usize,
    started: Instant,
    terminal: bool,
    last_draw: Mutex<Option<Instant>>,
}

impl Progress {
    /// A bar for `label`, counting up to `total`.
    pub fn new(label: impl Into<String>, total: usize) -> Progress {
        let progress = Progress {
            label: label.into(),
            total,
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            last_draw: Mutex::new(None),
        };
        progress.draw(0);
        progress
    }

    /// A bar that draws nothing (for helpers called inside another step).
    pub fn hidden() -> Progress {
        Progress {
            label: String::new(),
            total: 0,
            started: Instant::now(),
            terminal: false,
            last_draw: Mutex::new(Some(Instant::now())),
        }
    }

    /// Sets how far the step is.
    pub fn set(&self, done: usize) {
        if !self.terminal || !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        {
            let Ok(mut last) = self.last_draw.try_lock() else {
                return;
            };
            if last.is_some_and(|last| now - last < REDRAW) && done < self.total {
                return;
            }
            *last = Some(now);
        }
        self.draw(done);
    }

    fn draw(&self, done: usize) {
        if !self.terminal || !ENABLED.load(Ordering::Relaxed) || self.label.is_empty() {
            return;
        }
        let filled = (done.min(self.total) * WIDTH)
            .checked_div(self.total)
            .unwrap_or(WIDTH);
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(WIDTH - filled));
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{:<52} [{bar}] {done}/{} {:.1}s",
            self.label,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }

    /// Ends the step, with a short note of what it measured.
    pub fn finish(self, note: &str) {
        if self.label.is_empty() || !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let clear = if self.terminal { "\r\x1b[2K" } else { "" };
        let _ = writeln!(
            err,
            "{clear}{:<52} {note} ({:.1}s)",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
    }
}
