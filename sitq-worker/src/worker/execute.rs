//! One attempt of one task: dispatch by name, decode, run under the timeout,
//! catch panics, and turn what happened into an [`Outcome`].

use std::any::Any;
use std::error::Error as StdError;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use sitq_core::encryption::{self, Binding};
use sitq_core::{
    ClaimedTask, ContextControl, FailureKind, Keyring, Outcome, Registry, TaskFailure, TaskFuture,
    TaskInputs,
};

/// The claimed task's arguments and inputs, opened when any is sealed;
/// `None` when all are plain (nothing to copy).
fn open_claimed(
    keyring: Option<&Keyring>,
    task: &ClaimedTask,
) -> sitq_core::Result<Option<(Vec<u8>, Option<TaskInputs>)>> {
    let inputs_sealed = task.inputs.as_ref().is_some_and(|inputs| {
        inputs
            .results
            .iter()
            .any(|(_, result)| result.as_deref().is_some_and(encryption::is_sealed))
    });
    if !encryption::is_sealed(&task.payload) && !inputs_sealed {
        return Ok(None);
    }
    let payload = encryption::open_with(
        keyring,
        Binding::Arguments(&task.name),
        task.payload.clone(),
    )?;
    let inputs = match &task.inputs {
        Some(inputs) => {
            let mut results = Vec::with_capacity(inputs.results.len());
            for (id, result) in &inputs.results {
                let opened = match result {
                    Some(result) => Some(encryption::open_with(
                        keyring,
                        Binding::Result(*id),
                        result.clone(),
                    )?),
                    None => None,
                };
                results.push((*id, opened));
            }
            Some(TaskInputs {
                mode: inputs.mode,
                results,
            })
        }
        None => None,
    };
    Ok(Some((payload, inputs)))
}

/// Runs one claimed attempt to its outcome. Never panics on the task's
/// account. A result over `max_result_bytes` fails the task (a retry would
/// make the same result).
pub(crate) async fn run_attempt(
    registry: &Registry,
    task: &ClaimedTask,
    worker_id: &str,
    max_result_bytes: usize,
    keyring: Option<&Keyring>,
    context: sitq_core::Context,
    mut control: sitq_core::ContextControl,
) -> Outcome {
    let Some(registration) = registry.get(&task.name) else {
        return Outcome::Failed(TaskFailure::new(
            FailureKind::UnknownTask,
            format!(
                "no task named {:?} is registered in worker {worker_id}; link the crate that defines it into the worker binary (and name it, e.g. `use my_tasks as _;`), then retry the task",
                task.name
            ),
        ));
    };
    // A value sealed with a key this worker lacks, or one that does not
    // verify, fails the task for good, naming the key: it is kept, and a
    // retry once the key is in the keyring runs it.
    let opened = match open_claimed(keyring, task) {
        Ok(opened) => opened,
        Err(err) => {
            return Outcome::Failed(TaskFailure::new(FailureKind::Decode, err.to_string()));
        }
    };
    let (payload, inputs) = match &opened {
        Some((payload, inputs)) => (payload.as_slice(), inputs.as_ref()),
        None => (task.payload.as_slice(), task.inputs.as_ref()),
    };
    let attempt = match (registration.run)(payload, inputs, context) {
        Ok(future) => future,
        Err(err) => {
            return Outcome::Failed(TaskFailure::new(FailureKind::Decode, error_chain(&err)));
        }
    };
    let run = async {
        match registration.defaults.timeout {
            Some(limit) => match tokio::time::timeout(limit, CatchUnwind(attempt)).await {
                Ok(result) => result,
                Err(_) => Err(TaskFailure::new(
                    FailureKind::Timeout,
                    format!("attempt ran longer than its timeout of {}", human(limit)),
                )),
            },
            None => CatchUnwind(attempt).await,
        }
    };
    // A snooze ends the attempt: the task's future (pending for good inside
    // `Context::snooze`) is dropped. Checked first, so a snooze that lands
    // with the timeout is a snooze.
    let result = tokio::select! {
        biased;
        delay = control.snoozed() => return Outcome::Snooze { delay },
        result = run => result,
    };
    match result {
        Ok(bytes) if bytes.len() > max_result_bytes => Outcome::Failed(TaskFailure::new(
            FailureKind::Error,
            format!(
                "the result of task {} ({}) is {} bytes, over the limit of {max_result_bytes} bytes; return large data by reference (a path or key), or raise ConnectOptions::max_result_bytes",
                task.id,
                task.name,
                bytes.len()
            ),
        )),
        Ok(bytes) => match keyring {
            None => Outcome::Succeeded(bytes),
            Some(keyring) => match keyring.seal(Binding::Result(task.id), &bytes) {
                Ok(sealed) => Outcome::Succeeded(sealed),
                Err(err) => Outcome::Failed(TaskFailure::new(FailureKind::Error, err.to_string())),
            },
        },
        Err(failure) if failure.kind.is_retryable() && task.attempt < task.max_attempts => {
            let delay = registration
                .defaults
                .backoff
                .delay(task.attempt, jitter(task));
            Outcome::Retry { failure, delay }
        }
        Err(failure) => Outcome::Failed(failure),
    }
}

