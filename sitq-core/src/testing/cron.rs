//! Conformance cases for cron schedules: registration and listing, a tick
//! fired once however many callers race for it, and the catch-up policies,
//! driven through [`Firing`] on chosen instants (schedules run on the
//! workers' clocks, so a test can pick them).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::cases::wait;
use super::tasks::Add;
use super::{Harness, open, worker_config};
use crate::schedule::{
    CatchUp, Firing, Schedule, ScheduleDefinition, ScheduleInfo, TICK_RETENTION, TickFire,
};
use crate::{Backend, NewTask, Queue, Task, TaskStatus, codec};

/// A fixed instant for schedules' clocks.
fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|err| panic!("{s}: {err}"))
        .with_timezone(&Utc)
}

const BASE: &str = "2026-05-01T10:00:00Z";

fn definition(name: &str, expression: &str, now: DateTime<Utc>) -> ScheduleDefinition {
    ScheduleDefinition {
        name: name.to_owned(),
        task: Add::NAME.to_owned(),
        queue: "default".to_owned(),
        expression: expression.to_owned(),
        zone: "UTC".to_owned(),
        catch_up: CatchUp::Latest,
        next_fire: Some(now + Duration::minutes(1)),
        now,
    }
}

fn fire(schedule: &str, tick: DateTime<Utc>) -> TickFire {
    let payload = codec::encode(&Add { a: 20, b: 22 }, "arguments").expect("encode");
    TickFire {
        schedule: schedule.to_owned(),
        tick,
        task: NewTask {
            name: Add::NAME.to_owned(),
            queue: "default".to_owned(),
            payload,
            priority: 0,
            run_at: tick,
            max_attempts: 3,
            unique: None,
            sequence: None,
            deps: Default::default(),
            trace: None,
        },
        next_fire: Some(tick + Duration::minutes(1)),
        now: tick,
    }
}

async fn stored(queue: &Queue, name: &str) -> ScheduleInfo {
    queue
        .schedules()
        .await
        .expect("list schedules")
        .into_iter()
        .find(|info| info.name == name)
        .unwrap_or_else(|| panic!("schedule {name} is stored"))
}

/// Every worker that runs a schedule registers it; `queue.schedules()` lists
/// them by name with what they enqueue, their definition and their clocks.
pub async fn cron_registration_is_listed(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let now = at(BASE);
    let mut nightly = definition("nightly", "0 0 2 * * *", now);
    nightly.zone = "Europe/Berlin".to_owned();
    nightly.catch_up = CatchUp::All;
    nightly.queue = "reports".to_owned();
    let stored_rows = queue
        .backend()
        .register_schedules(vec![
            definition("every-minute", "0 * * * * *", now),
            nightly,
        ])
        .await
        .expect("register");
    assert_eq!(stored_rows.len(), 2);
    let listed = queue.schedules().await.expect("list");
    let names: Vec<&str> = listed.iter().map(|info| info.name.as_str()).collect();
    assert_eq!(names, ["every-minute", "nightly"]);
    let nightly = &listed[1];
    assert_eq!(nightly.task, Add::NAME);
    assert_eq!(nightly.queue, "reports");
    assert_eq!(nightly.expression, "0 0 2 * * *");
    assert_eq!(nightly.zone, "Europe/Berlin");
    assert_eq!(nightly.catch_up, CatchUp::All);
    assert_eq!(nightly.defined_at, now);
    assert_eq!(nightly.last_seen, now);
    assert_eq!(nightly.last_fire, None);
    assert_eq!(nightly.next_fire, Some(now + Duration::minutes(1)));
    assert!(
        stored_rows.contains(nightly),
        "register returns the stored rows"
    );
}

/// A second registration of a name with another expression updates it: a
/// new definition (its `defined_at` moves), the last fire kept. Registering
/// it unchanged only refreshes `last_seen`.
pub async fn cron_reregistration_updates_the_definition(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let first = at(BASE);
    backend
        .register_schedules(vec![definition("report", "0 * * * * *", first)])
        .await
        .expect("register");
    let tick = first + Duration::minutes(1);
    assert!(
        backend
            .fire_tick(fire("report", tick))
            .await
            .expect("fire")
            .is_some()
    );

    let later = first + Duration::minutes(5);
    backend
        .register_schedules(vec![definition("report", "0 * * * * *", later)])
        .await
        .expect("refresh");
    let same = stored(&queue, "report").await;
    assert_eq!((same.defined_at, same.last_seen), (first, later));

    let changed_at = first + Duration::minutes(10);
    let mut changed = definition("report", "0 */5 * * * *", changed_at);
    changed.zone = "Europe/Berlin".to_owned();
    changed.catch_up = CatchUp::None;
    backend
        .register_schedules(vec![changed])
        .await
        .expect("update");
    let updated = stored(&queue, "report").await;
    assert_eq!(updated.expression, "0 */5 * * * *");
    assert_eq!(updated.zone, "Europe/Berlin");
    assert_eq!(updated.catch_up, CatchUp::None);
    assert_eq!(updated.defined_at, changed_at, "a new definition");
    assert_eq!(updated.last_fire, Some(tick), "the last fire is kept");
    assert_eq!(queue.schedules().await.expect("list").len(), 1);
}

