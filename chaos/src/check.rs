//! The verdict of a chaos run, from three independent records: the ids the
//! producers' enqueues were acknowledged with, the tasks the queue says
//! succeeded, and the runs the worker processes logged (see
//! [`runlog`](crate::runlog)), beside the faults the harness injected.
//!
//! - **Lost**: an acknowledged task that did not succeed.
//! - **Rerun**: a task that ran more than once. Each run but a task's last
//!   must be explained by a fault: its worker process was SIGKILLed after
//!   the run started and before the next run started, or the server was
//!   restarted or its connections terminated between the two starts. Any
//!   other rerun is unexplained, and fails the run like a loss: sitq
//!   promises at-least-once, not "at least once, sometimes twice for no
//!   reason".
//! - A task the queue calls succeeded with no run that reached its end in
//!   the logs fails the run too: something stored a result nobody produced.

use std::collections::{BTreeMap, HashMap, HashSet};

use sitq::TaskId;

/// One run of a task, from a worker's run log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The task.
    pub task: TaskId,
    /// The worker id of the process that ran it.
    pub worker: String,
    /// The attempt number the worker gave it.
    pub attempt: u32,
    /// When it started, in µs since the Unix epoch.
    pub start: i64,
    /// When it was about to return `Ok`; `None` if it never got there.
    pub end: Option<i64>,
}

/// Reads the run log of worker `worker` (lines `start|end <task> <attempt>
/// <µs>`). A last line without its newline is ignored: a write cut short.
pub fn parse_log(worker: &str, text: &str) -> Result<Vec<Run>, String> {
    let mut runs: Vec<Run> = Vec::new();
    // Where each (task, attempt) still open sits in `runs`.
    let mut open: HashMap<(TaskId, u32), usize> = HashMap::new();
    let complete = match text.rfind('\n') {
        Some(last) => &text[..=last],
        None => "",
    };
    for (number, line) in complete.lines().enumerate() {
        let bad = || format!("run log of {worker}, line {}: {line:?}", number + 1);
        let fields: Vec<&str> = line.split(' ').collect();
        let [mark, task, attempt, at] = fields[..] else {
            return Err(bad());
        };
        let task = TaskId(task.parse().map_err(|_| bad())?);
        let attempt: u32 = attempt.parse().map_err(|_| bad())?;
        let at: i64 = at.parse().map_err(|_| bad())?;
        match mark {
            "start" => {
                open.insert((task, attempt), runs.len());
                runs.push(Run {
                    task,
                    worker: worker.to_owned(),
                    attempt,
                    start: at,
                    end: None,
                });
            }
            "end" => {
                let index = open
                    .remove(&(task, attempt))
                    .ok_or_else(|| format!("{}: an end without its start", bad()))?;
                runs[index].end = Some(at);
            }
            _ => return Err(bad()),
        }
    }
    Ok(runs)
}

/// A fault the harness injected, as the reason for a rerun.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// A worker process was SIGKILLed.
    WorkerKill,
    /// The PostgreSQL server was restarted (`pg_ctl restart -m immediate`).
    ServerRestart,
    /// The server's client connections were terminated (`pg_terminate_backend`).
    BackendTermination,
}

impl Cause {
    /// How the report names it.
    pub fn describe(self) -> &'static str {
        match self {
            Cause::WorkerKill => "a worker kill",
            Cause::ServerRestart => "a server restart",
            Cause::BackendTermination => "a backend termination",
        }
    }
}

/// A SIGKILL of a worker process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kill {
    /// The killed worker's id.
    pub worker: String,
    /// When the process was known dead (reaped), in µs since the Unix epoch:
    /// every run it logged started before this.
    pub at: i64,
}

/// A fault of the server, lasting from `from` to `to` (µs since the epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disruption {
    /// What it was.
    pub cause: Cause,
    /// Just before it was asked for.
    pub from: i64,
    /// Just after it was done.
    pub to: i64,
}

/// Every fault of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Worker kills.
    pub kills: Vec<Kill>,
    /// Server restarts and backend terminations.
    pub disruptions: Vec<Disruption>,
}

impl Faults {
    /// Why `run` was followed by another run of its task starting at
    /// `next_start`, if a fault explains it.
    pub fn explain(&self, run: &Run, next_start: i64) -> Option<Cause> {
        let killed = self
            .kills
            .iter()
            .any(|kill| kill.worker == run.worker && (run.start..=next_start).contains(&kill.at));
        if killed {
            return Some(Cause::WorkerKill);
        }
        self.disruptions
            .iter()
            .find(|fault| fault.from <= next_start && fault.to >= run.start)
            .map(|fault| fault.cause)
    }
}

