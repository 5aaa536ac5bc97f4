//! The workloads, each on fresh databases, each beside its plain-SQL ceiling
//! where one exists.

mod burn_down;
mod dashboard;
mod end_to_end;
mod enqueue;
mod idle;
mod latency;
mod scale;
mod user;
mod workflow;

use std::time::Duration;

use sitq::Queue;

use crate::Args;
use crate::Result;
use crate::db::{Fresh, Provider, Raw};
use crate::progress::Progress;
use crate::report::{Check, Report, Row};
use crate::tasks::noop;

/// Jobs per claim in the plain-SQL ceiling.
pub const CEILING_CLAIM: usize = 100;

/// Rows per `enqueue_many` when filling a table before a measurement.
const PREFILL_BATCH: usize = 1_000;

/// A workload of the issue.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    /// N single enqueues, and N in batches.
    Enqueue,
    /// A worker process draining N queued no-ops (and its peak memory).
    BurnDown,
    /// A producer enqueueing one at a time while a worker drains.
    EndToEnd,
    /// enqueue → start and enqueue → `wait()`, at low load.
    Latency,
    /// Burn-down with a small table and with a table of a million rows.
    Scale,
    /// N single enqueues keeping every handle, then one worker draining
    /// them while every handle is awaited; one producer and four.
    User,
    /// An idle worker process's CPU use.
    Idle,
    /// A 10,000-task fan-out with one fan-in, and a 1,000-step chain,
    /// beside independent tasks.
    Workflow,
    /// The dashboard's overview page over a table of a million tasks.
    Dashboard,
}

impl Workload {
    /// Every workload, in run order.
    pub const ALL: [Workload; 9] = [
        Workload::Enqueue,
        Workload::BurnDown,
        Workload::EndToEnd,
        Workload::User,
        Workload::Latency,
        Workload::Idle,
        Workload::Workflow,
        Workload::Scale,
        Workload::Dashboard,
    ];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Enqueue => "enqueue",
            Workload::BurnDown => "burn-down",
            Workload::EndToEnd => "e2e",
            Workload::Latency => "latency",
            Workload::Scale => "scale",
            Workload::User => "user",
            Workload::Idle => "idle",
            Workload::Workflow => "workflow",
            Workload::Dashboard => "dashboard",
        }
    }

    /// Parses a name given to `--only`.
    pub fn parse(name: &str) -> Result<Workload> {
        Workload::ALL
            .into_iter()
            .find(|workload| workload.as_str() == name.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL.iter().map(|w| w.as_str()).collect();
                format!(
                    "unknown workload {name:?}; expected one of {}",
                    names.join(", ")
                )
                .into()
            })
    }
}

/// One backend's run.
pub struct Bench<'a> {
    /// The command line.
    pub args: &'a Args,
    /// Fresh databases of this backend.
    pub provider: &'a Provider,
    /// Where figures go.
    pub report: &'a mut Report,
}

impl Bench<'_> {
    /// Runs every requested workload; a workload that fails is noted and the
    /// others still run.
    pub async fn run_all(&mut self) {
        for workload in Workload::ALL {
            if !self.args.wants(workload) {
                continue;
            }
            let outcome = match workload {
                Workload::Enqueue => enqueue::run(self).await,
                Workload::BurnDown => burn_down::run(self).await,
                Workload::EndToEnd => end_to_end::run(self).await,
                Workload::Latency => latency::run(self).await,
                Workload::Scale => scale::run(self).await,
                Workload::User => user::run(self).await,
                Workload::Idle => idle::run(self).await,
                Workload::Workflow => workflow::run(self).await,
                Workload::Dashboard => dashboard::run(self).await,
            };
            if let Err(err) = outcome {
                let note = format!("{} {} failed: {err}", self.backend(), workload.as_str());
                eprintln!("sitq-bench: {note}");
                self.report.notes.push(note);
                self.report.checks.push(Check {
                    backend: self.backend(),
                    workload: workload.as_str().to_owned(),
                    ok: false,
                    detail: format!("did not complete: {err}"),
                });
            }
        }
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.provider.kind().as_str()
    }

    /// A step label: `sqlite burn-down: sitq`.
    fn label(&self, what: &str) -> String {
        format!("{} {what}", self.backend())
    }

    fn push(&mut self, row: Row) {
        self.report.rows.push(row);
    }

    fn check(&mut self, workload: &str, ok: bool, detail: String) {
        self.report.checks.push(Check {
            backend: self.backend(),
            workload: workload.to_owned(),
            ok,
            detail,
        });
    }

    /// A fresh database and a sitq queue on it.
    async fn fresh_queue(&self, label: &str) -> Result<(Fresh, Queue)> {
        let fresh = self.provider.fresh(label).await?;
        let queue = Queue::connect(&fresh.url)
            .await
            .map_err(|err| format!("connecting sitq to {}: {err}", fresh.url))?;
        Ok((fresh, queue))
    }

    /// A raw pool of `connections` to `fresh`.
    async fn raw(&self, fresh: &Fresh, connections: u32) -> Result<Raw> {
        fresh.raw(&self.args.synchronous, connections).await
    }

    /// Checks that sitq stored exactly `n` no-op tasks, all succeeded at
    /// their first attempt, and that `runs` (if counted) saw each once.
    async fn verify_noops(
        &mut self,
        workload: &str,
        fresh: &Fresh,
        n: usize,
        runs: Option<crate::tasks::RunSummary>,
    ) -> Result<()> {
        let raw = self.raw(fresh, 1).await?;
        let (succeeded_once, total) = raw.noop_tally().await?;
        raw.close().await;
        let n_i64 = i64::try_from(n)?;
        let stored = succeeded_once == n_i64 && total == n_i64;
        let ran = runs.is_none_or(|runs| runs.exactly_once(n));
        let mut detail = format!(
            "{succeeded_once} of {total} stored tasks succeeded at attempt 1 (expected {n})"
        );
        if let Some(runs) = runs {
            detail.push_str(&format!(
                "; runs counted: {} once, {} never, {} more than once",
                runs.once, runs.never, runs.repeated
            ));
        }
        self.check(workload, stored && ran, detail);
        Ok(())
    }
}

/// Enqueues no-op tasks `0..n` in batches (preparation, not measured).
async fn prefill(queue: &Queue, n: usize, progress: &Progress) -> Result<()> {
    let mut next = 0;
    while next < n {
        let end = (next + PREFILL_BATCH).min(n);
        queue
            .enqueue_many((next..end).map(|i| noop { i: i as u64 }))
            .await?;
        next = end;
        progress.set(next);
    }
    Ok(())
}

/// Tasks per second.
fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}
