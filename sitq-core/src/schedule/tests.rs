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