/// Runs `attempt` (attempt number `attempt_no`) until it ends, or until
/// `grace` after its context was cancelled, when its future is dropped.
///
/// Once cancelled, an `Ok` still wins (the work was done: the task
/// succeeds), while an error, a panic, a timeout or the drop end the
/// attempt as [`Outcome::Cancelled`]: a cancel is never retried.
pub(crate) async fn cancellable(
    attempt: impl Future<Output = Outcome>,
    control: &ContextControl,
    grace: Duration,
    attempt_no: u32,
) -> Outcome {
    let dropped = async {
        control.cancel_requested().await;
        tokio::time::sleep(grace).await;
    };
    let outcome = tokio::select! {
        // An attempt that ends as the grace runs out is not dropped.
        biased;
        outcome = attempt => outcome,
        () = dropped => {
            return Outcome::Cancelled(TaskFailure::new(
                FailureKind::Cancelled,
                format!(
                    "cancelled during attempt {attempt_no}; the task did not stop within the \
                     grace period of {}, so the attempt was dropped",
                    human(grace)
                ),
            ));
        }
    };
    if !control.is_cancelled() {
        return outcome;
    }
    match outcome {
        Outcome::Retry { failure, .. } | Outcome::Failed(failure) => {
            Outcome::Cancelled(TaskFailure::new(
                FailureKind::Cancelled,
                format!(
                    "cancelled during attempt {attempt_no}; the task stopped with {}: {}",
                    failure.kind, failure.message
                ),
            ))
        }
        // A cancelled task does not run again, snoozed or not.
        Outcome::Snooze { .. } => Outcome::Cancelled(TaskFailure::new(
            FailureKind::Cancelled,
            format!("cancelled during attempt {attempt_no}; the task snoozed after it"),
        )),
        other => other,
    }
}

/// Polls a task's future, turning a panic into that attempt's failure.
struct CatchUnwind(TaskFuture);

impl Future for CatchUnwind {
    type Output = Result<Vec<u8>, TaskFailure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future is dropped right after a panic, so no broken state is observed.
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(bytes))) => Poll::Ready(Ok(bytes)),
            Ok(Poll::Ready(Err(message))) => {
                Poll::Ready(Err(TaskFailure::new(FailureKind::Error, message)))
            }
            Err(panic) => Poll::Ready(Err(TaskFailure::new(
                FailureKind::Panic,
                format!("task panicked: {}", panic_message(&*panic)),
            ))),
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "(a panic payload that is not a string)"
    }
}

