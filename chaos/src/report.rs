//! The end of a run: a summary, every failure spelled out, and the one line
//! `chaos: backend=… tasks=… kills=… restarts=… lost=… reruns=… max_recovery=…s`.

use std::time::Duration;

use sitq::TaskId;

use crate::check::{Cause, Faults, Verdict};
use crate::produce::Produced;
use crate::run::Backend;
use crate::say;

/// How the queue came back from one fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Which fault, e.g. `kill of w2-0`.
    pub label: String,
    /// What kind.
    pub cause: Cause,
    /// Claims the killed worker held (1, the probe, for server faults).
    pub held: usize,
    /// From the fault to recovery.
    pub took: Duration,
}

/// Everything a run found, for the report.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The backend.
    pub backend: Backend,
    /// When the run began (µs since the epoch), for times in the details.
    pub began_micros: i64,
    /// What the producers did.
    pub produced: Produced,
    /// The verdict on tasks and runs.
    pub verdict: Verdict,
    /// The faults injected.
    pub faults: Faults,
    /// Recovery from each fault that recovered.
    pub recoveries: Vec<Recovery>,
    /// Faults the queue never recovered from.
    pub unrecovered: Vec<String>,
    /// Whether every task finished before the drain's limit.
    pub drained: bool,
    /// Worker processes that exited on their own or did not stop cleanly.
    pub worker_failures: Vec<String>,
    /// Tasks of the workload the queue holds in any state.
    pub in_queue: u64,
    /// The status of the first few lost tasks.
    pub lost_statuses: Vec<(TaskId, String)>,
}

impl Outcome {
    /// Whether the run passed: nothing lost, every rerun explained, every
    /// fault recovered from, the queue drained, no worker gave up, and the
    /// queue holds exactly the acknowledged tasks.
    pub fn passed(&self) -> bool {
        self.verdict.passed()
            && self.unrecovered.is_empty()
            && self.drained
            && self.worker_failures.is_empty()
            && self.duplicates() == 0
    }

    /// Tasks the queue holds beyond the acknowledged ones (negative: fewer).
    fn duplicates(&self) -> i64 {
        let tasks = i64::try_from(self.verdict.tasks).unwrap_or(i64::MAX);
        i64::try_from(self.in_queue).unwrap_or(i64::MAX) - tasks
    }

    /// The longest recovery of any fault.
    fn max_recovery(&self) -> Duration {
        self.recoveries
            .iter()
            .map(|recovery| recovery.took)
            .max()
            .unwrap_or_default()
    }

    /// Server restarts.
    fn restarts(&self) -> usize {
        self.faults
            .disruptions
            .iter()
            .filter(|fault| fault.cause == Cause::ServerRestart)
            .count()
    }

    /// The last line of the report.
    pub fn final_line(&self) -> String {
        format!(
            "chaos: backend={} tasks={} kills={} restarts={} lost={} reruns={} max_recovery={:.1}s",
            self.backend.name(),
            self.verdict.tasks,
            self.faults.kills.len(),
            self.restarts(),
            self.verdict.lost.len(),
            self.verdict.rerun_tasks,
            self.max_recovery().as_secs_f64()
        )
    }

    /// `+12.34s`: `micros` since the run began.
    fn at(&self, micros: i64) -> String {
        format!("+{:.2}s", (micros - self.began_micros) as f64 / 1e6)
    }

    /// Every failure, one line each.
    fn failures(&self) -> Vec<String> {
        let verdict = &self.verdict;
        let mut lines = Vec::new();
        for (id, status) in &self.lost_statuses {
            lines.push(format!("lost: task {id} was acknowledged and is {status}"));
        }
        if verdict.lost.len() > self.lost_statuses.len() {
            lines.push(format!(
                "lost: {} more acknowledged tasks did not succeed",
                verdict.lost.len() - self.lost_statuses.len()
            ));
        }
        for unexplained in &verdict.unexplained {
            let run = &unexplained.run;
            lines.push(format!(
                "unexplained rerun: task {} ran in {} (attempt {}) from {} to {}, and again from {}; \
                 no kill of {} and no server fault in between",
                run.task,
                run.worker,
                run.attempt,
                self.at(run.start),
                run.end.map_or("no end".to_owned(), |end| self.at(end)),
                self.at(unexplained.next_start),
                run.worker
            ));
        }
        for id in &verdict.succeeded_unrun {
            lines.push(format!(
                "task {id} succeeded, but no run of it reached its end in the run logs"
            ));
        }
        for fault in &self.unrecovered {
            lines.push(format!("no recovery from the {fault}"));
        }
        if !self.drained {
            lines.push("the queue did not drain: tasks were left unfinished".to_owned());
        }
        lines.extend(self.worker_failures.iter().cloned());
        match self.duplicates() {
            0 => {}
            extra => lines.push(format!(
                "the queue holds {} tasks of the workload, but {} enqueues were acknowledged \
                 ({extra:+}): a retried enqueue stored a second task, or a task vanished",
                self.in_queue, verdict.tasks
            )),
        }
        lines
    }

