//! Conformance cases for queue control: pause and resume, global
//! concurrency and rate limits, and their bad inputs. Most call the claim
//! directly, so what it may take is checked exactly; the rest run workers
//! and check what the task bodies saw.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::cases::wait;
use super::tasks::{
    Add, Gate, REGISTRATIONS, Record, count, lock, open_gate, registration, start, unique,
};
use super::{Harness, WorkerConfig, eventually, open, worker_config};
use crate::task::{Task, TaskDefaults};
use crate::{
    ClaimRequest, ClaimedTask, Completion, EnqueueOptions, Error, Outcome, Queue, QueueLimits,
    Registry, TaskId, TaskRegistration, TaskStatus,
};

/// Sleeps `ms`, recording when its body started and ended in the log `log`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Span {
    /// Which log.
    pub log: String,
    /// How long to run.
    pub ms: u64,
}

impl Task for Span {
    const NAME: &'static str = "sitq::testing::span";
    const DEFAULTS: TaskDefaults = TaskDefaults::DEFAULT;
    type Output = ();
}

/// When one span ran: its start and end.
pub type Interval = (std::time::Instant, std::time::Instant);

static SPANS: LazyLock<Mutex<HashMap<String, Vec<Interval>>>> = LazyLock::new(Default::default);

static QUEUE_TASKS: LazyLock<Vec<TaskRegistration>> = LazyLock::new(|| {
    vec![registration::<Span>(|p, _, _| {
        start(p, |t: Span| async move {
            let started = std::time::Instant::now();
            tokio::time::sleep(Duration::from_millis(t.ms)).await;
            let ended = std::time::Instant::now();
            lock(&SPANS)
                .entry(t.log)
                .or_default()
                .push((started, ended));
            Ok(())
        })
    })]
});

/// The conformance tasks and [`Span`].
pub fn queue_registry() -> Registry {
    Registry::from_registrations(REGISTRATIONS.iter().chain(QUEUE_TASKS.iter()))
        .expect("conformance task names are unique")
}

/// The (start, end) instants [`Span`] tasks of `log` recorded.
pub fn spans(log: &str) -> Vec<Interval> {
    lock(&SPANS).get(log).cloned().unwrap_or_default()
}

/// The most spans that overlapped at one instant.
pub fn max_overlap(spans: &[Interval]) -> usize {
    let mut edges: Vec<(std::time::Instant, i32)> = spans
        .iter()
        .flat_map(|(start, end)| [(*start, 1), (*end, -1)])
        .collect();
    // At equal instants an end comes first: touching spans do not overlap.
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut running = 0i32;
    let mut most = 0i32;
    for (_, step) in edges {
        running += step;
        most = most.max(running);
    }
    usize::try_from(most).unwrap_or(0)
}

/// The most of `instants` inside one half-open window `[t, t + period)`.
pub fn max_in_window(instants: &[chrono::DateTime<Utc>], period: Duration) -> usize {
    let mut sorted = instants.to_vec();
    sorted.sort();
    let period = chrono::Duration::from_std(period).expect("a short period");
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|at| **at < sorted[i] + period)
                .count()
        })
        .max()
        .unwrap_or(0)
}

static ADD_NAMES: LazyLock<Vec<String>> = LazyLock::new(|| vec![Add::NAME.to_owned()]);

/// Claims up to `limit` `Add` tasks from `queues` (every queue when empty),
/// the first `start` started.
async fn claim(queue: &Queue, queues: &[&str], limit: usize, start: usize) -> Vec<ClaimedTask> {
    let queues: Vec<String> = queues.iter().map(|q| (*q).to_owned()).collect();
    queue
        .backend()
        .claim(ClaimRequest {
            worker_id: "conformance",
            queues: &queues,
            names: &ADD_NAMES,
            limit,
            start,
            lease: Duration::from_secs(60),
        })
        .await
        .expect("claim")
}

/// Enqueues an `Add` on `name`.
async fn add_on(queue: &Queue, name: &str) -> TaskId {
    queue
        .enqueue_with(Add { a: 1, b: 1 }, EnqueueOptions::new().queue(name))
        .await
        .expect("enqueue")
        .id()
}