/// A tick fires once: the first call enqueues the task (run at the tick)
/// and records it; the same tick again, from any client, changes nothing.
pub async fn cron_fire_tick_fires_once(h: &impl Harness) {
    let (queue, url) = open(h).await;
    let other = Queue::connect(&url).await.expect("second client");
    let now = at(BASE);
    queue
        .backend()
        .register_schedules(vec![definition("once", "0 * * * * *", now)])
        .await
        .expect("register");
    let tick = now + Duration::minutes(1);
    let id = queue
        .backend()
        .fire_tick(fire("once", tick))
        .await
        .expect("fire")
        .expect("the first fire enqueues");
    assert_eq!(
        queue
            .backend()
            .fire_tick(fire("once", tick))
            .await
            .expect("again"),
        None
    );
    assert_eq!(
        other
            .backend()
            .fire_tick(fire("once", tick))
            .await
            .expect("other"),
        None
    );
    let record = queue.get(id).await.expect("the fired task");
    assert_eq!(record.name, Add::NAME);
    assert_eq!(record.run_at, tick);
    assert_eq!(record.status, TaskStatus::Pending);
    let info = stored(&queue, "once").await;
    assert_eq!(info.last_fire, Some(tick));
    assert_eq!(info.next_fire, Some(tick + Duration::minutes(1)));
    assert_eq!(info.last_seen, tick);

    // An older tick fired late does not move the last fire back.
    let older = tick - Duration::minutes(1);
    assert!(
        queue
            .backend()
            .fire_tick(fire("once", older))
            .await
            .expect("older")
            .is_some()
    );
    let info = stored(&queue, "once").await;
    assert_eq!(info.last_fire, Some(tick));
    assert_eq!(info.next_fire, Some(tick + Duration::minutes(1)));
}

/// Eight callers on two clients race for each of three ticks: exactly one
/// fires each.
pub async fn cron_racing_fires_enqueue_one_task_per_tick(h: &impl Harness) {
    let (queue, url) = open(h).await;
    let other = Queue::connect(&url).await.expect("second client");
    let now = at(BASE);
    queue
        .backend()
        .register_schedules(vec![definition("race", "0 * * * * *", now)])
        .await
        .expect("register");
    for minute in 1..=3 {
        let tick = now + Duration::minutes(minute);
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let backend: Arc<dyn Backend> = if i % 2 == 0 {
                    queue.backend().clone()
                } else {
                    other.backend().clone()
                };
                tokio::spawn(async move { backend.fire_tick(fire("race", tick)).await })
            })
            .collect();
        let mut fired = Vec::new();
        for racer in racers {
            if let Some(id) = racer.await.expect("racer").expect("fire") {
                fired.push(id);
            }
        }
        assert_eq!(fired.len(), 1, "tick {tick}: {fired:?}");
        assert_eq!(queue.get(fired[0]).await.expect("task").run_at, tick);
    }
    assert_eq!(
        stored(&queue, "race").await.last_fire,
        Some(now + Duration::minutes(3))
    );
}

/// Ticks are kept [`TICK_RETENTION`] for deduplication; one older than that
/// before the newest fired tick is never fired again.
pub async fn cron_ticks_past_the_retention_never_fire_again(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let now = at(BASE);
    backend
        .register_schedules(vec![definition("old", "0 * * * * *", now)])
        .await
        .expect("register");
    let tick = now + Duration::minutes(1);
    assert!(
        backend
            .fire_tick(fire("old", tick))
            .await
            .expect("fire")
            .is_some()
    );
    let much_later = tick + TICK_RETENTION + Duration::minutes(1);
    assert!(
        backend
            .fire_tick(fire("old", much_later))
            .await
            .expect("later")
            .is_some()
    );
    assert_eq!(
        backend
            .fire_tick(fire("old", tick))
            .await
            .expect("pruned tick"),
        None
    );
    assert_eq!(stored(&queue, "old").await.last_fire, Some(much_later));
}

/// A fired task is an ordinary task: it wakes a running worker and runs.
pub async fn cron_fired_task_runs(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let now = chrono::Utc::now();
    queue
        .backend()
        .register_schedules(vec![definition("runs", "* * * * * *", now)])
        .await
        .expect("register");
    let id = queue
        .backend()
        .fire_tick(fire("runs", now))
        .await
        .expect("fire")
        .expect("fired");
    let handle = queue.handle::<i64>(id);
    assert_eq!(wait(&handle).await.expect("the fired task succeeds"), 42);
    worker.shutdown().await;
}

