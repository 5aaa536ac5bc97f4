//! The conformance tasks of the cancel cases (testing/cancel.rs).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tasks::{bump, registration, start};
use crate::task::{Task, TaskDefaults, TaskRegistration};

/// What a [`Linger`] task does once its context says it was cancelled.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCancel {
    /// Nothing: it goes on (for an hour), so the worker drops it.
    Ignore,
    /// Returns `Err`.
    Stop,
    /// Returns `Ok(7)`: the work counts as done.
    Finish,
}

/// Runs for an hour unless cancelled; counts `linger-started/{key}` when it
/// starts and `linger-cancelled/{key}` when its context says cancelled.
/// Three attempts, so a cancel that were retried would show.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Linger {
    /// Counter key.
    pub key: String,
    /// What to do when cancelled.
    pub on_cancel: OnCancel,
}

impl Task for Linger {
    const NAME: &'static str = "sitq::testing::linger";
    const DEFAULTS: TaskDefaults = TaskDefaults {
        max_attempts: 3,
        ..TaskDefaults::DEFAULT
    };
    type Output = u32;
}

/// The registrations of the cancel tasks.
pub(super) fn registrations() -> Vec<TaskRegistration> {
    vec![registration::<Linger>(|p, _, context| {
        start(p, move |t: Linger| async move {
            bump(&format!("linger-started/{}", t.key));
            tokio::select! {
                () = context.cancelled() => {}
                () = tokio::time::sleep(Duration::from_secs(3600)) => return Ok(1),
            }
            bump(&format!("linger-cancelled/{}", t.key));
            match t.on_cancel {
                OnCancel::Ignore => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(1)
                }
                OnCancel::Stop => Err("stopped: cancelled".to_owned()),
                OnCancel::Finish => Ok(7),
            }
        })
    })]
}