/// Records a success for `claimed`.
async fn succeed(queue: &Queue, claimed: &ClaimedTask) {
    let applied = queue
        .backend()
        .complete(vec![Completion {
            claim: claimed.claim_ref(),
            outcome: Outcome::Succeeded(vec![0x02]),
        }])
        .await
        .expect("complete");
    assert_eq!(applied, [true]);
}

fn ids(claimed: &[ClaimedTask]) -> Vec<TaskId> {
    let mut ids: Vec<TaskId> = claimed.iter().map(|task| task.id).collect();
    ids.sort();
    ids
}

async fn info(queue: &Queue, name: &str) -> Option<crate::QueueInfo> {
    let queues = queue.queues().await.expect("queues");
    queues.into_iter().find(|info| info.name == name)
}

/// A paused queue is claimed by no claim, neither one naming it nor one
/// taking every queue, and is not reported as due; resuming it makes its
/// tasks claimable again. `queues()` reports the setting and the counts.
pub async fn paused_queue_is_not_claimed(h: &impl Harness) {
    let (queue, _) = open(h).await;
    queue.pause("mail").await.expect("pause");
    let mail = [add_on(&queue, "mail").await, add_on(&queue, "mail").await];
    let default = add_on(&queue, "default").await;

    assert_eq!(ids(&claim(&queue, &[], 10, 10).await), [default]);
    assert!(claim(&queue, &["mail"], 10, 10).await.is_empty());
    let backend = queue.backend();
    assert_eq!(backend.next_run_at(&[]).await.expect("next"), None);
    assert_eq!(
        backend.next_run_at(&["mail".into()]).await.expect("next"),
        None
    );
    let paused = info(&queue, "mail").await.expect("mail is listed");
    assert!(paused.paused);
    assert_eq!((paused.pending, paused.running), (2, 0));
    let other = info(&queue, "default").await.expect("default is listed");
    assert!(!other.paused);
    assert_eq!((other.pending, other.running), (0, 1));

    queue.pause("mail").await.expect("pausing twice is fine");
    queue.resume("mail").await.expect("resume");
    assert!(
        backend
            .next_run_at(&["mail".into()])
            .await
            .expect("next")
            .is_some()
    );
    assert_eq!(ids(&claim(&queue, &["mail"], 10, 10).await), mail);
    let resumed = info(&queue, "mail").await.expect("mail is listed");
    assert!(!resumed.paused);
    assert_eq!((resumed.pending, resumed.running), (0, 2));
    queue
        .resume("never-paused")
        .await
        .expect("resuming a queue that is not paused is a no-op");
}

/// Pausing lets a running task finish and stops the queue's other tasks
/// from starting; a worker taking every queue goes on with the others, and
/// resuming starts the held tasks.
pub async fn pause_lets_running_tasks_finish(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let key = unique("pause");
    let gate = queue
        .enqueue_with(
            Gate { key: key.clone() },
            EnqueueOptions::new().queue("mail"),
        )
        .await
        .expect("enqueue");
    let worker = h.start_worker(&queue, worker_config());
    eventually("the gate task to start", || async {
        (count(&format!("gate-started/{key}")) == 1).then_some(())
    })
    .await;
    queue.pause("mail").await.expect("pause");
    let log = unique("paused");
    let held = queue
        .enqueue_with(
            Record {
                log: log.clone(),
                tag: "held".into(),
            },
            EnqueueOptions::new().queue("mail"),
        )
        .await
        .expect("enqueue");
    open_gate(&key);
    wait(&gate)
        .await
        .expect("the running task finishes while paused");
    // A task of another queue, enqueued after the held one, runs: the
    // worker claims, and skips the paused queue.
    let probe = queue
        .enqueue(Record {
            log: log.clone(),
            tag: "probe".into(),
        })
        .await
        .expect("enqueue");
    wait(&probe).await.expect("probe");
    assert_eq!(
        queue.status(held.id()).await.expect("status"),
        TaskStatus::Pending
    );
    queue.resume("mail").await.expect("resume");
    wait(&held).await.expect("the held task runs once resumed");
    assert_eq!(super::tasks::log(&log), ["probe", "held"]);
    worker.shutdown().await;
}