    /// The summary, one line per kind of fault and finding.
    fn summary(&self) -> Vec<String> {
        let verdict = &self.verdict;
        let probes = verdict.tasks as u64 - self.produced.tasks.min(verdict.tasks as u64);
        let mut lines = vec![format!(
            "  tasks:    {} acknowledged ({} from producers, {probes} probes and others); {} enqueue \
             calls failed and were retried; the queue holds {}",
            verdict.tasks, self.produced.tasks, self.produced.retries, self.in_queue
        )];
        let kills: Vec<&Recovery> = self
            .recoveries
            .iter()
            .filter(|recovery| recovery.cause == Cause::WorkerKill)
            .collect();
        let held: Vec<&&Recovery> = kills.iter().filter(|recovery| recovery.held > 0).collect();
        let mean = if held.is_empty() {
            0.0
        } else {
            held.iter()
                .map(|recovery| recovery.took.as_secs_f64())
                .sum::<f64>()
                / held.len() as f64
        };
        lines.push(format!(
            "  kills:    {} worker processes SIGKILLed, holding {} claims; recovery max {:.1}s, \
             mean {mean:.1}s (over the {} kills that held claims)",
            self.faults.kills.len(),
            kills.iter().map(|recovery| recovery.held).sum::<usize>(),
            max_of(&kills, Cause::WorkerKill).as_secs_f64(),
            held.len()
        ));
        if self.backend == Backend::Postgres {
            let server: Vec<&Recovery> = self.recoveries.iter().collect();
            let terminations = self.faults.disruptions.len() - self.restarts();
            lines.push(format!(
                "  server:   {} restarts (pg_ctl restart -m immediate), recovery max {:.1}s; \
                 {terminations} backend terminations, recovery max {:.1}s",
                self.restarts(),
                max_of(&server, Cause::ServerRestart).as_secs_f64(),
                max_of(&server, Cause::BackendTermination).as_secs_f64()
            ));
        }
        let explained: Vec<String> = verdict
            .explained
            .iter()
            .map(|(cause, count)| format!("{count} after {}", cause.describe()))
            .collect();
        lines.push(format!(
            "  reruns:   {} tasks ran more than once ({} extra runs{}{}); {} unexplained; {} runs \
             had an attempt number an earlier run had; {} runs of unacknowledged tasks",
            verdict.rerun_tasks,
            verdict.extra_runs,
            if explained.is_empty() { "" } else { ": " },
            explained.join(", "),
            verdict.unexplained.len(),
            verdict.reused_attempts,
            verdict.unacknowledged
        ));
        lines.push(format!("  lost:     {}", verdict.lost.len()));
        lines
    }
}

/// The longest recovery among `recoveries` of `cause`.
fn max_of(recoveries: &[&Recovery], cause: Cause) -> Duration {
    recoveries
        .iter()
        .filter(|recovery| recovery.cause == cause)
        .map(|recovery| recovery.took)
        .max()
        .unwrap_or_default()
}

/// Prints the report; whether the run passed.
pub fn print(outcome: &Outcome) -> bool {
    say("summary:");
    for line in outcome.summary() {
        say(&line);
    }
    let failures = outcome.failures();
    for line in &failures {
        say(&format!("FAIL: {line}"));
    }
    say(&outcome.final_line());
    outcome.passed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Disruption, Kill};

    fn outcome() -> Outcome {
        Outcome {
            backend: Backend::Postgres,
            began_micros: 0,
            produced: Produced {
                tasks: 10,
                retries: 2,
            },
            verdict: Verdict {
                tasks: 11,
                rerun_tasks: 2,
                extra_runs: 2,
                ..Verdict::default()
            },
            faults: Faults {
                kills: vec![Kill {
                    worker: "w0-0".to_owned(),
                    at: 5,
                }],
                disruptions: vec![Disruption {
                    cause: Cause::ServerRestart,
                    from: 7,
                    to: 9,
                }],
            },
            recoveries: vec![
                Recovery {
                    label: "kill of w0-0".to_owned(),
                    cause: Cause::WorkerKill,
                    held: 3,
                    took: Duration::from_millis(3_240),
                },
                Recovery {
                    label: "server restart #1".to_owned(),
                    cause: Cause::ServerRestart,
                    held: 1,
                    took: Duration::from_millis(1_500),
                },
            ],
            unrecovered: Vec::new(),
            drained: true,
            worker_failures: Vec::new(),
            in_queue: 11,
            lost_statuses: Vec::new(),
        }
    }

    #[test]
    fn the_final_line_has_the_promised_shape() {
        let outcome = outcome();
        assert!(outcome.passed());
        assert_eq!(
            outcome.final_line(),
            "chaos: backend=postgres tasks=11 kills=1 restarts=1 lost=0 reruns=2 max_recovery=3.2s"
        );
    }

    #[test]
    fn a_loss_a_duplicate_or_an_unrecovered_fault_fails_the_run() {
        let mut lost = outcome();
        lost.verdict.lost = vec![TaskId(4)];
        assert!(!lost.passed());
        assert!(lost.final_line().contains(" lost=1 "));
        let mut duplicated = outcome();
        duplicated.in_queue = 12;
        assert!(!duplicated.passed());
        assert!(duplicated.failures()[0].contains("(+1)"));
        let mut stuck = outcome();
        stuck.unrecovered = vec!["kill of w1-0".to_owned()];
        assert!(!stuck.passed());
        let mut gave_up = outcome();
        gave_up.worker_failures = vec!["worker w1-0 exited on its own".to_owned()];
        assert!(!gave_up.passed());
    }
}
