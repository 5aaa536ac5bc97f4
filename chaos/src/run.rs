//! `sitq-chaos run`: the harness. It starts the worker processes and the
//! producers, injects faults for the time asked, lets the queue drain,
//! stops the workers gracefully, and judges what happened ([`check`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sitq::admin::TaskFilter;
use sitq::{Queue, TaskId, TaskStatus};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::check::{self, Cause, Disruption, Faults, Kill};
use crate::fleet::Fleet;
use crate::produce::{self, Produced};
use crate::report::{self, Outcome, Recovery};
use crate::runlog::WORK;
use crate::worker::WorkerConfig;
use crate::{Result, now_micros, say, server, watch as watcher};

const HELP: &str = "\
sitq-chaos run: producers and worker processes under load while workers are
SIGKILLed (and on PostgreSQL the server restarted and its connections
terminated); then every task must have succeeded, and every rerun must follow
a fault. Normally run by `cargo xtask chaos`.

usage: sitq-chaos run --backend sqlite|postgres [flags] [-- RESTART COMMAND...]

  --backend B        sqlite (a fresh file in a temporary directory) or postgres
  --seconds N        how long faults are injected under load (default 30)
  --url URL          the PostgreSQL database (required for postgres)
  --workers N        worker processes (default 4)
  --concurrency C    tasks each worker runs at once (default 8)
  --rate R           tasks enqueued per second, over 2 producers (default 100)
  --lease-ms MS      the workers' claim lease (default 3000)
  --seed S           the fault schedule's seed (default: from the clock)
  --keep             keep the run directory (logs, SQLite file) even on success
  --restart-dir DIR  postgres: the directory to run the restart command from
  -- COMMAND...      postgres: the command that restarts the server, e.g.
                     pg_ctl -D DATA -l LOG -m immediate -w restart
";

/// Which backend is tortured.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file shared by every process.
    Sqlite,
    /// A PostgreSQL server the harness may restart.
    Postgres,
}

impl Backend {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The command line of `run`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The backend.
    pub backend: Backend,
    /// How long faults are injected.
    pub seconds: u64,
    /// The PostgreSQL URL.
    pub url: Option<String>,
    /// Worker processes.
    pub workers: usize,
    /// Tasks each worker runs at once.
    pub concurrency: usize,
    /// Tasks enqueued per second in all.
    pub rate: u32,
    /// The claim lease.
    pub lease: Duration,
    /// The fault schedule's seed.
    pub seed: u64,
    /// Keep the run directory.
    pub keep: bool,
    /// Test only: cancel one acknowledged task, which must then be reported lost.
    pub sabotage_lose: bool,
    /// The server restart command (PostgreSQL).
    pub restart: Vec<String>,
    /// Where to run it.
    pub restart_dir: Option<PathBuf>,
}

/// Parses the flags; `None` for `--help` (printed).
pub fn parse(args: &[String]) -> Result<Option<Config>> {
    let mut config = Config {
        backend: Backend::Sqlite,
        seconds: 30,
        url: None,
        workers: 4,
        concurrency: 8,
        rate: 100,
        lease: Duration::from_secs(3),
        seed: now_micros().unsigned_abs(),
        keep: false,
        sabotage_lose: false,
        restart: Vec::new(),
        restart_dir: None,
    };
    let mut backend = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--backend" => {
                backend = Some(match value()?.as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" => Backend::Postgres,
                    other => {
                        return Err(
                            format!("--backend expects sqlite or postgres, not {other:?}").into(),
                        );
                    }
                });
            }
            "--seconds" => config.seconds = number(arg, value()?)?,
            "--url" => config.url = Some(value()?.clone()),
            "--workers" => config.workers = number(arg, value()?)?,
            "--concurrency" => config.concurrency = number(arg, value()?)?,
            "--rate" => config.rate = number(arg, value()?)?,
            "--lease-ms" => config.lease = Duration::from_millis(number(arg, value()?)?),
            "--seed" => config.seed = number(arg, value()?)?,
            "--keep" => config.keep = true,
            "--restart-dir" => config.restart_dir = Some(PathBuf::from(value()?)),
            "--sabotage-lose" => config.sabotage_lose = true,
            "--help" | "-h" => {
                say(HELP.trim_end());
                return Ok(None);
            }
            "--" => {
                config.restart = args.cloned().collect();
                break;
            }
            other => return Err(format!("unknown flag {other:?}\n\n{HELP}").into()),
        }
    }
    config.backend = backend.ok_or("--backend sqlite|postgres is required")?;
    if config.workers == 0 || config.concurrency == 0 || config.rate == 0 {
        return Err("--workers, --concurrency and --rate must be at least 1".into());
    }
    if config.backend == Backend::Postgres && (config.url.is_none() || config.restart.is_empty()) {
        return Err(
            "--backend postgres needs --url URL and, after --, the server restart command".into(),
        );
    }
    Ok(Some(config))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| format!("{flag} expects a number, not {value:?}").into())
}

