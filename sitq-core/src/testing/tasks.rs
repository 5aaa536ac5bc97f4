//! The tasks the conformance suite runs, written by hand (sitq-core cannot
//! use `#[sitq::task]`), with process-global probes the cases inspect.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::task::{Task, TaskDefaults, TaskFuture, TaskRegistration};
use crate::{Backoff, Registry, Result, codec};

/// Adds two numbers.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Add {
    /// Left.
    pub a: i64,
    /// Right.
    pub b: i64,
}

/// Adds on the blocking pool (a plain-fn task).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct BlockingAdd {
    /// Left.
    pub a: i64,
    /// Right.
    pub b: i64,
}

/// Always returns `Err(message)`; two attempts, 10 ms fixed backoff.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Fail {
    /// The error message.
    pub message: String,
}

/// Fails its first `failures` runs (counted per `key`), then returns the run count.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Flaky {
    /// Counter key.
    pub key: String,
    /// Runs that fail.
    pub failures: u32,
}

/// Sleeps `ms`; its timeout is 100 ms.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Slow {
    /// How long to sleep.
    pub ms: u64,
}

/// Panics.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Panic {
    /// The panic message.
    pub message: String,
}

/// Appends `tag` to the log `log`, and counts its execution.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Record {
    /// Which log.
    pub log: String,
    /// What to append.
    pub tag: String,
}

/// Waits until its gate `key` is opened with [`open_gate`].
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Gate {
    /// The gate.
    pub key: String,
}

macro_rules! task {
    ($ty:ty, $name:literal, $output:ty, $defaults:expr) => {
        impl Task for $ty {
            const NAME: &'static str = $name;
            const DEFAULTS: TaskDefaults = $defaults;
            type Output = $output;
        }
    };
}

const FAST_RETRY: TaskDefaults = TaskDefaults {
    backoff: Backoff::Fixed(Duration::from_millis(10)),
    ..TaskDefaults::DEFAULT
};

task!(Add, "sitq::testing::add", i64, TaskDefaults::DEFAULT);
task!(
    BlockingAdd,
    "sitq::testing::blocking_add",
    i64,
    TaskDefaults::DEFAULT
);
task!(
    Fail,
    "sitq::testing::fail",
    (),
    TaskDefaults {
        max_attempts: 2,
        ..FAST_RETRY
    }
);
task!(
    Flaky,
    "sitq::testing::flaky",
    u32,
    TaskDefaults {
        max_attempts: 5,
        ..FAST_RETRY
    }
);
task!(
    Slow,
    "sitq::testing::slow",
    (),
    TaskDefaults {
        max_attempts: 1,
        timeout: Some(Duration::from_millis(100)),
        ..TaskDefaults::DEFAULT
    }
);
task!(
    Panic,
    "sitq::testing::panic",
    (),
    TaskDefaults {
        max_attempts: 1,
        ..TaskDefaults::DEFAULT
    }
);
task!(Record, "sitq::testing::record", (), TaskDefaults::DEFAULT);
task!(Gate, "sitq::testing::gate", (), TaskDefaults::DEFAULT);

/// Reports what its [`Context`](crate::Context) says ([`Seen`]), failing its
/// first `failures` runs (counted per `key`); 3 attempts, 10 ms backoff.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Whoami {
    /// Counter key.
    pub key: String,
    /// Runs that fail.
    pub failures: u32,
}

/// What a [`Whoami`] run saw in its context.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Seen {
    /// `Context::id`.
    pub id: i64,
    /// `Context::name`.
    pub name: String,
    /// `Context::queue`.
    pub queue: String,
    /// `Context::attempt`.
    pub attempt: u32,
    /// `Context::max_attempts`.
    pub max_attempts: u32,
}

/// Fails its first `failures` runs, then snoozes `snoozes` runs for
/// `delay_ms` each (counted per `key`), then returns `(runs, attempt)`.
/// One attempt (a snooze spends none), 10 ms backoff, a 10 s timeout.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Snoozy {
    /// Counter key; [`runs`] lists when each run started.
    pub key: String,
    /// Runs that fail.
    pub failures: u32,
    /// Runs that snooze, after the failing ones.
    pub snoozes: u32,
    /// Each snooze's delay.
    pub delay_ms: u64,
}

task!(
    Whoami,
    "sitq::testing::whoami",
    Seen,
    TaskDefaults {
        max_attempts: 3,
        ..FAST_RETRY
    }
);
task!(
    Snoozy,
    "sitq::testing::snoozy",
    (u32, u32),
    TaskDefaults {
        max_attempts: 1,
        timeout: Some(Duration::from_secs(10)),
        ..FAST_RETRY
    }
);

pub(super) fn start<T, F, Fut>(payload: &[u8], body: F) -> Result<TaskFuture>
where
    T: Task,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Result<T::Output, String>> + Send + 'static,
{
    let task: T = codec::decode(payload, &format!("arguments of task {}", T::NAME))?;
    let attempt = body(task);
    Ok(Box::pin(async move {
        let output = attempt.await?;
        codec::encode(&output, "result").map_err(|err| err.to_string())
    }))
}

pub(super) fn registration<T: Task>(
    run: fn(&[u8], Option<&crate::TaskInputs>, crate::Context) -> Result<TaskFuture>,
) -> TaskRegistration {
    TaskRegistration {
        name: T::NAME,
        file: file!(),
        line: line!(),
        defaults: T::DEFAULTS,
        run,
    }
}

