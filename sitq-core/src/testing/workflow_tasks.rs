//! The tasks the workflow cases run: ones that receive their dependencies'
//! results as their first argument, written by hand as `#[sitq::task]`
//! would generate them (the payload of an `after_result` enqueue holds the
//! other arguments).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::tasks::{registration, start};
use crate::dependency::{DepTarget, InputMode};
use crate::task::{Task, TaskDefaults, TaskFuture, TaskRegistration};
use crate::{EnqueueOptions, Queue, Result, TaskHandle, TaskInputs, codec};

/// Doubles `value` (an `i64` result when enqueued after one).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Double {
    /// The value to double.
    pub value: i64,
}

/// Returns `(label, values)`: a fan-in that shows the order its results came in.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Collect {
    /// The values, from dependencies' results.
    pub values: Vec<i64>,
    /// Stored in the payload.
    pub label: String,
}

/// `Collect`'s payload when its values come from dependencies.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct CollectRest {
    label: String,
}

/// `Double`'s payload when its value comes from a dependency.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct DoubleRest {}

impl Task for Double {
    const NAME: &'static str = "sitq::testing::double";
    const DEFAULTS: TaskDefaults = TaskDefaults::DEFAULT;
    type Output = i64;
}

impl Task for Collect {
    const NAME: &'static str = "sitq::testing::collect";
    const DEFAULTS: TaskDefaults = TaskDefaults::DEFAULT;
    type Output = (String, Vec<i64>);
}

/// The task of `payload`, or with `inputs`, rebuilt from its other
/// arguments (`R`) and the decoded first one, as generated code does.
fn decode_with<T: Task, R: DeserializeOwned, A: DeserializeOwned>(
    payload: &[u8],
    inputs: Option<&TaskInputs>,
    rebuild: impl FnOnce(A, R) -> T,
) -> Result<Vec<u8>> {
    let task = match inputs {
        None => codec::decode::<T>(payload, "arguments")?,
        Some(inputs) => {
            let rest: R = codec::decode(payload, "arguments")?;
            rebuild(inputs.decode::<A>(T::NAME)?, rest)
        }
    };
    codec::encode(&task, "arguments")
}

fn run_double(
    payload: &[u8],
    inputs: Option<&TaskInputs>,
    _: crate::Context,
) -> Result<TaskFuture> {
    let payload =
        decode_with::<Double, DoubleRest, i64>(payload, inputs, |value, _| Double { value })?;
    start(&payload, |t: Double| async move { Ok(t.value * 2) })
}

fn run_collect(
    payload: &[u8],
    inputs: Option<&TaskInputs>,
    _: crate::Context,
) -> Result<TaskFuture> {
    let payload =
        decode_with::<Collect, CollectRest, Vec<i64>>(payload, inputs, |values, rest| Collect {
            values,
            label: rest.label,
        })?;
    start(
        &payload,
        |t: Collect| async move { Ok((t.label, t.values)) },
    )
}

/// The registrations of the workflow tasks.
pub(super) fn registrations() -> Vec<TaskRegistration> {
    vec![
        registration::<Double>(run_double),
        registration::<Collect>(run_collect),
    ]
}

/// Enqueues `Double` to receive `dependency`'s result, as
/// `double::after_result(&h).enqueue(&queue)` does.
pub async fn double_after(
    queue: &Queue,
    dependency: &TaskHandle<i64>,
    options: EnqueueOptions,
) -> Result<TaskHandle<i64>> {
    let options = options.result_inputs(InputMode::One, vec![DepTarget::Task(dependency.id())]);
    queue
        .enqueue_payload::<Double, i64>(codec::encode(&DoubleRest {}, "arguments"), options)
        .await
}

/// Enqueues `Collect` to receive the results of `dependencies`, in order.
pub async fn collect_after(
    queue: &Queue,
    dependencies: &[TaskHandle<i64>],
    label: &str,
) -> Result<TaskHandle<(String, Vec<i64>)>> {
    let targets = dependencies
        .iter()
        .map(|handle| DepTarget::Task(handle.id()))
        .collect();
    let options = EnqueueOptions::new().result_inputs(InputMode::Many, targets);
    let rest = CollectRest {
        label: label.to_owned(),
    };
    queue
        .enqueue_payload::<Collect, (String, Vec<i64>)>(codec::encode(&rest, "arguments"), options)
        .await
}

/// Adds `Double` after `node` to a workflow, as `double::after_result(&node).add(&mut flow)` does.
pub fn add_double_after(flow: &mut crate::Workflow, node: &crate::Node<i64>) -> crate::Node<i64> {
    let options =
        EnqueueOptions::new().result_inputs(InputMode::One, vec![crate::Dependency::target(node)]);
    flow.push::<Double, i64>(codec::encode(&DoubleRest {}, "arguments"), options)
}

/// Adds `Collect` after `nodes` to a workflow.
pub fn add_collect_after(
    flow: &mut crate::Workflow,
    nodes: &[crate::Node<i64>],
    label: &str,
) -> crate::Node<(String, Vec<i64>)> {
    let targets = nodes.iter().map(crate::Dependency::target).collect();
    let options = EnqueueOptions::new().result_inputs(InputMode::Many, targets);
    let rest = CollectRest {
        label: label.to_owned(),
    };
    flow.push::<Collect, (String, Vec<i64>)>(codec::encode(&rest, "arguments"), options)
}