/// A run followed by another run of its task that no fault explains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unexplained {
    /// The earlier run.
    pub run: Run,
    /// When the next run of its task started.
    pub next_start: i64,
}

/// What a chaos run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Acknowledged enqueues.
    pub tasks: usize,
    /// Acknowledged tasks that did not succeed.
    pub lost: Vec<TaskId>,
    /// Tasks that ran more than once.
    pub rerun_tasks: usize,
    /// Runs beyond each task's first.
    pub extra_runs: usize,
    /// Extra runs by the fault that explains them.
    pub explained: BTreeMap<Cause, usize>,
    /// Extra runs no fault explains.
    pub unexplained: Vec<Unexplained>,
    /// Tasks the queue calls succeeded with no run that reached its end.
    pub succeeded_unrun: Vec<TaskId>,
    /// Tasks that ran but no enqueue was acknowledged with.
    pub unacknowledged: usize,
    /// Runs that had the attempt number of an earlier run of their task.
    pub reused_attempts: usize,
}

impl Verdict {
    /// Whether the run keeps sitq's promise: nothing lost, every rerun
    /// explained, no success without a run.
    pub fn passed(&self) -> bool {
        self.lost.is_empty() && self.unexplained.is_empty() && self.succeeded_unrun.is_empty()
    }
}

