//! Tasks for the worker-level tests, written by hand (this crate cannot use
//! `#[sitq::task]`), with process-global probes the tests read: how often
//! each key ran, and gates that hold a task until the test opens them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use sitq_core::{Registry, Task, TaskDefaults, TaskFuture, TaskRegistration, codec};
use tokio::sync::Semaphore;

/// Counts one run of `key`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Tally {
    /// What to count.
    pub key: String,
}

/// Counts its start under `started/KEY`, waits until [`open_gate`]`(KEY)`,
/// then counts its end under `finished/KEY`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Hold {
    /// The gate, and the probes' key.
    pub key: String,
}

impl Task for Tally {
    const NAME: &'static str = "sitq_postgres_tests::tally";
    type Output = ();
}

impl Task for Hold {
    const NAME: &'static str = "sitq_postgres_tests::hold";
    type Output = ();
}

static TALLY: TaskRegistration = TaskRegistration {
    name: Tally::NAME,
    file: file!(),
    line: line!(),
    defaults: TaskDefaults::DEFAULT,
    run: run_tally,
};

fn run_tally(
    payload: &[u8],
    _: Option<&sitq_core::TaskInputs>,
    _: sitq_core::Context,
) -> sitq_core::Result<TaskFuture> {
    let task: Tally = codec::decode(payload, "arguments of tally")?;
    Ok(finish(async move {
        bump(&task.key);
    }))
}

static HOLD: TaskRegistration = TaskRegistration {
    name: Hold::NAME,
    file: file!(),
    line: line!(),
    defaults: TaskDefaults::DEFAULT,
    run: run_hold,
};

fn run_hold(
    payload: &[u8],
    _: Option<&sitq_core::TaskInputs>,
    _: sitq_core::Context,
) -> sitq_core::Result<TaskFuture> {
    let task: Hold = codec::decode(payload, "arguments of hold")?;
    Ok(finish(async move {
        bump(&format!("started/{}", task.key));
        let gate = gate(&task.key);
        if let Ok(permit) = gate.acquire().await {
            permit.forget();
        }
        bump(&format!("finished/{}", task.key));
    }))
}

/// A task future that runs `body` and returns `()`.
fn finish(body: impl Future<Output = ()> + Send + 'static) -> TaskFuture {
    Box::pin(async move {
        body.await;
        codec::encode(&(), "result").map_err(|error| error.to_string())
    })
}

/// The registry of these tasks, for `Worker::registry`.
pub fn registry() -> Registry {
    Registry::from_registrations([&TALLY, &HOLD]).expect("distinct task names")
}

static COUNTS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);
static GATES: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> = LazyLock::new(Default::default);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bump(key: &str) {
    *lock(&COUNTS).entry(key.to_owned()).or_default() += 1;
}

/// How many times `key` was counted.
pub fn count(key: &str) -> u32 {
    lock(&COUNTS).get(key).copied().unwrap_or(0)
}

fn gate(key: &str) -> Arc<Semaphore> {
    lock(&GATES)
        .entry(key.to_owned())
        .or_insert_with(|| Arc::new(Semaphore::new(0)))
        .clone()
}

/// Lets every [`Hold`] task of `key`, waiting or still to come, through.
pub fn open_gate(key: &str) {
    gate(key).add_permits(Semaphore::MAX_PERMITS / 2);
}

/// A key no other test in this process uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: LazyLock<Mutex<u64>> = LazyLock::new(Default::default);
    let mut next = lock(&NEXT);
    *next += 1;
    format!("{prefix}-{}", *next)
}
