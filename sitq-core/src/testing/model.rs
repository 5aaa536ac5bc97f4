//! A model-based conformance case: proptest generates histories of
//! enqueues, claims (with a live lease or one that has already run out),
//! completions (success, failure, retry, and stale claims), heartbeats,
//! lease recovery, cancels, retries, pauses and resumes; each step runs on
//! the backend and on a small model of the task states, and every task's
//! state (and each call's answer) must match after every step. A failing
//! history is shrunk to a minimal one before it is reported.
//!
//! Each history uses queues of its own in one database, so leftovers of
//! earlier histories are never claimed; each ends with nothing running.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::tasks::Add;
use super::{Harness, open};
use crate::{
    CancelOutcome, ClaimRef, ClaimRequest, Completion, EnqueueOptions, FailureKind, Outcome, Queue,
    Task, TaskFailure, TaskId, TaskStatus, codec,
};

/// A lease that lasts the whole history.
const LIVE: Duration = Duration::from_secs(600);
/// A lease that has run out by the next call.
const SPENT: Duration = Duration::from_micros(1);
const WORKER: &str = "w-model";

/// One step of a history. Picks are taken modulo the tasks they apply to.
#[derive(Clone, Debug)]
enum Op {
    Enqueue {
        queue: usize,
        max_attempts: u32,
    },
    Claim {
        queue: Option<usize>,
        limit: usize,
        spent: bool,
    },
    Complete {
        pick: usize,
        outcome: u8,
    },
    CompleteStale {
        pick: usize,
    },
    Heartbeat {
        pick: usize,
    },
    HeartbeatStale {
        pick: usize,
    },
    Recover,
    Cancel {
        pick: usize,
    },
    Retry {
        pick: usize,
    },
    Pause {
        queue: usize,
    },
    Resume {
        queue: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 1..=3u32).prop_map(|(queue, max_attempts)| Op::Enqueue { queue, max_attempts }),
        4 => (prop::option::of(0..2usize), 1..=3usize, prop::bool::weighted(0.5))
            .prop_map(|(queue, limit, spent)| Op::Claim { queue, limit, spent }),
        4 => (any::<usize>(), 0..3u8).prop_map(|(pick, outcome)| Op::Complete { pick, outcome }),
        1 => any::<usize>().prop_map(|pick| Op::CompleteStale { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Heartbeat { pick }),
        1 => any::<usize>().prop_map(|pick| Op::HeartbeatStale { pick }),
        1 => Just(Op::Recover),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Retry { pick }),
        1 => (0..2usize).prop_map(|queue| Op::Pause { queue }),
        1 => (0..2usize).prop_map(|queue| Op::Resume { queue }),
    ]
}

/// What the model knows of one task.
#[derive(Clone, Debug)]
struct Modelled {
    id: TaskId,
    queue: usize,
    status: TaskStatus,
    attempts: u32,
    max_attempts: u32,
    /// How many times it was claimed: the next claim's fence is one more.
    claims: u32,
    /// Its claim while running, and whether that lease has run out.
    claim: Option<(ClaimRef, bool)>,
    cancel_requested: bool,
}

#[derive(Default)]
struct Model {
    tasks: Vec<Modelled>,
    paused: [bool; 2],
    /// Claims that ended. A retry starts a task's attempts again, so a
    /// stale claim may name the same attempt as a live one: the fence tells
    /// them apart.
    stale: Vec<ClaimRef>,
}

impl Model {
    fn running(&self) -> Vec<usize> {
        (0..self.tasks.len())
            .filter(|&i| self.tasks[i].claim.is_some())
            .collect()
    }

    /// The task's attempt ended: its claim is stale from now on.
    fn end_claim(&mut self, i: usize) {
        if let Some((claim, _)) = self.tasks[i].claim.take() {
            self.stale.push(claim);
        }
    }
}

/// Runs generated histories against `queue`, shrinking any that fails.
pub async fn model_histories_match_the_model(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = tokio::runtime::Handle::current();
    let histories = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&prop::collection::vec(op(), 1..60), |ops| {
            let n = histories.fetch_add(1, Ordering::Relaxed);
            handle.block_on(run_history(&queue, n, &ops))
        })
    });
    if let Err(failure) = outcome {
        panic!("a history broke the model: {failure}");
    }
}