/// What the harness's tasks share.
#[derive(Debug)]
pub struct Shared {
    /// When the run began, for the report's timestamps.
    pub began: Instant,
    /// The same, in µs since the epoch.
    pub began_micros: i64,
    /// Ids of acknowledged enqueues (producers' and probes').
    pub acks: Mutex<Vec<TaskId>>,
    /// The faults injected.
    pub faults: Mutex<Faults>,
    /// Recovery from each fault, as measured.
    pub recoveries: Mutex<Vec<Recovery>>,
    /// Faults whose recovery is still being watched.
    pub watching: Mutex<HashSet<String>>,
    /// Probes enqueued so far (names their unique keys).
    pub probes: AtomicU64,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            began: Instant::now(),
            began_micros: now_micros(),
            acks: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            recoveries: Mutex::new(Vec::new()),
            watching: Mutex::new(HashSet::new()),
            probes: AtomicU64::new(0),
        }
    }

    /// Prints `line` stamped with the time since the run began.
    pub fn say(&self, line: &str) {
        say(&format!(
            "[{:6.1}s] {line}",
            self.began.elapsed().as_secs_f64()
        ));
    }
}

/// Locks a mutex whose holder may have panicked (the data stays usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `run`'s `main`: whether the run passed.
pub fn main(args: &[String]) -> Result<bool> {
    let Some(config) = parse(args)? else {
        return Ok(true);
    };
    let dir = create_dir()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let passed = runtime.block_on(run(&config, &dir))?;
    if passed && !config.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        say(&format!("chaos: the run's logs are in {}", dir.display()));
    }
    Ok(passed)
}

/// How many producer tasks enqueue.
const PRODUCERS: u64 = 2;

/// When the first PostgreSQL fault comes, and the spacing of the next ones.
const FIRST_SERVER_FAULT: Duration = Duration::from_secs(4);
const SERVER_FAULT_EVERY: (Duration, Duration) = (Duration::from_secs(6), Duration::from_secs(9));

/// The spacing of worker kills.
const KILL_EVERY: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(4));

async fn run(config: &Config, dir: &Path) -> Result<bool> {
    let url = match (&config.backend, &config.url) {
        (Backend::Sqlite, _) => format!("sqlite://{}", dir.join("chaos.db").display()),
        (Backend::Postgres, Some(url)) => url.clone(),
        (Backend::Postgres, None) => return Err("--url is required for postgres".into()),
    };
    // Creates and migrates the database before any worker starts.
    let queue = Queue::connect(&url).await?;
    let shared = Arc::new(Shared::new());
    shared.say(&format!(
        "chaos: {} with {} worker processes x {} slots (lease {:?}), {PRODUCERS} producers at {} tasks/s for {}s, seed {}",
        config.backend.name(),
        config.workers,
        config.concurrency,
        config.lease,
        config.rate,
        config.seconds,
        config.seed
    ));
    let worker_config = WorkerConfig {
        url: url.clone(),
        dir: dir.to_path_buf(),
        concurrency: config.concurrency,
        lease: config.lease,
    };
    let mut fleet = Fleet::start(worker_config, config.workers, shared.clone()).await?;
    shared.say(&format!(
        "{} workers ready; producing and injecting faults for {}s",
        config.workers, config.seconds
    ));

    let (stop_producing, producing) = watch::channel(false);
    let period = Duration::from_secs_f64(PRODUCERS as f64 / f64::from(config.rate));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|first| {
            tokio::spawn(produce::produce(
                url.clone(),
                first,
                PRODUCERS,
                period,
                shared.clone(),
                producing.clone(),
            ))
        })
        .collect();
    if config.sabotage_lose {
        produce::sabotage_lose(&queue, &shared).await?;
    }

    let mut watchers = JoinSet::new();
    inject_faults(config, &url, &queue, &mut fleet, &shared, &mut watchers).await?;

    shared.say("faults stop; stopping the producers");
    let _ = stop_producing.send(true);
    let mut produced = Produced::default();
    for producer in producers {
        produced.add(producer.await??);
    }
    shared.say(&format!(
        "producers stopped after {} tasks ({} enqueue calls failed and were retried); draining",
        produced.tasks, produced.retries
    ));

    let drain_limit = Duration::from_secs(60) + config.lease * 3;
    let drained = fleet.drain(&queue, drain_limit).await?;
    // Every fault's recovery is over once the queue drained; a watcher
    // still waiting has seen something never come back.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while watchers.join_next().await.is_some() {}
    })
    .await;
    watchers.abort_all();
    let unrecovered: Vec<String> = lock(&shared.watching).iter().cloned().collect();
    let stopped = fleet.stop().await;

    let acks = lock(&shared.acks).clone();
    let succeeded = succeeded(&queue).await?;
    let in_queue = workload_size(&queue).await?;
    let lost_statuses = statuses(&queue, &acks, &succeeded).await;
    let runs = read_runs(dir)?;
    let faults = lock(&shared.faults).clone();
    let verdict = check::check(&acks, &succeeded, runs, &faults);
    queue.close().await;
    let outcome = Outcome {
        backend: config.backend,
        began_micros: shared.began_micros,
        produced,
        verdict,
        faults,
        recoveries: lock(&shared.recoveries).clone(),
        unrecovered,
        drained,
        worker_failures: [fleet.failures(), stopped].concat(),
        in_queue,
        lost_statuses,
    };
    Ok(report::print(&outcome))
}