/// Judges a run: `acknowledged` are the ids enqueues returned `Ok` with,
/// `succeeded` the tasks the queue says succeeded, `runs` every logged run.
pub fn check(
    acknowledged: &[TaskId],
    succeeded: &HashSet<TaskId>,
    runs: Vec<Run>,
    faults: &Faults,
) -> Verdict {
    let acked: HashSet<TaskId> = acknowledged.iter().copied().collect();
    let mut verdict = Verdict {
        tasks: acked.len(),
        ..Verdict::default()
    };
    let mut by_task: BTreeMap<TaskId, Vec<Run>> = BTreeMap::new();
    for run in runs {
        by_task.entry(run.task).or_default().push(run);
    }
    let mut lost: Vec<TaskId> = acked
        .iter()
        .copied()
        .filter(|id| !succeeded.contains(id))
        .collect();
    lost.sort();
    verdict.lost = lost;
    let mut succeeded_unrun: Vec<TaskId> = succeeded
        .iter()
        .copied()
        .filter(|id| {
            by_task
                .get(id)
                .is_none_or(|runs| runs.iter().all(|run| run.end.is_none()))
        })
        .collect();
    succeeded_unrun.sort();
    verdict.succeeded_unrun = succeeded_unrun;

    for (task, mut runs) in by_task {
        if !acked.contains(&task) {
            verdict.unacknowledged += 1;
        }
        runs.sort_by_key(|run| run.start);
        let mut attempts = HashSet::new();
        verdict.reused_attempts += runs
            .iter()
            .filter(|run| !attempts.insert(run.attempt))
            .count();
        if runs.len() < 2 {
            continue;
        }
        verdict.rerun_tasks += 1;
        for pair in runs.windows(2) {
            let [run, next] = pair else { continue };
            verdict.extra_runs += 1;
            match faults.explain(run, next.start) {
                Some(cause) => *verdict.explained.entry(cause).or_default() += 1,
                None => verdict.unexplained.push(Unexplained {
                    run: run.clone(),
                    next_start: next.start,
                }),
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(task: i64, worker: &str, attempt: u32, start: i64, end: Option<i64>) -> Run {
        Run {
            task: TaskId(task),
            worker: worker.to_owned(),
            attempt,
            start,
            end,
        }
    }

    fn ids(list: &[i64]) -> Vec<TaskId> {
        list.iter().copied().map(TaskId).collect()
    }

    fn set(list: &[i64]) -> HashSet<TaskId> {
        ids(list).into_iter().collect()
    }

    fn kill(worker: &str, at: i64) -> Faults {
        Faults {
            kills: vec![Kill {
                worker: worker.to_owned(),
                at,
            }],
            disruptions: Vec::new(),
        }
    }

    fn restart(from: i64, to: i64) -> Faults {
        Faults {
            kills: Vec::new(),
            disruptions: vec![Disruption {
                cause: Cause::ServerRestart,
                from,
                to,
            }],
        }
    }

    #[test]
    fn a_log_pairs_starts_with_ends() {
        let text = "start 1 1 100\nstart 2 1 110\nend 1 1 150\n";
        assert_eq!(
            parse_log("w0", text),
            Ok(vec![
                run(1, "w0", 1, 100, Some(150)),
                run(2, "w0", 1, 110, None)
            ])
        );
    }

    #[test]
    fn a_cut_last_line_is_ignored_but_garbage_is_not() {
        assert_eq!(
            parse_log("w0", "start 1 1 100\nend 1 1 1"),
            Ok(vec![run(1, "w0", 1, 100, None)])
        );
        assert!(parse_log("w0", "start 1 1 100\nbogus\n").is_err());
        assert!(parse_log("w0", "start x 1 100\n").is_err());
        assert!(parse_log("w0", "end 1 1 100\n").is_err());
        assert!(parse_log("w0", "start 1 1 100 7\n").is_err());
    }

    #[test]
    fn every_task_succeeding_once_passes() {
        let runs = vec![run(1, "w0", 1, 10, Some(20)), run(2, "w1", 1, 15, Some(30))];
        let verdict = check(&ids(&[1, 2]), &set(&[1, 2]), runs, &Faults::default());
        assert!(verdict.passed(), "{verdict:?}");
        assert_eq!((verdict.tasks, verdict.rerun_tasks), (2, 0));
    }

    #[test]
    fn an_acknowledged_task_that_did_not_succeed_is_lost() {
        let runs = vec![run(1, "w0", 1, 10, Some(20)), run(2, "w0", 1, 12, None)];
        let verdict = check(&ids(&[1, 2, 3]), &set(&[1]), runs, &Faults::default());
        assert_eq!(verdict.lost, ids(&[2, 3]));
        assert!(!verdict.passed());
    }

    #[test]
    fn a_rerun_after_its_worker_was_killed_is_explained() {
        let runs = vec![run(1, "w0", 1, 10, None), run(1, "w1", 2, 50, Some(60))];
        let verdict = check(&ids(&[1]), &set(&[1]), runs, &kill("w0", 20));
        assert!(verdict.passed(), "{verdict:?}");
        assert_eq!((verdict.rerun_tasks, verdict.extra_runs), (1, 1));
        assert_eq!(verdict.explained.get(&Cause::WorkerKill), Some(&1));
    }

    #[test]
    fn a_kill_of_another_worker_or_before_the_run_explains_nothing() {
        let runs = || vec![run(1, "w0", 1, 10, Some(15)), run(1, "w1", 2, 50, Some(60))];
        for faults in [kill("w2", 20), kill("w0", 5), kill("w0", 55)] {
            let verdict = check(&ids(&[1]), &set(&[1]), runs(), &faults);
            assert!(!verdict.passed(), "{faults:?} explained {verdict:?}");
            assert_eq!(verdict.unexplained.len(), 1);
            assert_eq!(verdict.unexplained[0].next_start, 50);
        }
    }

    #[test]
    fn a_server_restart_between_the_starts_explains_a_rerun() {
        let runs = || vec![run(1, "w0", 1, 10, Some(15)), run(1, "w0", 2, 50, Some(60))];
        let during = check(&ids(&[1]), &set(&[1]), runs(), &restart(12, 30));
        assert!(during.passed(), "{during:?}");
        assert_eq!(during.explained.get(&Cause::ServerRestart), Some(&1));
        for (from, to) in [(1, 9), (51, 70)] {
            let outside = check(&ids(&[1]), &set(&[1]), runs(), &restart(from, to));
            assert!(!outside.passed(), "a restart at {from}..{to} explained it");
        }
    }

    #[test]
    fn each_extra_run_needs_its_own_explanation() {
        let runs = vec![
            run(1, "w0", 1, 10, None),
            run(1, "w1", 2, 50, Some(55)),
            run(1, "w2", 3, 90, Some(95)),
        ];
        let verdict = check(&ids(&[1]), &set(&[1]), runs, &kill("w0", 20));
        assert_eq!((verdict.rerun_tasks, verdict.extra_runs), (1, 2));
        assert_eq!(verdict.unexplained.len(), 1);
        assert_eq!(verdict.unexplained[0].run.worker, "w1");
    }

    #[test]
    fn a_success_without_a_finished_run_fails() {
        let runs = vec![run(1, "w0", 1, 10, None)];
        let verdict = check(&ids(&[1, 2]), &set(&[1, 2]), runs, &Faults::default());
        assert_eq!(verdict.succeeded_unrun, ids(&[1, 2]));
        assert!(!verdict.passed());
    }

    #[test]
    fn runs_of_unacknowledged_tasks_and_reused_attempts_are_counted() {
        let runs = vec![
            run(1, "w0", 1, 10, Some(12)),
            run(9, "w0", 1, 10, Some(12)),
            run(1, "w1", 1, 30, Some(40)),
        ];
        let verdict = check(&ids(&[1]), &set(&[1]), runs, &restart(11, 20));
        assert_eq!(verdict.unacknowledged, 1);
        assert_eq!(verdict.reused_attempts, 1);
        assert!(verdict.passed(), "{verdict:?}");
    }
}