/// The ticks `firing` fires at `now`, as (tick, task run_at) pairs checked equal.
async fn fire_at(firing: &mut Firing, queue: &Queue, now: &str) -> Vec<DateTime<Utc>> {
    let fired = firing
        .fire_due(queue.backend().as_ref(), at(now))
        .await
        .expect("fire_due");
    let mut ticks = Vec::new();
    for fired in fired {
        let record = queue.get(fired.task).await.expect("fired task");
        assert_eq!(record.run_at, fired.tick, "a fired task runs at its tick");
        ticks.push(fired.tick);
    }
    ticks
}

/// A worker's schedules, registered at `now`.
async fn started(queue: &Queue, catch_up: CatchUp, now: &str) -> Firing {
    let schedule = Schedule::new("minutely", Add { a: 1, b: 1 }, "0 * * * * *").catch_up(catch_up);
    let mut firing = Firing::new(
        vec![schedule],
        &crate::ConnectOptions::new().max_payload_bytes(usize::MAX),
    )
    .expect("valid schedule");
    firing
        .register(queue.backend().as_ref(), at(now))
        .await
        .expect("register");
    firing
}

/// A worker that ran at 10:00:30, fired 10:01, and stopped; the next one
/// starts at 10:10:30 with `catch_up`: the ticks it fires on starting.
async fn restart_after_outage(h: &impl Harness, catch_up: CatchUp) -> (Queue, Vec<DateTime<Utc>>) {
    let (queue, _) = open(h).await;
    let mut first = started(&queue, catch_up, "2026-05-01T10:00:30Z").await;
    assert!(
        fire_at(&mut first, &queue, "2026-05-01T10:00:31Z")
            .await
            .is_empty()
    );
    assert_eq!(
        fire_at(&mut first, &queue, "2026-05-01T10:01:00.2Z").await,
        [at("2026-05-01T10:01:00Z")]
    );
    drop(first);
    let mut second = started(&queue, catch_up, "2026-05-01T10:10:30Z").await;
    let fired = fire_at(&mut second, &queue, "2026-05-01T10:10:30Z").await;
    // Then it keeps time.
    assert_eq!(
        fire_at(&mut second, &queue, "2026-05-01T10:11:00.1Z").await,
        [at("2026-05-01T10:11:00Z")]
    );
    (queue, fired)
}

/// Default policy: after an outage, one catch-up run for the latest missed tick.
pub async fn cron_catch_up_latest_fires_the_latest_missed_tick(h: &impl Harness) {
    let (queue, fired) = restart_after_outage(h, CatchUp::Latest).await;
    assert_eq!(fired, [at("2026-05-01T10:10:00Z")]);
    assert_eq!(
        stored(&queue, "minutely").await.last_fire,
        Some(at("2026-05-01T10:11:00Z"))
    );
}

/// `CatchUp::None`: missed ticks are skipped.
pub async fn cron_catch_up_none_skips_missed_ticks(h: &impl Harness) {
    let (_, fired) = restart_after_outage(h, CatchUp::None).await;
    assert!(fired.is_empty(), "{fired:?}");
}

/// `CatchUp::All`: each missed tick, oldest first.
pub async fn cron_catch_up_all_fires_each_missed_tick(h: &impl Harness) {
    let (_, fired) = restart_after_outage(h, CatchUp::All).await;
    let expected: Vec<_> = (2..=10)
        .map(|minute| at(BASE) + Duration::minutes(minute))
        .collect();
    assert_eq!(fired, expected);
}

/// A new schedule does not catch up ticks from before it was first
/// registered; a worker joining a running one fires nothing twice.
pub async fn cron_workers_share_ticks(h: &impl Harness) {
    let (queue, url) = open(h).await;
    let other = Queue::connect(&url).await.expect("second client");
    let mut a = started(&queue, CatchUp::All, "2026-05-01T10:00:30Z").await;
    assert!(
        fire_at(&mut a, &queue, "2026-05-01T10:00:30Z")
            .await
            .is_empty(),
        "nothing before it existed"
    );
    let mut b = started(&other, CatchUp::All, "2026-05-01T10:00:40Z").await;
    let mut fired = Vec::new();
    for second in ["10:01:00.1", "10:02:00.3", "10:03:00.2"] {
        let now = format!("2026-05-01T{second}Z");
        let (from_a, from_b) =
            tokio::join!(fire_at(&mut a, &queue, &now), fire_at(&mut b, &other, &now));
        assert_eq!(
            from_a.len() + from_b.len(),
            1,
            "{now}: {from_a:?} {from_b:?}"
        );
        fired.extend(from_a);
        fired.extend(from_b);
    }
    assert_eq!(
        fired,
        [
            at("2026-05-01T10:01:00Z"),
            at("2026-05-01T10:02:00Z"),
            at("2026-05-01T10:03:00Z")
        ]
    );
}