/// A concurrency limit caps how many of the queue's tasks are running at
/// once, reserved claims included; a finished or released claim frees a
/// slot, and a full queue is not reported as due.
pub async fn concurrency_limit_caps_claims(h: &impl Harness) {
    let (queue, _) = open(h).await;
    queue
        .set_queue_limits("mail", QueueLimits::new().concurrency(2))
        .await
        .expect("limits");
    for _ in 0..5 {
        add_on(&queue, "mail").await;
    }
    add_on(&queue, "default").await;
    add_on(&queue, "default").await;
    // Nothing started: reserved claims hold their slots too.
    let first = claim(&queue, &[], 10, 0).await;
    let mail: Vec<&ClaimedTask> = first.iter().filter(|t| t.queue == "mail").collect();
    assert_eq!(mail.len(), 2, "{first:?}");
    assert_eq!(first.len(), 4, "the unlimited queue is not held back");
    assert!(claim(&queue, &["mail"], 10, 10).await.is_empty());
    let backend = queue.backend();
    assert_eq!(
        backend.next_run_at(&["mail".into()]).await.expect("next"),
        None,
        "a full queue waits for a completion, not a time"
    );
    let limits = info(&queue, "mail").await.expect("listed").limits;
    assert_eq!(limits.get_concurrency(), Some(2));
    assert_eq!(info(&queue, "mail").await.map(|i| i.running), Some(2));

    assert_eq!(
        backend
            .release(vec![mail[0].claim_ref()])
            .await
            .expect("release"),
        1
    );
    let again = claim(&queue, &["mail"], 10, 10).await;
    assert_eq!(again.len(), 1);
    assert!(claim(&queue, &["mail"], 10, 10).await.is_empty());
    succeed(&queue, &again[0]).await;
    assert_eq!(claim(&queue, &["mail"], 10, 10).await.len(), 1);
}

/// Several workers on several clients never run more of a limited queue's
/// tasks at once than its limit.
pub async fn concurrency_limit_holds_across_workers(h: &impl Harness) {
    let (queue, url) = open(h).await;
    queue
        .set_queue_limits("mail", QueueLimits::new().concurrency(3))
        .await
        .expect("limits");
    let log = unique("overlap");
    let handles = queue
        .enqueue_many_with(
            (0..12).map(|_| Span {
                log: log.clone(),
                ms: 30,
            }),
            EnqueueOptions::new().queue("mail"),
        )
        .await
        .expect("enqueue");
    let other = Queue::connect(&url).await.expect("a second client");
    let config = || WorkerConfig {
        concurrency: 8,
        registry: queue_registry(),
        ..worker_config()
    };
    let workers = [
        h.start_worker(&queue, config()),
        h.start_worker(&other, config()),
    ];
    for handle in &handles {
        wait(handle).await.expect("span");
    }
    let spans = spans(&log);
    assert_eq!(spans.len(), 12);
    let overlap = max_overlap(&spans);
    assert!(
        (1..=3).contains(&overlap),
        "at most 3 at once, saw {overlap}"
    );
    for worker in workers {
        worker.shutdown().await;
    }
}

/// A rate limit caps the claims in any window of its period; claims of a
/// rate-limited queue are never reserved, and an exhausted queue is due
/// again when its oldest claim leaves the window.
pub async fn rate_limit_caps_claims(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let hour = Duration::from_secs(3600);
    queue
        .set_queue_limits("mail", QueueLimits::new().rate(3, hour))
        .await
        .expect("limits");
    for _ in 0..5 {
        add_on(&queue, "mail").await;
    }
    let default = add_on(&queue, "default").await;
    // No slot free: nothing of the rate-limited queue, the rest reserved.
    assert_eq!(ids(&claim(&queue, &[], 10, 0).await), [default]);
    let first = claim(&queue, &[], 10, 2).await;
    assert_eq!(first.len(), 2, "only as many as start now: {first:?}");
    let before = Utc::now();
    assert_eq!(claim(&queue, &["mail"], 10, 10).await.len(), 1);
    assert!(claim(&queue, &["mail"], 10, 10).await.is_empty());
    let next = queue
        .backend()
        .next_run_at(&["mail".into()])
        .await
        .expect("next")
        .expect("pending tasks are due at some point");
    let hour = chrono::Duration::from_std(hour).expect("an hour");
    assert!(
        next > before + hour - chrono::Duration::seconds(60),
        "due when the oldest claim leaves the window, got {next}"
    );
    let limits = info(&queue, "mail").await.expect("listed").limits;
    assert_eq!(
        limits.get_rate().map(|rate| (rate.count, rate.period)),
        Some((3, Duration::from_secs(3600)))
    );
}

