//! Dependencies between tasks, and results passed from one task to the next.
//!
//! A task enqueued with [`EnqueueOptions::after`](crate::EnqueueOptions::after)
//! is `blocked` until every dependency has succeeded, then `pending`. When a
//! dependency fails for good or is cancelled, the dependent is cancelled with
//! a reason naming it ([`DEPENDENCY_CANCELLED_BY`]), and so, in turn, are its
//! own dependents; one enqueued with
//! [`after_finished`](crate::EnqueueOptions::after_finished) runs anyway
//! once all its dependencies have finished.
//!
//! The generated `task::after_result(&handle)` passes a dependency's result
//! as the task's first argument: read from the dependency's stored result
//! when the dependent is claimed ([`TaskInputs`]), never copied at enqueue.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::handle::TaskHandle;
use crate::record::TaskId;
use crate::{Error, Result};

/// Who cancels a dependent whose dependency failed or was cancelled: the
/// `by` of its [`Cancellation`](crate::Cancellation) and of
/// [`Error::Cancelled`]. The reason names the dependency, e.g.
/// `dependency 42 (etl::fetch) failed` or `dependency 42 (etl::fetch) was cancelled`.
pub const DEPENDENCY_CANCELLED_BY: &str = "dependency";

/// The most dependencies one task may have (a fan-in of this many results).
pub const MAX_DEPENDENCIES: usize = 100_000;

/// What a dependency points at: a stored task, or a node of the
/// [`Workflow`](crate::Workflow) being built.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DepTarget {
    /// A task already enqueued.
    Task(TaskId),
    /// The node `index` of the workflow builder `workflow` (not yet stored).
    Node {
        /// The builder's identity.
        workflow: u64,
        /// The node's position in the builder.
        index: usize,
    },
}

/// A task's dependencies as a backend stores them.
///
/// Every target in `after` and `inputs` is a dependency; one listed twice is
/// one dependency (its result may still be passed twice).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// Dependencies whose results are not passed.
    pub after: Vec<DepRef>,
    /// Dependencies whose results are passed as the first argument, in order.
    pub inputs: Vec<DepRef>,
    /// How the results are passed: [`InputMode::None`] when `inputs` is empty.
    pub input_mode: InputMode,
    /// Run once every dependency has finished, whatever its outcome, rather
    /// than be cancelled when one fails or is cancelled.
    pub after_finished: bool,
}

impl Dependencies {
    /// No dependencies at all.
    pub fn is_empty(&self) -> bool {
        self.after.is_empty() && self.inputs.is_empty()
    }

    /// Every dependency, `inputs` first then `after`, duplicates included:
    /// the rows a backend stores, in order (`input` true for the first
    /// `inputs.len()`).
    pub fn edges(&self) -> impl Iterator<Item = (DepRef, bool)> + '_ {
        self.inputs
            .iter()
            .map(|dep| (*dep, true))
            .chain(self.after.iter().map(|dep| (*dep, false)))
    }
}

/// A dependency as stored by one enqueue call: a stored task, or an earlier
/// task of the same batch (`Batch(i)`: the `i`-th task of the call, always
/// before the dependent, so a batch is acyclic).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DepRef {
    /// A stored task.
    Task(TaskId),
    /// The task at this index of the same batch.
    Batch(usize),
}

/// How a task receives its dependencies' results.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum InputMode {
    /// It does not: its arguments are all in its payload.
    #[default]
    None,
    /// The one input's result is the first argument (`T` from a `TaskHandle<T>`).
    One,
    /// The inputs' results, in order, are the first argument (`Vec<T>`
    /// from a list of `TaskHandle<T>`).
    Many,
}

impl InputMode {
    /// The number stored in the `input_mode` column.
    pub fn as_i16(self) -> i16 {
        match self {
            InputMode::None => 0,
            InputMode::One => 1,
            InputMode::Many => 2,
        }
    }

    /// The mode stored as `value` (unknown values read as `None`).
    pub fn from_i16(value: i16) -> InputMode {
        match value {
            1 => InputMode::One,
            2 => InputMode::Many,
            _ => InputMode::None,
        }
    }
}

/// The results a claimed task receives as its first argument, read from its
/// dependencies' stored results when it was claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInputs {
    /// [`InputMode::One`] or [`InputMode::Many`].
    pub mode: InputMode,
    /// One per input, in order: the dependency and its encoded result
    /// (`None` when it has none: it did not succeed, or was pruned).
    pub results: Vec<(TaskId, Option<Vec<u8>>)>,
}

