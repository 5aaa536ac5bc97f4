//! The benchmark's tasks, and the per-index run counters that prove every
//! task ran exactly once.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// The registered name of [`noop()`], for verification queries.
pub const NOOP_NAME: &str = "sitq_bench::noop";

/// Does nothing but count its run in the installed [`Runs`].
#[sitq::task(name = "sitq_bench::noop")]
pub async fn noop(i: u64) {
    if let Some(runs) = installed() {
        runs.hit(i);
    }
}

/// Returns the wall-clock instant it started, in microseconds since the Unix epoch.
#[sitq::task(name = "sitq_bench::stamp")]
pub async fn stamp() -> i64 {
    now_micros()
}

/// The template of the finished rows that fill the table in the scale workload.
#[sitq::task(name = "sitq_bench::filler")]
pub async fn filler() {}

/// Wall-clock microseconds since the Unix epoch (the clock sitq stores times in).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}

/// How often each of `0..n` ran.
#[derive(Debug)]
pub struct Runs {
    counts: Vec<AtomicU32>,
    distinct: AtomicUsize,
    all_ran: Notify,
}

/// What [`Runs`] saw: how many indices ran once, never, or more than once.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Indices that ran exactly once.
    pub once: usize,
    /// Indices that never ran.
    pub never: usize,
    /// Indices that ran more than once.
    pub repeated: usize,
}

impl RunSummary {
    /// Whether every one of `n` indices ran exactly once.
    pub fn exactly_once(&self, n: usize) -> bool {
        self.once == n && self.never == 0 && self.repeated == 0
    }
}

impl Runs {
    /// Counters for `0..n`, all zero.
    pub fn new(n: usize) -> Arc<Runs> {
        Arc::new(Runs {
            counts: (0..n).map(|_| AtomicU32::new(0)).collect(),
            distinct: AtomicUsize::new(0),
            all_ran: Notify::new(),
        })
    }

    /// Counts one run of `index`; an index out of range counts as a repeat
    /// of nothing and is ignored (it cannot come from this benchmark).
    fn hit(&self, index: u64) {
        let Some(count) = usize::try_from(index)
            .ok()
            .and_then(|index| self.counts.get(index))
        else {
            return;
        };
        if count.fetch_add(1, Ordering::Relaxed) == 0
            && self.distinct.fetch_add(1, Ordering::AcqRel) + 1 == self.counts.len()
        {
            self.all_ran.notify_one();
        }
    }

    /// How many distinct indices ran so far.
    pub fn distinct(&self) -> usize {
        self.distinct.load(Ordering::Acquire)
    }

    /// Returns once every index ran at least once.
    pub async fn all_ran(&self) {
        if self.distinct() < self.counts.len() {
            self.all_ran.notified().await;
        }
    }

    /// The tally so far.
    pub fn summary(&self) -> RunSummary {
        let mut summary = RunSummary::default();
        for count in &self.counts {
            match count.load(Ordering::Relaxed) {
                0 => summary.never += 1,
                1 => summary.once += 1,
                _ => summary.repeated += 1,
            }
        }
        summary
    }
}

static INSTALLED: RwLock<Option<Arc<Runs>>> = RwLock::new(None);

/// Makes `runs` the counters [`noop()`] counts into (replacing any before).
pub fn install(runs: Option<Arc<Runs>>) {
    *INSTALLED.write().unwrap_or_else(PoisonError::into_inner) = runs;
}

fn installed() -> Option<Arc<Runs>> {
    INSTALLED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Returns its argument: the root of the workflow workloads, and the
/// independent tasks they are compared with.
#[sitq::task(name = "sitq_bench::value")]
pub async fn value(i: u64) -> u64 {
    i
}

/// One step of a chain or one branch of a fan-out: its first argument is
/// the previous task's result.
#[sitq::task(name = "sitq_bench::step")]
pub async fn step(previous: u64) -> u64 {
    previous + 1
}

/// The fan-in: every branch's result, in order.
#[sitq::task(name = "sitq_bench::gather")]
pub async fn gather(values: Vec<u64>) -> u64 {
    values.iter().sum()
}
