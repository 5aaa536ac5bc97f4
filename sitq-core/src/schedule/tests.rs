//! The tick computation over real daylight-saving transitions (Europe/Berlin:
//! 2026-03-29 02:00 CET → 03:00 CEST at 01:00 UTC; 2026-10-25 03:00 CEST →
//! 02:00 CET at 01:00 UTC) and the catch-up policies.

use chrono::{DateTime, Duration, Utc};

use super::{CATCH_UP_ALL_LIMIT, CatchUp, CronSchedule};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|err| panic!("{s}: {err}"))
        .with_timezone(&Utc)
}

fn berlin(expression: &str) -> CronSchedule {
    CronSchedule::parse(expression, "Europe/Berlin").expect("valid schedule")
}

/// The ticks in (from, to].
fn ticks(schedule: &CronSchedule, from: &str, to: &str) -> Vec<DateTime<Utc>> {
    let (mut at, to) = (utc(from), utc(to));
    let mut ticks = Vec::new();
    while let Some(tick) = schedule.next_after(at).filter(|tick| *tick <= to) {
        ticks.push(tick);
        at = tick;
    }
    ticks
}

#[test]
fn a_daily_time_in_the_spring_gap_is_skipped_that_day() {
    let daily = berlin("0 30 2 * * *");
    assert_eq!(
        ticks(&daily, "2026-03-27T12:00:00Z", "2026-03-31T12:00:00Z"),
        [
            utc("2026-03-28T01:30:00Z"), // 02:30 CET
            // 2026-03-29 02:30 does not exist in Berlin.
            utc("2026-03-30T00:30:00Z"), // 02:30 CEST
            utc("2026-03-31T00:30:00Z"),
        ]
    );
}