pub(super) static REGISTRATIONS: LazyLock<Vec<TaskRegistration>> = LazyLock::new(|| {
    let mut registrations = vec![
        registration::<Add>(|p, _, _| start(p, |t: Add| async move { Ok(t.a + t.b) })),
        registration::<BlockingAdd>(|p, _, _| {
            start(p, |t: BlockingAdd| async move {
                tokio::task::spawn_blocking(move || t.a + t.b)
                    .await
                    .map_err(|err| err.to_string())
            })
        }),
        registration::<Fail>(|p, _, _| start(p, |t: Fail| async move { Err(t.message) })),
        registration::<Flaky>(|p, _, _| {
            start(p, |t: Flaky| async move {
                let runs = bump(&t.key);
                if runs <= t.failures {
                    Err(format!("flaky failure {runs} of {}", t.failures))
                } else {
                    Ok(runs)
                }
            })
        }),
        registration::<Slow>(|p, _, _| {
            start(p, |t: Slow| async move {
                tokio::time::sleep(Duration::from_millis(t.ms)).await;
                Ok(())
            })
        }),
        registration::<Panic>(|p, _, _| {
            start(p, |t: Panic| async move {
                if !t.message.is_empty() {
                    panic!("{}", t.message);
                }
                Ok(())
            })
        }),
        registration::<Record>(|p, _, _| {
            start(p, |t: Record| async move {
                bump(&format!("{}/{}", t.log, t.tag));
                lock(&LOGS).entry(t.log).or_default().push(t.tag);
                Ok(())
            })
        }),
        registration::<Gate>(|p, _, _| {
            start(p, |t: Gate| async move {
                let gate = gate(&t.key);
                bump(&format!("gate-started/{}", t.key));
                let permit = gate.acquire().await.map_err(|err| err.to_string())?;
                permit.forget();
                Ok(())
            })
        }),
        registration::<Whoami>(|p, _, context| {
            start(p, move |t: Whoami| async move {
                let run = bump(&t.key);
                if run <= t.failures {
                    return Err(format!("whoami failure {run}"));
                }
                Ok(Seen {
                    id: context.id().0,
                    name: context.name().to_owned(),
                    queue: context.queue().to_owned(),
                    attempt: context.attempt(),
                    max_attempts: context.max_attempts(),
                })
            })
        }),
        registration::<Snoozy>(|p, _, context| {
            start(p, move |t: Snoozy| async move {
                lock(&RUNS)
                    .entry(t.key.clone())
                    .or_default()
                    .push(chrono::Utc::now());
                let run = bump(&t.key);
                if run <= t.failures {
                    return Err(format!("snoozy failure {run}"));
                }
                if run <= t.failures + t.snoozes {
                    return context.snooze(Duration::from_millis(t.delay_ms)).await;
                }
                Ok((run, context.attempt()))
            })
        }),
    ];
    registrations.extend(super::cancel_tasks::registrations());
    registrations.extend(super::workflow_tasks::registrations());
    registrations
});

static RUNS: LazyLock<Mutex<HashMap<String, Vec<chrono::DateTime<chrono::Utc>>>>> =
    LazyLock::new(Default::default);

/// When each run of the [`Snoozy`] task `key` started (this process's clock).
pub fn runs(key: &str) -> Vec<chrono::DateTime<chrono::Utc>> {
    lock(&RUNS).get(key).cloned().unwrap_or_default()
}

/// The registry of the conformance tasks.
pub fn registry() -> Registry {
    Registry::from_registrations(REGISTRATIONS.iter()).expect("conformance task names are unique")
}

/// The conformance tasks but `name`: a worker that has not linked it.
pub fn registry_without(name: &str) -> Registry {
    Registry::from_registrations(REGISTRATIONS.iter().filter(|r| r.name != name))
        .expect("conformance task names are unique")
}

static COUNTS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);
static LOGS: LazyLock<Mutex<HashMap<String, Vec<String>>>> = LazyLock::new(Default::default);
static GATES: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> = LazyLock::new(Default::default);

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn bump(key: &str) -> u32 {
    let mut counts = lock(&COUNTS);
    let count = counts.entry(key.to_owned()).or_default();
    *count += 1;
    *count
}

/// How many times `key` was counted (Flaky runs, Record executions as `log/tag`).
pub fn count(key: &str) -> u32 {
    lock(&COUNTS).get(key).copied().unwrap_or(0)
}

/// The tags appended to `log`, in execution order.
pub fn log(log: &str) -> Vec<String> {
    lock(&LOGS).get(log).cloned().unwrap_or_default()
}

fn gate(key: &str) -> Arc<Semaphore> {
    lock(&GATES)
        .entry(key.to_owned())
        .or_insert_with(|| Arc::new(Semaphore::new(0)))
        .clone()
}

/// Lets one waiting [`Gate`] task through.
pub fn open_gate(key: &str) {
    gate(key).add_permits(1);
}

/// A key no other test in this process uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: LazyLock<Mutex<u64>> = LazyLock::new(Default::default);
    let mut next = lock(&NEXT);
    *next += 1;
    format!("{prefix}-{}-{}", std::process::id(), *next)
}
