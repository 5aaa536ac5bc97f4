//! The worker process: this binary re-run as `sitq-bench worker …`, so the
//! worker's time and peak memory are its own.
//!
//! It speaks in lines on stdout: `READY` just before it starts claiming,
//! `PROGRESS <runs>` every 100 ms while counting, and on exit
//! `DONE <once> <never> <repeated> <peak_rss_kib>`. It stops gracefully
//! (finishing and storing every task it holds) once each of `--expect N`
//! no-op tasks ran, or when its stdin closes.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sitq::{Queue, Worker};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::Result;
use crate::progress::Progress;
use crate::tasks::{self, RunSummary, Runs};

/// How long the parent waits for any line from the worker before giving up.
const SILENCE: Duration = Duration::from_secs(300);

/// The worker process's `main`: `worker --url URL --concurrency C --expect N`.
pub fn main(args: &[String]) -> Result<()> {
    let mut url = None;
    let mut concurrency = 16;
    let mut expect = 0;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value()?.clone()),
            "--concurrency" => concurrency = value()?.parse()?,
            "--expect" => expect = value()?.parse()?,
            other => return Err(format!("worker: unknown argument {other:?}").into()),
        }
    }
    let url = url.ok_or("worker: --url is required")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(serve(&url, concurrency, expect))
}

async fn serve(url: &str, concurrency: usize, expect: usize) -> Result<()> {
    let queue = Queue::connect(url).await?;
    let runs = (expect > 0).then(|| Runs::new(expect));
    tasks::install(runs.clone());
    let worker = Worker::new(queue.clone())
        .concurrency(concurrency)
        .handle_signals(false);
    let stop = worker.shutdown_handle();

    let on_eof = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        on_eof.request();
    });
    if let Some(runs) = runs.clone() {
        let when_done = stop.clone();
        let counted = runs.clone();
        tokio::spawn(async move {
            counted.all_ran().await;
            when_done.request();
        });
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if say(&format!("PROGRESS {}", runs.distinct())).is_err() {
                    return;
                }
            }
        });
    }

    say("READY")?;
    worker.run().await?;
    let summary = runs.map(|runs| runs.summary()).unwrap_or_default();
    queue.close().await;
    say(&format!(
        "DONE {} {} {} {}",
        summary.once,
        summary.never,
        summary.repeated,
        peak_rss_kib().unwrap_or(0)
    ))?;
    Ok(())
}

fn say(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// This process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// What a worker process said when it stopped.
#[derive(Copy, Clone, Debug, Default)]
pub struct ChildReport {
    /// Its run counters (all zero when it was not counting).
    pub runs: RunSummary,
    /// Its peak resident set, in KiB (0 when unknown).
    pub peak_rss_kib: u64,
}

/// A worker process, seen from the benchmark; killed if dropped early.
#[derive(Debug)]
pub struct ChildWorker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildWorker {
    /// Starts a worker process on `url`, counting `expect` no-op tasks (0:
    /// not counting; it then runs until [`finish`](ChildWorker::finish)), and
    /// waits for its `READY`.
    pub async fn start(url: &str, concurrency: usize, expect: usize) -> Result<ChildWorker> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("worker")
            .args(["--url", url])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--expect", &expect.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("worker process has no stdout")?;
        let mut worker = ChildWorker {
            stdin: child.stdin.take(),
            child,
            lines: BufReader::new(stdout).lines(),
        };
        match worker.next_line().await?.as_deref() {
            Some("READY") => Ok(worker),
            other => Err(format!("worker process said {other:?} instead of READY").into()),
        }
    }

    /// The worker process's id (`None` once it has exited).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn next_line(&mut self) -> Result<Option<String>> {
        match tokio::time::timeout(SILENCE, self.lines.next_line()).await {
            Ok(line) => Ok(line?),
            Err(_) => Err(format!("worker process silent for {SILENCE:?}").into()),
        }
    }

    /// Follows the worker until it stops on its own (every expected task
    /// ran and its completion is stored); the instant its `DONE` arrived.
    pub async fn until_done(&mut self, progress: &Progress) -> Result<(Instant, ChildReport)> {
        loop {
            let Some(line) = self.next_line().await? else {
                let status = self.child.wait().await?;
                return Err(format!("worker process exited early ({status})").into());
            };
            let at = Instant::now();
            if let Some(count) = line.strip_prefix("PROGRESS ") {
                progress.set(count.parse().unwrap_or(0));
            } else if let Some(done) = line.strip_prefix("DONE ") {
                let report = parse_done(done)?;
                let status = self.child.wait().await?;
                if !status.success() {
                    return Err(format!("worker process failed ({status})").into());
                }
                return Ok((at, report));
            }
        }
    }

    /// Closes the worker's stdin (asking it to stop) and waits for it.
    pub async fn finish(mut self, progress: &Progress) -> Result<ChildReport> {
        self.stdin = None;
        Ok(self.until_done(progress).await?.1)
    }
}

fn parse_done(fields: &str) -> Result<ChildReport> {
    let numbers: Vec<u64> = fields
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    let [once, never, repeated, peak_rss_kib] = numbers[..] else {
        return Err(format!("malformed DONE line: {fields:?}").into());
    };
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Ok(ChildReport {
        runs: RunSummary {
            once: count(once),
            never: count(never),
            repeated: count(repeated),
        },
        peak_rss_kib,
    })
}
