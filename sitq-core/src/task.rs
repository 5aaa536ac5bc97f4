use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::dependency::TaskInputs;
use crate::options::Backoff;

/// A task type: its value is the payload (the arguments), and it has a stable name.
///
/// `#[sitq::task]` implements this for the struct it generates; implement it by
/// hand only for tooling.
pub trait Task: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The registered name, stored with every enqueued task; the worker dispatches on it.
    const NAME: &'static str;
    /// Defaults for every enqueue of this task.
    const DEFAULTS: TaskDefaults = TaskDefaults::DEFAULT;
    /// The task's successful result.
    type Output: Serialize + DeserializeOwned + Send + 'static;
}

/// Per-task defaults, set with `#[sitq::task(...)]` options.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TaskDefaults {
    /// The queue (default `"default"`).
    pub queue: &'static str,
    /// Higher runs first (default 0).
    pub priority: i32,
    /// Attempts before the task is failed (default 3).
    pub max_attempts: u32,
    /// How long one attempt may run (default: no limit).
    pub timeout: Option<Duration>,
    /// The delay before each retry.
    pub backoff: Backoff,
    /// Whether every enqueue is unique by its arguments (`#[task(unique)]`):
    /// its key is the task's name and a hash of its encoded arguments.
    pub unique: bool,
    /// How long a succeeded task keeps blocking its unique key
    /// (`#[task(unique_for = "1h")]`); applies to explicit keys too.
    pub unique_for: Option<Duration>,
}

impl TaskDefaults {
    /// The defaults of a task declared without options.
    pub const DEFAULT: TaskDefaults = TaskDefaults {
        queue: "default",
        priority: 0,
        max_attempts: 3,
        timeout: None,
        backoff: Backoff::DEFAULT,
        unique: false,
        unique_for: None,
    };
}

impl Default for TaskDefaults {
    fn default() -> Self {
        TaskDefaults::DEFAULT
    }
}

/// One attempt of a task: the encoded result, or the task's error message.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'static>>;

/// A task as the worker sees it, collected from every linked crate with `inventory`.
///
/// `#[sitq::task]` submits one per task.
#[derive(Debug)]
pub struct TaskRegistration {
    /// The registered name.
    pub name: &'static str,
    /// The file that declares the task.
    pub file: &'static str,
    /// The line of the declaration.
    pub line: u32,
    /// The task's defaults (timeout and backoff apply at run time).
    pub defaults: TaskDefaults,
    /// Decodes a payload (and the dependencies' results the task receives
    /// as its first argument, if any: then the payload holds the other
    /// arguments) and starts an attempt with its [`Context`] (passed to the
    /// fn when it takes one); `Err` holds the decode error.
    pub run: fn(&[u8], Option<&TaskInputs>, Context) -> crate::Result<TaskFuture>,
}

impl TaskRegistration {
    /// `file:line` of the declaration, for messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

inventory::collect!(TaskRegistration);