/// Kills workers (and on PostgreSQL restarts the server and terminates its
/// connections) until `config.seconds` have passed; each fault's recovery
/// is watched by a task in `watchers`.
async fn inject_faults(
    config: &Config,
    url: &str,
    queue: &Queue,
    fleet: &mut Fleet,
    shared: &Arc<Shared>,
    watchers: &mut JoinSet<()>,
) -> Result<()> {
    let mut rng = Rng::new(config.seed);
    let now = tokio::time::Instant::now();
    let deadline = now + Duration::from_secs(config.seconds);
    let mut next_kill = now + rng.between(KILL_EVERY);
    let mut next_server_fault =
        (config.backend == Backend::Postgres).then(|| now + FIRST_SERVER_FAULT);
    let mut server_faults = 0_u32;
    let mut check_workers = tokio::time::interval(Duration::from_millis(500));
    loop {
        let server_fault_due = async {
            match next_server_fault {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return Ok(()),
            () = tokio::time::sleep_until(next_kill) => {
                let slot = rng.below(fleet.len());
                let killed = fleet.kill(slot).await?;
                let at = now_micros();
                lock(&shared.faults).kills.push(Kill { worker: killed.clone(), at });
                let label = format!("kill of {killed}");
                lock(&shared.watching).insert(label.clone());
                watchers.spawn(watcher::after_kill(queue.clone(), shared.clone(), killed, label, Instant::now()));
                fleet.replace(slot).await?;
                next_kill = tokio::time::Instant::now() + rng.between(KILL_EVERY);
            }
            () = server_fault_due => {
                server_faults += 1;
                let cause = if server_faults % 2 == 1 { Cause::ServerRestart } else { Cause::BackendTermination };
                server_fault(config, url, queue, shared, watchers, cause, server_faults).await?;
                next_server_fault = Some(tokio::time::Instant::now() + rng.between(SERVER_FAULT_EVERY));
            }
            _ = check_workers.tick() => fleet.check_exits().await?,
        }
    }
}

/// Restarts the server or terminates its connections, and watches the
/// queue make progress again.
async fn server_fault(
    config: &Config,
    url: &str,
    queue: &Queue,
    shared: &Arc<Shared>,
    watchers: &mut JoinSet<()>,
    cause: Cause,
    number: u32,
) -> Result<()> {
    let from = now_micros();
    let began = Instant::now();
    let label = match cause {
        Cause::ServerRestart => {
            shared.say(&format!(
                "server restart #{number}: pg_ctl restart -m immediate"
            ));
            server::restart(&config.restart, config.restart_dir.as_deref()).await?;
            shared.say(&format!(
                "server restart #{number}: accepting connections again after {:.1}s",
                began.elapsed().as_secs_f64()
            ));
            format!("server restart #{number}")
        }
        _ => {
            let count = server::terminate_backends(url).await?;
            shared.say(&format!(
                "backend termination #{number}: pg_terminate_backend ended {count} client connections"
            ));
            format!("backend termination #{number}")
        }
    };
    lock(&shared.faults).disruptions.push(Disruption {
        cause,
        from,
        to: now_micros(),
    });
    lock(&shared.watching).insert(label.clone());
    watchers.spawn(watcher::after_server_fault(
        queue.clone(),
        shared.clone(),
        cause,
        label,
        began,
    ));
    Ok(())
}

/// Tasks read per list call (sitq allows up to 10,000).
const PAGE: usize = 5_000;

/// Every task of the workload the queue says succeeded, a page at a time.
async fn succeeded(queue: &Queue) -> Result<HashSet<TaskId>> {
    let mut ids = HashSet::new();
    let mut before = None;
    loop {
        let filter = TaskFilter {
            statuses: vec![TaskStatus::Succeeded],
            name: Some(WORK.to_owned()),
            before,
            limit: PAGE,
            ..TaskFilter::default()
        };
        let page = watcher::retrying(|| queue.tasks(&filter)).await?;
        ids.extend(page.iter().map(|task| task.id));
        match page.last() {
            Some(last) if page.len() == PAGE => before = Some(last.id),
            _ => return Ok(ids),
        }
    }
}

/// How many tasks of the workload the queue holds, in any state.
async fn workload_size(queue: &Queue) -> Result<u64> {
    let stats = watcher::retrying(|| queue.stats()).await?;
    Ok(stats
        .counts
        .iter()
        .filter(|count| count.name == WORK)
        .map(|count| count.count)
        .sum())
}

/// The status of (the first few) acknowledged tasks that did not succeed.
async fn statuses(
    queue: &Queue,
    acks: &[TaskId],
    succeeded: &HashSet<TaskId>,
) -> Vec<(TaskId, String)> {
    let mut found = Vec::new();
    for &id in acks.iter().filter(|id| !succeeded.contains(id)).take(20) {
        let status = match queue.status(id).await {
            Ok(status) => status.as_str().to_owned(),
            Err(error) => format!("unreadable: {error}"),
        };
        found.push((id, status));
    }
    found
}

/// Every run the worker processes logged in `dir`.
fn read_runs(dir: &Path) -> Result<Vec<check::Run>> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(worker) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("runs-"))
            .and_then(|name| name.strip_suffix(".log"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path)?;
        runs.extend(check::parse_log(worker, &text)?);
    }
    Ok(runs)
}