async fn run_history(queue: &Queue, n: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let outcome = steps(queue, n, ops, &mut model).await;
    // Nothing of this history stays running to disturb the next ones (nor
    // the shrinking of a failed one): its claims end, spent or not.
    for task in &model.tasks {
        if let Some((claim, _)) = task.claim {
            let outcome = Outcome::Failed(TaskFailure::new(FailureKind::Error, "end"));
            queue
                .backend()
                .complete(vec![Completion { claim, outcome }])
                .await
                .map_err(|err| fail("the end".to_owned(), err))?;
        }
    }
    outcome
}

async fn steps(
    queue: &Queue,
    n: usize,
    ops: &[Op],
    model: &mut Model,
) -> Result<(), TestCaseError> {
    let names = [format!("model-{n}-a"), format!("model-{n}-b")];
    let task_names = [Add::NAME.to_owned()];
    let backend = queue.backend();
    for (step, op) in ops.iter().enumerate() {
        let at = || format!("step {step} ({op:?})");
        match *op {
            Op::Enqueue {
                queue: q,
                max_attempts,
            } => {
                let options = EnqueueOptions::new()
                    .queue(names[q].clone())
                    .max_attempts(max_attempts);
                let handle = queue
                    .enqueue_with(Add { a: 1, b: 2 }, options)
                    .await
                    .map_err(|err| fail(at(), err))?;
                model.tasks.push(Modelled {
                    id: handle.id(),
                    queue: q,
                    status: TaskStatus::Pending,
                    attempts: 0,
                    max_attempts,
                    claims: 0,
                    claim: None,
                    cancel_requested: false,
                });
            }
            Op::Claim {
                queue: q,
                limit,
                spent,
            } => {
                let queues: Vec<String> = match q {
                    Some(q) => vec![names[q].clone()],
                    None => names.to_vec(),
                };
                let claimable: Vec<usize> = (0..model.tasks.len())
                    .filter(|&i| {
                        let task = &model.tasks[i];
                        task.status == TaskStatus::Pending
                            && !model.paused[task.queue]
                            && q.is_none_or(|q| q == task.queue)
                    })
                    .collect();
                let claimed = backend
                    .claim(ClaimRequest {
                        worker_id: WORKER,
                        queues: &queues,
                        names: &task_names,
                        limit,
                        start: limit,
                        lease: if spent { SPENT } else { LIVE },
                    })
                    .await
                    .map_err(|err| fail(at(), err))?;
                prop_assert_eq!(
                    claimed.len(),
                    claimable.len().min(limit),
                    "{}: claimed {:?} of {:?}",
                    at(),
                    claimed.iter().map(|c| c.id).collect::<Vec<_>>(),
                    claimable
                        .iter()
                        .map(|&i| model.tasks[i].id)
                        .collect::<Vec<_>>()
                );
                for task in &claimed {
                    let i = claimable
                        .iter()
                        .copied()
                        .find(|&i| model.tasks[i].id == task.id);
                    let Some(i) = i else {
                        return Err(TestCaseError::fail(format!(
                            "{}: claimed task {} was not claimable",
                            at(),
                            task.id
                        )));
                    };
                    let modelled = &mut model.tasks[i];
                    modelled.status = TaskStatus::Running;
                    modelled.attempts += 1;
                    modelled.claims += 1;
                    prop_assert_eq!(task.attempt, modelled.attempts, "{}", at());
                    prop_assert_eq!(task.fence, modelled.claims, "{}", at());
                    modelled.claim = Some((task.claim_ref(), spent));
                }
            }
            Op::Complete { pick, outcome } => {
                let running = model.running();
                if running.is_empty() {
                    continue;
                }
                let i = running[pick % running.len()];
                let task = model.tasks[i].clone();
                let Some((claim, _)) = task.claim else {
                    continue;
                };
                let failure = || TaskFailure::new(FailureKind::Error, "model");
                let (outcome, next) = match outcome {
                    0 => (
                        Outcome::Succeeded(
                            codec::encode(&3i64, "result").map_err(|err| fail(at(), err))?,
                        ),
                        TaskStatus::Succeeded,
                    ),
                    2 if task.attempts < task.max_attempts => (
                        Outcome::Retry {
                            failure: failure(),
                            delay: Duration::ZERO,
                        },
                        TaskStatus::Pending,
                    ),
                    _ => (Outcome::Failed(failure()), TaskStatus::Failed),
                };
                let next = if task.cancel_requested && next != TaskStatus::Succeeded {
                    TaskStatus::Cancelled
                } else {
                    next
                };
                let applied = backend
                    .complete(vec![Completion { claim, outcome }])
                    .await
                    .map_err(|err| fail(at(), err))?;
                prop_assert_eq!(applied, vec![true], "{}", at());
                model.end_claim(i);
                model.tasks[i].status = next;
            }
            Op::CompleteStale { pick } => {
                if model.stale.is_empty() {
                    continue;
                }
                let claim = model.stale[pick % model.stale.len()];
                let applied = backend
                    .complete(vec![Completion {
                        claim,
                        outcome: Outcome::Failed(TaskFailure::new(FailureKind::Error, "stale")),
                    }])
                    .await
                    .map_err(|err| fail(at(), err))?;
                prop_assert_eq!(applied, vec![false], "{}: a stale claim applied", at());
            }
            Op::Heartbeat { pick } => {
                let running = model.running();
                if running.is_empty() {
                    continue;
                }
                let i = running[pick % running.len()];
                let Some((claim, _)) = model.tasks[i].claim else {
                    continue;
                };
                let lost = backend
                    .heartbeat(WORKER, &[claim], LIVE)
                    .await
                    .map_err(|err| fail(at(), err))?;
                prop_assert!(lost.is_empty(), "{}: lost {:?}", at(), lost);
                model.tasks[i].claim = Some((claim, false));
            }
            Op::HeartbeatStale { pick } => {
                if model.stale.is_empty() {
                    continue;
                }
                let claim = model.stale[pick % model.stale.len()];
                let lost = backend
                    .heartbeat(WORKER, &[claim], LIVE)
                    .await
                    .map_err(|err| fail(at(), err))?;
                prop_assert_eq!(lost, vec![claim], "{}", at());
            }
            Op::Recover => {
                let expired: Vec<usize> = (0..model.tasks.len())
                    .filter(|&i| matches!(model.tasks[i].claim, Some((_, true))))
                    .collect();
                let recovered = backend
                    .recover_expired()
                    .await
                    .map_err(|err| fail(at(), err))?;
                prop_assert_eq!(recovered, expired.len() as u64, "{}", at());
                for i in expired {
                    model.end_claim(i);
                    let task = &mut model.tasks[i];
                    task.status = if task.cancel_requested {
                        TaskStatus::Cancelled
                    } else if task.attempts >= task.max_attempts {
                        TaskStatus::Failed
                    } else {
                        TaskStatus::Pending
                    };
                }
            }
            Op::Cancel { pick } => {
                if model.tasks.is_empty() {
                    continue;
                }
                let i = pick % model.tasks.len();
                let outcome = queue
                    .cancel(model.tasks[i].id)
                    .await
                    .map_err(|err| fail(at(), err))?;
                let task = &mut model.tasks[i];
                let expected = match task.status {
                    TaskStatus::Pending => {
                        task.status = TaskStatus::Cancelled;
                        CancelOutcome::Cancelled
                    }
                    TaskStatus::Running => {
                        task.cancel_requested = true;
                        CancelOutcome::Requested
                    }
                    finished => CancelOutcome::AlreadyFinished(finished),
                };
                prop_assert_eq!(outcome, expected, "{}", at());
            }
            Op::Retry { pick } => {
                if model.tasks.is_empty() {
                    continue;
                }
                let i = pick % model.tasks.len();
                let retried = queue.retry(model.tasks[i].id).await;
                let task = &mut model.tasks[i];
                if matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled) {
                    retried.map_err(|err| fail(at(), err))?;
                    task.status = TaskStatus::Pending;
                    task.attempts = 0;
                    task.cancel_requested = false;
                } else {
                    prop_assert!(retried.is_err(), "{}: retried a {} task", at(), task.status);
                }
            }
            Op::Pause { queue: q } => {
                queue
                    .pause(&names[q])
                    .await
                    .map_err(|err| fail(at(), err))?;
                model.paused[q] = true;
            }
            Op::Resume { queue: q } => {
                queue
                    .resume(&names[q])
                    .await
                    .map_err(|err| fail(at(), err))?;
                model.paused[q] = false;
            }
        }
        for task in &model.tasks {
            let status = queue.status(task.id).await.map_err(|err| fail(at(), err))?;
            prop_assert_eq!(status, task.status, "{}: task {}", at(), task.id);
        }
    }
    Ok(())
}

fn fail(at: String, err: crate::Error) -> TestCaseError {
    TestCaseError::fail(format!("{at}: {err}"))
}