/// `error: source: source…`, since the stored text is all an operator sees.
pub(crate) fn error_chain(error: &dyn StdError) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn human(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// A value in [0, 1) that differs between tasks and attempts, so retries of
/// tasks that failed together spread out. Not cryptographic.
fn jitter(task: &ClaimedTask) -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    let mut x = (task.id.0 as u64) ^ (u64::from(task.attempt) << 32) ^ u64::from(nanos);
    // splitmix64 finaliser
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitq_core::{Context, TaskDefaults, TaskId, TaskRegistration};

    /// Sleeps the milliseconds in its payload, then snoozes for 7 s; its
    /// timeout is 50 ms.
    static SNOOZER: TaskRegistration = TaskRegistration {
        name: "snoozer",
        file: file!(),
        line: line!(),
        defaults: TaskDefaults {
            max_attempts: 1,
            timeout: Some(Duration::from_millis(50)),
            ..TaskDefaults::DEFAULT
        },
        run: snoozer,
    };

    fn snoozer(
        payload: &[u8],
        _: Option<&sitq_core::TaskInputs>,
        context: Context,
    ) -> sitq_core::Result<TaskFuture> {
        let ms = payload.first().copied().map_or(0, u64::from);
        Ok(Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            context.snooze(Duration::from_secs(7)).await
        }))
    }

    async fn run(sleep_ms: u8) -> Outcome {
        let registry = Registry::from_registrations([&SNOOZER]).expect("registry");
        let task = ClaimedTask {
            id: TaskId(1),
            name: "snoozer".into(),
            queue: "default".into(),
            payload: vec![sleep_ms],
            attempt: 1,
            fence: 1,
            max_attempts: 1,
            created_at: chrono::Utc::now(),
            inputs: None,
            trace: None,
        };
        let (context, control) = Context::for_attempt(&task);
        let outcome = run_attempt(&registry, &task, "w", usize::MAX, None, context, control);
        tokio::time::timeout(Duration::from_secs(10), outcome)
            .await
            .expect("the attempt ends")
    }

    #[tokio::test]
    async fn a_snooze_within_the_timeout_is_a_snooze() {
        assert_eq!(
            run(0).await,
            Outcome::Snooze {
                delay: Duration::from_secs(7)
            }
        );
    }

    #[tokio::test]
    async fn a_snooze_after_the_timeout_is_too_late() {
        match run(200).await {
            Outcome::Failed(failure) => assert_eq!(failure.kind, FailureKind::Timeout),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    fn control() -> ContextControl {
        let task = ClaimedTask {
            id: TaskId(1),
            name: "t".into(),
            queue: "q".into(),
            payload: Vec::new(),
            attempt: 2,
            fence: 2,
            max_attempts: 3,
            created_at: chrono::Utc::now(),
            inputs: None,
            trace: None,
        };
        Context::for_attempt(&task).1
    }

    fn failed() -> Outcome {
        Outcome::Retry {
            failure: TaskFailure::new(FailureKind::Error, "boom"),
            delay: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn an_uncancelled_attempt_keeps_its_outcome() {
        let control = control();
        let outcome = cancellable(async { failed() }, &control, Duration::ZERO, 2).await;
        assert_eq!(outcome, failed());
    }

    #[tokio::test]
    async fn after_a_cancel_ok_wins_and_an_error_is_a_cancellation() {
        let control = control();
        control.cancel();
        let grace = Duration::from_secs(3600);
        let ok = cancellable(async { Outcome::Succeeded(vec![1]) }, &control, grace, 2).await;
        assert_eq!(ok, Outcome::Succeeded(vec![1]));
        match cancellable(async { failed() }, &control, grace, 2).await {
            Outcome::Cancelled(failure) => {
                assert_eq!(failure.kind, FailureKind::Cancelled);
                assert!(failure.message.contains("attempt 2"), "{}", failure.message);
                assert!(
                    failure.message.contains("error: boom"),
                    "{}",
                    failure.message
                );
            }
            other => panic!("expected Cancelled, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_attempt_that_ignores_the_cancel_is_dropped_after_the_grace() {
        let control = control();
        let never = std::future::pending::<Outcome>();
        let running = tokio::spawn({
            let control = control.clone();
            async move { cancellable(never, &control, Duration::ZERO, 2).await }
        });
        control.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("dropped once cancelled, with no grace")
            .expect("join");
        match outcome {
            Outcome::Cancelled(failure) => {
                assert!(
                    failure.message.contains("grace period of 0s"),
                    "{}",
                    failure.message
                );
            }
            other => panic!("expected Cancelled, got {other:?}"),
        }
    }
}
