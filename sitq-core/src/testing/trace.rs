//! Conformance case for the producer's trace context: stored with the task
//! on every enqueue path and handed back with the claim.

use super::operations::{LIVE, claim, complete};
use super::tasks::{Add, unique};
use super::{Harness, open};
use crate::{EnqueueOptions, Error, Outcome, Queue, Task, TaskId};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn inject_fixed() -> Option<String> {
    Some("injected-context".to_owned())
}

fn extract_nothing(_: &tracing::Span, _: &str) {}

/// The producer's trace context (set at enqueue, or injected by the
/// queue's propagation) is stored with the task on every enqueue path
/// (plain, unique, with dependencies, in a workflow) and handed back with
/// the claim to a worker on another client; a task without one carries
/// none; a bad one is refused.
pub async fn ops_trace_context_travels_with_the_task(h: &impl Harness) {
    let (queue, url) = open(h).await;
    let traced = Queue::connect_with(
        &url,
        crate::ConnectOptions::new().trace_propagation(crate::TracePropagation {
            inject: inject_fixed,
            extract: extract_nothing,
        }),
    )
    .await
    .expect("a client with trace propagation");
    let explicit = queue
        .enqueue_with(
            Add { a: 1, b: 0 },
            EnqueueOptions::new().trace_context(TRACEPARENT),
        )
        .await
        .expect("enqueue");
    let plain = queue.enqueue(Add { a: 2, b: 0 }).await.expect("enqueue");
    let injected = traced.enqueue(Add { a: 3, b: 0 }).await.expect("enqueue");
    let overridden = traced
        .enqueue_with(
            Add { a: 4, b: 0 },
            EnqueueOptions::new().trace_context("given"),
        )
        .await
        .expect("enqueue");
    let unique_task = traced
        .enqueue_with(
            Add { a: 5, b: 0 },
            EnqueueOptions::new().unique_key(unique("trace")),
        )
        .await
        .expect("enqueue");
    let mut flow = crate::Workflow::new("traced");
    let node = flow.add(Add { a: 6, b: 0 });
    let stored = flow.enqueue(&traced).await.expect("workflow");
    let in_flow = stored.handle(&node).expect("the node's handle").id();
    let dependent = traced
        .enqueue_with(Add { a: 7, b: 0 }, EnqueueOptions::new().after(&explicit))
        .await
        .expect("enqueue");

    let worker = Queue::connect(&url).await.expect("the worker's client");
    let mut seen = std::collections::HashMap::new();
    for task in claim(&worker, "w-trace", Add::NAME, LIVE).await {
        if task.id == explicit.id() {
            complete(
                &worker,
                &task,
                Outcome::Succeeded(crate::codec::encode(&1i64, "r").expect("encode")),
            )
            .await;
        }
        seen.insert(task.id, task.trace);
    }
    assert!(
        !seen.contains_key(&dependent.id()),
        "blocked until its dependency succeeds"
    );
    for task in claim(&worker, "w-trace", Add::NAME, LIVE).await {
        seen.insert(task.id, task.trace);
    }
    let trace_of = |id: TaskId| {
        seen.get(&id)
            .unwrap_or_else(|| panic!("task {id} was claimed"))
            .as_deref()
    };
    assert_eq!(trace_of(explicit.id()), Some(TRACEPARENT));
    assert_eq!(trace_of(plain.id()), None, "no propagation, no context");
    assert_eq!(trace_of(injected.id()), Some("injected-context"));
    assert_eq!(
        trace_of(overridden.id()),
        Some("given"),
        "an explicit context wins"
    );
    assert_eq!(
        trace_of(unique_task.id()),
        Some("injected-context"),
        "unique enqueue"
    );
    assert_eq!(
        trace_of(in_flow),
        Some("injected-context"),
        "workflow enqueue"
    );
    assert_eq!(
        trace_of(dependent.id()),
        Some("injected-context"),
        "enqueue with dependencies"
    );

    for bad in [
        "x".repeat(crate::trace::MAX_TRACE_CONTEXT + 1),
        "line\nbreak".to_owned(),
    ] {
        assert!(
            matches!(
                queue
                    .enqueue_with(Add { a: 0, b: 0 }, EnqueueOptions::new().trace_context(bad))
                    .await,
                Err(Error::InvalidOptions(_))
            ),
            "a bad trace context is refused"
        );
    }
}