impl TaskInputs {
    /// Decodes the first argument, an `A`: the one result, or (for
    /// [`InputMode::Many`]) the list of results as one sequence. `task`
    /// names the receiving task in errors.
    pub fn decode<A: DeserializeOwned>(&self, task: &str) -> Result<A> {
        let what = || format!("the first argument of task {task}, from its dependencies' results");
        let mut parts = Vec::with_capacity(self.results.len());
        for (dep, result) in &self.results {
            match result {
                Some(bytes) => parts.push(bytes.as_slice()),
                None => {
                    return Err(Error::Decode {
                        what: what(),
                        source: format!(
                            "dependency {dep} has no stored result (it did not succeed, or was pruned)"
                        )
                        .into(),
                    });
                }
            }
        }
        match (self.mode, parts.as_slice()) {
            (InputMode::One, [one]) => crate::codec::decode(one, &what()),
            (InputMode::Many, parts) => crate::codec::decode_sequence(parts, &what()),
            (mode, parts) => Err(Error::Decode {
                what: what(),
                source: format!("{} results for input mode {mode:?}", parts.len()).into(),
            }),
        }
    }
}

/// Something a task can depend on: a [`TaskHandle`] or a workflow
/// [`Node`]. See [`EnqueueOptions::after`](crate::EnqueueOptions::after).
pub trait Dependency {
    /// What the dependency points at.
    fn target(&self) -> DepTarget;
}

impl<T> Dependency for TaskHandle<T> {
    fn target(&self) -> DepTarget {
        DepTarget::Task(self.id())
    }
}

impl<T> Dependency for Node<T> {
    fn target(&self) -> DepTarget {
        DepTarget::Node {
            workflow: self.workflow,
            index: self.index,
        }
    }
}

impl<D: Dependency + ?Sized> Dependency for &D {
    fn target(&self) -> DepTarget {
        (**self).target()
    }
}

/// A source of the first argument `A` of a task: `&TaskHandle<A>` or
/// `&Node<A>` pass one result; a list (slice, `Vec` or array) of
/// `TaskHandle<T>` or `Node<T>` passes their results, in order, as a
/// `Vec<T>`. Used by the generated `task::after_result(..)`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot give this task's first argument, a `{A}`",
    label = "this does not produce a `{A}`",
    note = "`after_result(&handle)` passes the result of a `TaskHandle<T>` (or workflow `Node<T>`) as a first argument of type `T`; a list of them passes a `Vec<T>`",
    note = "the result type of the task you depend on must be exactly the type of this task's first argument"
)]
pub trait ResultOf<A> {
    /// The inputs, in order, and how they are passed.
    fn inputs(&self) -> (InputMode, Vec<DepTarget>);
}

impl<T> ResultOf<T> for &TaskHandle<T> {
    fn inputs(&self) -> (InputMode, Vec<DepTarget>) {
        (InputMode::One, vec![self.target()])
    }
}

impl<T> ResultOf<T> for &Node<T> {
    fn inputs(&self) -> (InputMode, Vec<DepTarget>) {
        (InputMode::One, vec![self.target()])
    }
}

fn many<'a, D: Dependency + 'a>(
    deps: impl IntoIterator<Item = &'a D>,
) -> (InputMode, Vec<DepTarget>) {
    (
        InputMode::Many,
        deps.into_iter().map(Dependency::target).collect(),
    )
}

impl<T> ResultOf<Vec<T>> for &[TaskHandle<T>] {
    fn inputs(&self) -> (InputMode, Vec<DepTarget>) {
        many(self.iter())
    }
}

impl<T> ResultOf<Vec<T>> for &Vec<TaskHandle<T>> {
    fn inputs(&self) -> (InputMode, Vec<DepTarget>) {
        many(self.iter())
    }
}

impl<T, const N: usize> ResultOf<Vec<T>> for &[TaskHandle<T>; N] {
    fn inputs(&self) -> (InputMode, Vec<DepTarget>) {
        many(self.iter())
    }
}

impl<T> ResultOf<Vec<T>> for &[Node<T>] {
    fn inputs(&self) -> (InputMode, Vec<DepTarget>) {
        many(self.iter())
    }
}

impl<T> ResultOf<Vec<T>> for &Vec<Node<T>> {
    fn inputs(&self) -> (InputMode, Vec<DepTarget>) {
        many(self.iter())
    }
}

impl<T, const N: usize> ResultOf<Vec<T>> for &[Node<T>; N] {
    fn inputs(&self) -> (InputMode, Vec<DepTarget>) {
        many(self.iter())
    }
}

/// A task added to a [`Workflow`](crate::Workflow) whose result is a `T`: a
/// dependency for later nodes, and a [`TaskHandle`] once the workflow is
/// enqueued ([`WorkflowHandle::handle`](crate::WorkflowHandle::handle)).
pub struct Node<T> {
    pub(crate) workflow: u64,
    pub(crate) index: usize,
    pub(crate) _output: PhantomData<fn() -> T>,
}

impl<T> Node<T> {
    /// The node's position in its workflow (0 for the first task added).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Node<T> {}

impl<T> std::fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("index", &self.index).finish()
    }
}