/// Workers on several clients never start more of a rate-limited queue's
/// tasks than the limit in any window of its period (by the claim instants
/// the database recorded).
pub async fn rate_limit_holds_in_every_window(h: &impl Harness) {
    let (queue, url) = open(h).await;
    let period = Duration::from_millis(300);
    queue
        .set_queue_limits("mail", QueueLimits::new().rate(2, period))
        .await
        .expect("limits");
    let handles = queue
        .enqueue_many_with(
            (0..8).map(|i| Add { a: i, b: 0 }),
            EnqueueOptions::new().queue("mail"),
        )
        .await
        .expect("enqueue");
    let other = Queue::connect(&url).await.expect("a second client");
    let workers = [
        h.start_worker(&queue, worker_config()),
        h.start_worker(&other, worker_config()),
    ];
    let mut started = Vec::new();
    for handle in &handles {
        wait(handle).await.expect("add");
        let record = queue.get(handle.id()).await.expect("record");
        started.push(record.started_at.expect("started"));
    }
    let most = max_in_window(&started, period);
    assert!(most <= 2, "{most} starts within {period:?}: {started:?}");
    for worker in workers {
        worker.shutdown().await;
    }
}

/// Clearing limits lets the queue's tasks be claimed freely again.
pub async fn cleared_limits_claim_freely(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let limits = QueueLimits::new()
        .concurrency(1)
        .rate(1, Duration::from_secs(3600));
    queue
        .set_queue_limits("mail", limits)
        .await
        .expect("limits");
    for _ in 0..4 {
        add_on(&queue, "mail").await;
    }
    assert_eq!(claim(&queue, &[], 10, 10).await.len(), 1);
    assert!(claim(&queue, &[], 10, 10).await.is_empty());
    queue
        .set_queue_limits("mail", QueueLimits::new().concurrency(2))
        .await
        .expect("only a concurrency limit");
    assert_eq!(claim(&queue, &[], 10, 10).await.len(), 1);
    queue
        .set_queue_limits("mail", QueueLimits::new())
        .await
        .expect("clear");
    assert_eq!(claim(&queue, &[], 10, 10).await.len(), 2);
    let mail = info(&queue, "mail").await.expect("listed: it has tasks");
    assert!(mail.limits.is_empty() && !mail.paused, "{mail:?}");
    assert_eq!(mail.running, 4);
}

/// Bad queue settings are refused with a clear error and change nothing.
pub async fn bad_queue_settings_are_refused(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let refused = |result: crate::Result<()>, what: &str| match result {
        Err(Error::InvalidQueueSettings(message)) => {
            assert!(
                message.contains(what),
                "{message:?} should mention {what:?}"
            );
        }
        other => panic!("expected InvalidQueueSettings about {what}, got {other:?}"),
    };
    refused(queue.pause("").await, "queue name");
    refused(queue.resume("").await, "queue name");
    refused(
        queue
            .set_queue_limits("", QueueLimits::new().concurrency(1))
            .await,
        "queue name",
    );
    refused(
        queue
            .set_queue_limits("mail", QueueLimits::new().concurrency(0))
            .await,
        "concurrency",
    );
    refused(
        queue
            .set_queue_limits("mail", QueueLimits::new().rate(0, Duration::from_secs(1)))
            .await,
        "rate",
    );
    refused(
        queue
            .set_queue_limits("mail", QueueLimits::new().rate(1, Duration::ZERO))
            .await,
        "period",
    );
    refused(
        queue
            .set_queue_limits(
                "mail",
                QueueLimits::new().rate(1, Duration::from_micros(10)),
            )
            .await,
        "period",
    );
    // Straight to the backend too: it checks for itself.
    refused(
        queue
            .backend()
            .set_queue_limits("mail", QueueLimits::new().concurrency(0))
            .await,
        "concurrency",
    );
    refused(
        queue.backend().set_queue_paused("", true).await,
        "queue name",
    );
    assert_eq!(queue.queues().await.expect("queues"), []);
    let id = add_on(&queue, "mail").await;
    assert_eq!(ids(&claim(&queue, &[], 10, 10).await), [id]);
}
