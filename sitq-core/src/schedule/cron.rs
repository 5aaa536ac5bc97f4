//! The tick computation: which instants a cron expression in a time zone
//! names, as a pure function of the expression, the zone and the instants
//! asked about.
//!
//! The expression is matched against the zone's wall clock, by croner on a
//! clock without daylight saving (UTC read as local time); each matching
//! wall-clock time then becomes an instant here, by sitq's rule: a wall-clock
//! time that does not exist (skipped by a spring-forward transition) is not a
//! tick, and one that happens twice (repeated by a fall-back transition) is
//! a tick once, at its first occurrence. The rule holds for every expression
//! alike, fixed-time or interval.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::CatchUp;

/// How far the wall clock can run ahead of an earlier instant's: the longest
/// repeated span a fall-back transition makes (one hour today; two hours in
/// a few zones' history).
const MAX_FOLD: chrono::Duration = chrono::Duration::hours(3);

/// The most missed ticks [`CatchUp::All`] fires after an outage: the most
/// recent ones.
pub const CATCH_UP_ALL_LIMIT: usize = 100;

/// How late a tick may be and still count as on time rather than missed: a
/// worker that was running but slow (a busy database, a stalled runtime)
/// fires every tick of this window; older ones follow the catch-up policy.
pub const ON_TIME_WINDOW: chrono::Duration = chrono::Duration::seconds(60);

/// A parsed cron expression in a time zone.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

/// Parses a cron expression as sitq does: five fields (minute hour
/// day-of-month month day-of-week) or six with seconds first, croner's
/// syntax (`*/5`, ranges, lists, names, `L`, `#`, `W`, `@daily`…); a day of
/// month and a day of week both given match either (as in Vixie cron).
pub fn parse_expression(expression: &str) -> Result<Cron, String> {
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|err| format!("bad cron expression {expression:?}: {err}"))?;
    // Some well-formed expressions never match (`0 0 30 2 *`, 30 February).
    if cron
        .find_next_occurrence(&DateTime::<Utc>::UNIX_EPOCH, false)
        .is_err()
    {
        return Err(format!(
            "cron expression {expression:?} never matches a date"
        ));
    }
    Ok(cron)
}

/// Parses an IANA time zone name (`"Europe/Berlin"`, `"UTC"`).
pub fn parse_zone(zone: &str) -> Result<Tz, String> {
    Tz::from_str(zone).map_err(|_| {
        format!("unknown time zone {zone:?}; use an IANA name such as \"UTC\" or \"Europe/Berlin\"")
    })
}

impl CronSchedule {
    /// Parses `expression` (see [`parse_expression`]) in the zone named
    /// `zone` (see [`parse_zone`]); the error says what is wrong.
    pub fn parse(expression: &str, zone: &str) -> Result<CronSchedule, String> {
        Ok(CronSchedule {
            cron: parse_expression(expression)?,
            zone: parse_zone(zone)?,
        })
    }

    /// The zone.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first tick strictly after `after`; `None` past year 5000.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = self.wall(after);
        loop {
            wall = self
                .cron
                .find_next_occurrence(&Utc.from_utc_datetime(&wall), false)
                .ok()?
                .naive_utc();
            match self.tick(wall) {
                Some(tick) if tick > after => return Some(tick),
                // Skipped by a transition, or the second half of a repeated
                // span whose ticks happened at their first occurrence.
                _ => continue,
            }
        }
    }

    /// The last tick at or before `at`; `None` before year 1.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Just after a fall-back transition the wall clock reads less than
        // it did shortly before: start from the latest wall-clock time any
        // instant up to `at` had.
        let back = self
            .zone
            .offset_from_utc_datetime(&(at - MAX_FOLD).naive_utc());
        let now = self.zone.offset_from_utc_datetime(&at.naive_utc());
        let fold = back.fix().local_minus_utc() - now.fix().local_minus_utc();
        let mut wall = self.wall(at) + chrono::Duration::seconds(i64::from(fold.max(0)));
        let mut inclusive = true;
        loop {
            wall = self
                .cron
                .find_previous_occurrence(&Utc.from_utc_datetime(&wall), inclusive)
                .ok()?
                .naive_utc();
            inclusive = false;
            match self.tick(wall) {
                Some(tick) if tick <= at => return Some(tick),
                _ => continue,
            }
        }
    }

    /// The ticks to fire when a scheduler looks at time `now`, having
    /// handled every tick up to `handled` (exclusive start), in order.
    ///
    /// Ticks at or after `on_time_from` are late, not missed: all of them
    /// fire. Earlier ones were missed and follow `catch_up`: the latest of
    /// them ([`CatchUp::Latest`], and only when no on-time tick fires),
    /// none ([`CatchUp::None`]), or each of the most recent
    /// [`CATCH_UP_ALL_LIMIT`] ([`CatchUp::All`]). A scheduler that has just
    /// started passes an `on_time_from` after `now`: every tick since the
    /// stored last fire was missed while no worker ran.
    pub fn due(
        &self,
        handled: DateTime<Utc>,
        now: DateTime<Utc>,
        on_time_from: DateTime<Utc>,
        catch_up: CatchUp,
    ) -> Vec<DateTime<Utc>> {
        let mut on_time = Vec::new();
        let mut from = handled.max(on_time_from - chrono::Duration::microseconds(1));
        while let Some(tick) = self.next_after(from).filter(|tick| *tick <= now) {
            on_time.push(tick);
            from = tick;
        }
        // The missed span is (handled, min(on_time_from, now + 1µs)).
        let missed_end = on_time_from.min(now + chrono::Duration::microseconds(1));
        let missed_limit = match catch_up {
            CatchUp::None => 0,
            CatchUp::Latest if on_time.is_empty() => 1,
            CatchUp::Latest => 0,
            CatchUp::All => CATCH_UP_ALL_LIMIT,
        };
        let mut missed = Vec::new();
        let mut before = missed_end - chrono::Duration::microseconds(1);
        while missed.len() < missed_limit {
            match self.last_at_or_before(before) {
                Some(tick) if tick > handled => {
                    missed.push(tick);
                    before = tick - chrono::Duration::microseconds(1);
                }
                _ => break,
            }
        }
        missed.reverse();
        missed.extend(on_time);
        missed
    }

    /// `at` on the zone's wall clock.
    fn wall(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.zone).naive_local()
    }

    /// The instant of a matching wall-clock time: none in a gap, the first
    /// of two in a repeated span.
    fn tick(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
            LocalResult::Ambiguous(earlier, later) => Some(earlier.min(later).with_timezone(&Utc)),
            LocalResult::None => None,
        }
    }
}
