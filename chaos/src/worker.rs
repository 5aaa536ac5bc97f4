//! The worker processes: this binary re-run as `sitq-chaos worker …`, so
//! that the harness can SIGKILL one without touching the others.
//!
//! A worker says `READY` on stdout once it is connected and its run log is
//! open, then runs tasks until its stdin closes (a graceful stop: every task
//! it holds is finished and stored) or it is killed. sitq's warnings go to
//! its stderr, which the harness points at a file in the run directory.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sitq::{Queue, Worker};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tracing_subscriber::EnvFilter;

use crate::Result;
use crate::runlog::{self, RunLog};

/// How long a worker may take to say `READY` (connecting, migrations).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// What a worker process is started with.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The queue's URL.
    pub url: String,
    /// Where run logs and worker logs go.
    pub dir: PathBuf,
    /// Tasks run at once per worker.
    pub concurrency: usize,
    /// The lease of a claim (heartbeats every third of it).
    pub lease: Duration,
}

/// The worker process's `main`: `worker --url URL --id ID --dir DIR
/// --concurrency C --lease-ms MS`.
pub fn main(args: &[String]) -> Result<()> {
    let mut url = None;
    let mut id = None;
    let mut dir = None;
    let mut concurrency = 8;
    let mut lease_ms = 3000;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("worker: {arg} needs a value"))
        };
        match arg.as_str() {
            "--url" => url = Some(value()?.clone()),
            "--id" => id = Some(value()?.clone()),
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--concurrency" => concurrency = value()?.parse()?,
            "--lease-ms" => lease_ms = value()?.parse()?,
            other => return Err(format!("worker: unknown argument {other:?}").into()),
        }
    }
    let url = url.ok_or("worker: --url is required")?;
    let id = id.ok_or("worker: --id is required")?;
    let dir = dir.ok_or("worker: --dir is required")?;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    let lease = Duration::from_millis(lease_ms);
    runtime.block_on(serve(&url, &id, &dir, concurrency, lease))
}

async fn serve(url: &str, id: &str, dir: &Path, concurrency: usize, lease: Duration) -> Result<()> {
    let queue = Queue::connect(url).await?;
    let log_path = run_log_path(dir, id);
    let log = RunLog::open(&log_path)
        .map_err(|error| format!("could not open {}: {error}", log_path.display()))?;
    if !runlog::install(log) {
        return Err("a run log was installed twice".into());
    }
    let worker = Worker::new(queue.clone())
        .worker_id(id)
        .concurrency(concurrency)
        .lease(lease)
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    std::thread::spawn(move || {
        // End of input, or an error reading it: nobody is left to ask.
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        stop.request();
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY")?;
    out.flush()?;
    drop(out);
    worker.run().await?;
    queue.close().await;
    Ok(())
}

/// Where worker `id` logs its runs.
pub fn run_log_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("runs-{id}.log"))
}

/// A running worker process, seen from the harness; killed if dropped.
#[derive(Debug)]
pub struct ChildWorker {
    /// Its worker id (also its run log's name).
    pub id: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ChildWorker {
    /// Starts worker `id` and waits for its `READY`; a worker that cannot
    /// connect yet (the server is restarting) is tried again until
    /// [`READY_WITHIN`] has passed.
    pub async fn start(config: &WorkerConfig, id: &str) -> Result<ChildWorker> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            match Self::try_start(config, id).await {
                Ok(worker) => return Ok(worker),
                Err(error) if Instant::now() >= deadline => {
                    return Err(format!("worker {id} did not start: {error}").into());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn try_start(config: &WorkerConfig, id: &str) -> Result<ChildWorker> {
        let exe = std::env::current_exe()?;
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.dir.join(format!("worker-{id}.log")))?;
        let lease_ms = config.lease.as_millis().to_string();
        let mut child = Command::new(exe)
            .arg("worker")
            .args(["--url", &config.url, "--id", id])
            .arg("--dir")
            .arg(&config.dir)
            .args(["--concurrency", &config.concurrency.to_string()])
            .args(["--lease-ms", &lease_ms])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("worker process has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let said = tokio::time::timeout(READY_WITHIN, lines.next_line()).await;
        match said {
            Ok(Ok(Some(line))) if line == "READY" => Ok(ChildWorker {
                id: id.to_owned(),
                stdin: child.stdin.take(),
                child,
            }),
            other => {
                let _ = child.kill().await;
                Err(format!("worker {id} said {other:?} instead of READY").into())
            }
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILLs it and waits until it is reaped.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Its exit status if it has exited on its own.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Closes its stdin (a graceful stop) and waits up to `limit` for it to
    /// exit; its exit status, or an error if it had to be killed.
    pub async fn finish(mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        self.stdin = None;
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!("worker {} did not stop within {limit:?}", self.id).into())
            }
        }
    }
}