#[test]
fn a_daily_time_repeated_in_the_autumn_fires_once_at_its_first_occurrence() {
    let daily = berlin("0 30 2 * * *");
    assert_eq!(
        ticks(&daily, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z"),
        [
            utc("2026-10-25T00:30:00Z"), // 02:30 CEST; not again at 02:30 CET (01:30Z)
            utc("2026-10-26T01:30:00Z"), // 02:30 CET
        ]
    );
}

#[test]
fn an_interval_skips_the_spring_gap_and_fires_the_repeated_hour_once() {
    let quarterly = berlin("0 */15 * * * *");
    assert_eq!(
        ticks(&quarterly, "2026-03-29T00:30:00Z", "2026-03-29T01:15:00Z"),
        [
            utc("2026-03-29T00:45:00Z"), // 01:45 CET
            utc("2026-03-29T01:00:00Z"), // 03:00 CEST: 02:00..02:45 never happened
            utc("2026-03-29T01:15:00Z"),
        ]
    );
    assert_eq!(
        ticks(&quarterly, "2026-10-24T23:30:00Z", "2026-10-25T02:15:00Z"),
        [
            utc("2026-10-24T23:45:00Z"), // 01:45 CEST
            utc("2026-10-25T00:00:00Z"), // 02:00 CEST
            utc("2026-10-25T00:15:00Z"),
            utc("2026-10-25T00:30:00Z"),
            utc("2026-10-25T00:45:00Z"), // 02:45 CEST
            // 02:00..02:45 CET (01:00Z..01:45Z) repeat those wall-clock times.
            utc("2026-10-25T02:00:00Z"), // 03:00 CET
            utc("2026-10-25T02:15:00Z"),
        ]
    );
}

#[test]
fn searching_from_inside_the_repeated_hour() {
    let quarterly = berlin("0 */15 * * * *");
    // 02:40 CET, the second pass: the last tick was 02:45 CEST, earlier in
    // real time though later on the wall clock.
    assert_eq!(
        quarterly.last_at_or_before(utc("2026-10-25T01:40:00Z")),
        Some(utc("2026-10-25T00:45:00Z"))
    );
    assert_eq!(
        quarterly.next_after(utc("2026-10-25T01:40:00Z")),
        Some(utc("2026-10-25T02:00:00Z"))
    );
    // And backwards over the spring gap.
    assert_eq!(
        quarterly.last_at_or_before(utc("2026-03-29T00:59:59Z")),
        Some(utc("2026-03-29T00:45:00Z"))
    );
}

#[test]
fn every_second_through_the_repeated_hour_never_goes_back() {
    let every_second = berlin("* * * * * *");
    let ticks = ticks(
        &every_second,
        "2026-10-25T00:59:58Z",
        "2026-10-25T02:00:01Z",
    );
    assert_eq!(
        ticks,
        [
            utc("2026-10-25T00:59:59Z"),
            utc("2026-10-25T02:00:00Z"),
            utc("2026-10-25T02:00:01Z")
        ],
        "the wall clock's second pass of 02:00..03:00 has no ticks"
    );
}

#[test]
fn utc_and_five_fields() {
    let hourly = CronSchedule::parse("15 * * * *", "UTC").expect("valid");
    assert_eq!(
        hourly.next_after(utc("2026-01-01T00:15:00Z")),
        Some(utc("2026-01-01T01:15:00Z"))
    );
    assert_eq!(
        hourly.last_at_or_before(utc("2026-01-01T01:15:00Z")),
        Some(utc("2026-01-01T01:15:00Z"))
    );
}

#[test]
fn bad_expressions_and_zones_say_why() {
    let err = CronSchedule::parse("0 61 * * * *", "UTC").expect_err("minute 61");
    assert!(
        err.contains("bad cron expression \"0 61 * * * *\""),
        "{err}"
    );
    let err = CronSchedule::parse("every day", "UTC").expect_err("not cron");
    assert!(err.contains("bad cron expression"), "{err}");
    let err = CronSchedule::parse("0 0 0 30 2 *", "UTC").expect_err("30 February");
    assert!(err.contains("never matches"), "{err}");
    let err = CronSchedule::parse("0 0 * * * *", "Europe/Berlln").expect_err("typo");
    assert!(err.contains("unknown time zone \"Europe/Berlln\""), "{err}");
}

#[test]
fn catch_up_policies_round_trip_and_an_unknown_one_is_refused() {
    for policy in [CatchUp::Latest, CatchUp::None, CatchUp::All] {
        assert_eq!(policy.as_str().parse::<CatchUp>().expect("parse"), policy);
    }
    let err = "sometimes".parse::<CatchUp>().expect_err("unknown");
    assert!(
        err.to_string()
            .contains("unknown catch-up policy \"sometimes\""),
        "{err}"
    );
}

fn minutely() -> CronSchedule {
    CronSchedule::parse("0 * * * * *", "UTC").expect("valid")
}

const LAST: &str = "2026-05-01T10:00:00Z";

/// A scheduler that just started at 10:10:30 after a stored last fire at 10:00.
fn after_outage(catch_up: CatchUp) -> Vec<DateTime<Utc>> {
    let now = utc("2026-05-01T10:10:30Z");
    minutely().due(utc(LAST), now, now + Duration::seconds(1), catch_up)
}

#[test]
fn catch_up_latest_fires_the_latest_missed_tick_once() {
    assert_eq!(after_outage(CatchUp::Latest), [utc("2026-05-01T10:10:00Z")]);
}

#[test]
fn catch_up_none_skips_missed_ticks() {
    assert!(after_outage(CatchUp::None).is_empty());
}

#[test]
fn catch_up_all_fires_each_missed_tick_in_order() {
    let all = after_outage(CatchUp::All);
    assert_eq!(all.len(), 10);
    assert_eq!(all[0], utc("2026-05-01T10:01:00Z"));
    assert_eq!(all[9], utc("2026-05-01T10:10:00Z"));
    assert!(all.windows(2).all(|w| w[1] - w[0] == Duration::minutes(1)));
}

#[test]
fn catch_up_all_is_bounded_to_the_most_recent_ticks() {
    let every_second = CronSchedule::parse("* * * * * *", "UTC").expect("valid");
    let now = utc("2026-05-01T11:00:00Z");
    let all = every_second.due(utc(LAST), now, now + Duration::seconds(1), CatchUp::All);
    assert_eq!(all.len(), CATCH_UP_ALL_LIMIT);
    assert_eq!(all.last(), Some(&now));
    assert_eq!(
        all[0],
        now - Duration::seconds(CATCH_UP_ALL_LIMIT as i64 - 1)
    );
}

#[test]
fn late_ticks_of_a_running_scheduler_all_fire_whatever_the_policy() {
    let every_second = CronSchedule::parse("* * * * * *", "UTC").expect("valid");
    let handled = utc("2026-05-01T10:00:00Z");
    let now = utc("2026-05-01T10:00:03.5Z");
    let on_time_from = now - Duration::seconds(60);
    for catch_up in [CatchUp::Latest, CatchUp::None, CatchUp::All] {
        assert_eq!(
            every_second.due(handled, now, on_time_from, catch_up),
            [
                utc("2026-05-01T10:00:01Z"),
                utc("2026-05-01T10:00:02Z"),
                utc("2026-05-01T10:00:03Z")
            ],
            "{catch_up}"
        );
    }
}

#[test]
fn a_running_scheduler_that_slept_applies_the_policy_to_older_ticks() {
    let handled = utc(LAST);
    let now = utc("2026-05-01T10:30:20Z");
    let on_time_from = now - Duration::seconds(60);
    let due = |catch_up| minutely().due(handled, now, on_time_from, catch_up);
    // 10:30 is on time; 10:01..10:29 were missed.
    assert_eq!(due(CatchUp::Latest), [utc("2026-05-01T10:30:00Z")]);
    assert_eq!(due(CatchUp::None), [utc("2026-05-01T10:30:00Z")]);
    assert_eq!(due(CatchUp::All).len(), 30);
    // Nothing on time: Latest catches up the latest missed one.
    let now = utc("2026-05-01T10:30:50Z");
    let late = minutely().due(handled, now, utc("2026-05-01T10:30:10Z"), CatchUp::Latest);
    assert_eq!(late, [utc("2026-05-01T10:30:00Z")]);
}

#[test]
fn nothing_due_before_the_next_tick() {
    let now = utc("2026-05-01T10:00:59Z");
    for catch_up in [CatchUp::Latest, CatchUp::None, CatchUp::All] {
        assert!(
            minutely()
                .due(utc(LAST), now, now + Duration::seconds(1), catch_up)
                .is_empty()
        );
        assert!(
            minutely()
                .due(utc(LAST), now, now - Duration::seconds(60), catch_up)
                .is_empty()
        );
    }
}

/// Failure paths of [`Firing`] against a backend whose schedule calls fail
/// on demand: nothing is skipped, the next look retries.
mod failures {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    use super::utc;
    use crate::backend::{ClaimRef, ClaimRequest, ClaimedTask, Completion};
    use crate::schedule::{Firing, Schedule, ScheduleDefinition, TickFire};
    use crate::{
        Backend, Error, NewTask, Result, ScheduleInfo, Signals, Task, TaskId, TaskRecord,
        TaskStatus,
    };

    #[derive(Serialize, Deserialize)]
    struct Nothing {}

    impl Task for Nothing {
        const NAME: &'static str = "nothing";
        type Output = ();
    }

    /// Schedules in memory; `failing` makes their calls fail.
    #[derive(Debug, Default)]
    struct Flaky {
        signals: Signals,
        failing: AtomicBool,
        defined_at: Mutex<Option<DateTime<Utc>>>,
        ticks: Mutex<Vec<DateTime<Utc>>>,
    }

    impl Flaky {
        fn check(&self) -> Result<()> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(Error::database("test", "the database is down"));
            }
            Ok(())
        }
    }

    fn unused<T>() -> Result<T> {
        Err(Error::Config("not used by these tests".into()))
    }

    #[async_trait]
    impl Backend for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn signals(&self) -> &Signals {
            &self.signals
        }
        fn poll_interval(&self) -> Duration {
            Duration::from_secs(1)
        }
        async fn enqueue(&self, _: Vec<NewTask>) -> Result<Vec<TaskId>> {
            unused()
        }
        async fn claim(&self, _: ClaimRequest<'_>) -> Result<Vec<ClaimedTask>> {
            unused()
        }
        async fn start(&self, _: Vec<ClaimRef>) -> Result<()> {
            unused()
        }
        async fn release(&self, _: Vec<ClaimRef>) -> Result<u64> {
            unused()
        }
        async fn next_run_at(&self, _: &[String]) -> Result<Option<DateTime<Utc>>> {
            unused()
        }
        async fn heartbeat(&self, _: &str, _: &[ClaimRef], _: Duration) -> Result<Vec<ClaimRef>> {
            unused()
        }
        async fn complete(&self, _: Vec<Completion>) -> Result<Vec<bool>> {
            unused()
        }
        async fn recover_expired(&self) -> Result<u64> {
            unused()
        }
        async fn get(&self, _: TaskId) -> Result<Option<TaskRecord>> {
            unused()
        }
        async fn status(&self, _: TaskId) -> Result<Option<TaskStatus>> {
            unused()
        }
        async fn cancel(
            &self,
            _: TaskId,
            _: &crate::CancelRequest,
        ) -> Result<crate::CancelOutcome> {
            unused()
        }
        async fn cancel_requested(&self, _: &[ClaimRef]) -> Result<Vec<ClaimRef>> {
            unused()
        }
        async fn retry(&self, _: TaskId) -> Result<()> {
            unused()
        }
        async fn failures(&self, _: TaskId) -> Result<Vec<crate::AttemptFailure>> {
            unused()
        }
        async fn set_queue_paused(&self, _: &str, _: bool) -> Result<()> {
            unused()
        }
        async fn set_queue_limits(&self, _: &str, _: crate::QueueLimits) -> Result<()> {
            unused()
        }
        async fn queues(&self) -> Result<Vec<crate::QueueInfo>> {
            unused()
        }
        async fn prune(&self, _: DateTime<Utc>) -> Result<u64> {
            unused()
        }
        async fn close(&self) {}

        async fn register_schedules(
            &self,
            schedules: Vec<ScheduleDefinition>,
        ) -> Result<Vec<ScheduleInfo>> {
            self.check()?;
            let mut defined_at = self.defined_at.lock().expect("lock");
            Ok(schedules
                .into_iter()
                .map(|definition| ScheduleInfo {
                    defined_at: *defined_at.get_or_insert(definition.now),
                    last_fire: self.ticks.lock().expect("lock").last().copied(),
                    last_seen: definition.now,
                    next_fire: definition.next_fire,
                    name: definition.name,
                    task: definition.task,
                    queue: definition.queue,
                    expression: definition.expression,
                    zone: definition.zone,
                    catch_up: definition.catch_up,
                })
                .collect())
        }

        async fn fire_tick(&self, fire: TickFire) -> Result<Option<TaskId>> {
            self.check()?;
            let mut ticks = self.ticks.lock().expect("lock");
            if ticks.contains(&fire.tick) {
                return Ok(None);
            }
            ticks.push(fire.tick);
            Ok(Some(TaskId(i64::try_from(ticks.len()).expect("few ticks"))))
        }

        async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
            unused()
        }
    }

    fn firing() -> Firing {
        let schedule = Schedule::new("every-second", Nothing {}, "* * * * * *");
        Firing::new(
            vec![schedule],
            &crate::ConnectOptions::new().max_payload_bytes(usize::MAX),
        )
        .expect("valid")
    }

    #[tokio::test]
    async fn a_failed_registration_fires_nothing_until_one_succeeds() {
        let backend = Flaky::default();
        let mut firing = firing();
        backend.failing.store(true, Ordering::SeqCst);
        let start = utc("2026-05-01T10:00:00.5Z");
        assert!(firing.register(&backend, start).await.is_err());
        assert_eq!(
            firing.next_tick(),
            None,
            "not registered: no tick to wait for"
        );
        let fired = firing
            .fire_due(&backend, utc("2026-05-01T10:00:01.1Z"))
            .await;
        assert!(fired.expect("nothing to fire yet").is_empty());
        backend.failing.store(false, Ordering::SeqCst);
        firing.register(&backend, start).await.expect("register");
        let fired = firing
            .fire_due(&backend, utc("2026-05-01T10:00:01.1Z"))
            .await
            .expect("fire");
        assert_eq!(fired.len(), 1, "the tick since the first registration");
    }

    #[tokio::test]
    async fn a_failed_fire_is_retried_on_the_next_look() {
        let backend = Flaky::default();
        let mut firing = firing();
        firing
            .register(&backend, utc("2026-05-01T10:00:00.5Z"))
            .await
            .expect("register");
        firing
            .fire_due(&backend, utc("2026-05-01T10:00:00.6Z"))
            .await
            .expect("nothing due");
        backend.failing.store(true, Ordering::SeqCst);
        let err = firing
            .fire_due(&backend, utc("2026-05-01T10:00:01.1Z"))
            .await
            .expect_err("the database is down");
        assert!(err.to_string().contains("database error"), "{err}");
        assert_eq!(
            firing.next_tick(),
            Some(utc("2026-05-01T10:00:01Z")),
            "not skipped"
        );
        backend.failing.store(false, Ordering::SeqCst);
        let fired = firing
            .fire_due(&backend, utc("2026-05-01T10:00:02.2Z"))
            .await
            .expect("fire");
        let ticks: Vec<_> = fired.iter().map(|fired| fired.tick).collect();
        assert_eq!(
            ticks,
            [utc("2026-05-01T10:00:01Z"), utc("2026-05-01T10:00:02Z")],
            "the late tick and the current one"
        );
    }
}