/// A new directory for this run's files under the system temp dir.
fn create_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    for attempt in 0..100 {
        let dir = base.join(format!(
            "sitq-chaos-{}-{}-{attempt}",
            std::process::id(),
            now_micros()
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(format!("could not create {}: {error}", dir.display()).into()),
        }
    }
    Err(format!("no unused directory name in {}", base.display()).into())
}

/// A small xorshift generator: the fault schedule, reproducible by `--seed`.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next() % n).unwrap_or(0)
    }

    /// A duration between the two bounds.
    pub fn between(&mut self, (low, high): (Duration, Duration)) -> Duration {
        let span = u64::try_from(high.saturating_sub(low).as_millis()).unwrap_or(u64::MAX);
        low + Duration::from_millis(self.next() % span.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn the_restart_command_is_everything_after_the_separator() {
        let config = parse(&args(&[
            "--backend",
            "postgres",
            "--url",
            "postgres://x",
            "--seconds",
            "5",
            "--",
            "runuser",
            "-u",
            "postgres",
            "--",
            "pg_ctl",
            "restart",
        ]))
        .ok()
        .flatten()
        .map(|config| (config.seconds, config.restart));
        assert_eq!(
            config,
            Some((
                5,
                args(&["runuser", "-u", "postgres", "--", "pg_ctl", "restart"])
            ))
        );
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(parse(&args(&[])).is_err(), "no backend");
        assert!(parse(&args(&["--backend", "mysql"])).is_err());
        assert!(parse(&args(&["--backend", "postgres", "--url", "postgres://x"])).is_err());
        assert!(parse(&args(&["--backend", "sqlite", "--seconds", "ten"])).is_err());
        assert!(parse(&args(&["--backend", "sqlite", "--workers", "0"])).is_err());
    }

    #[test]
    fn the_schedule_stays_in_bounds_and_repeats_with_its_seed() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let spacing = a.between(KILL_EVERY);
            assert!(spacing >= KILL_EVERY.0 && spacing <= KILL_EVERY.1);
            assert_eq!(spacing, b.between(KILL_EVERY));
            assert!(a.below(4) < 4);
            b.below(4);
        }
    }
}
