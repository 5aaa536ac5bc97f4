//! Cron schedules that fire once across every worker.
//!
//! A schedule names a task to enqueue at each tick of a cron expression in
//! a time zone. Every worker that runs a schedule tries to fire each tick;
//! the database lets exactly one of them do it (a unique key on the
//! schedule's name and the tick's instant, stored in the same transaction
//! as the task it enqueues), so no leader is elected and a worker that dies
//! mid-tick neither loses the tick (the others fire it) nor doubles it.
//!
//! - [`cron`]: the pure tick computation (daylight saving, catch-up).
//! - [`Schedule`]: a schedule as a program declares it.
//! - [`Firing`]: what a worker does with its schedules, over any backend.

pub mod cron;
mod firing;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::backend::NewTask;
use crate::task::{Task, TaskDefaults};
use crate::{Error, Result, codec};

pub use cron::{CATCH_UP_ALL_LIMIT, CronSchedule, ON_TIME_WINDOW};
pub use firing::{Fired, Firing};

/// What a schedule does about ticks that no worker fired on time (every
/// worker was down, or the machine slept).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum CatchUp {
    /// One catch-up run, for the latest missed tick (the default).
    #[default]
    Latest,
    /// Skip missed ticks: the next run is the next tick.
    None,
    /// Fire each missed tick, at most [`CATCH_UP_ALL_LIMIT`] of them (the
    /// most recent), oldest first.
    All,
}

impl CatchUp {
    /// The stored form: `"latest"`, `"none"`, `"all"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Latest => "latest",
            CatchUp::None => "none",
            CatchUp::All => "all",
        }
    }
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CatchUp {
    type Err = Error;

    fn from_str(s: &str) -> Result<CatchUp> {
        match s {
            "latest" => Ok(CatchUp::Latest),
            "none" => Ok(CatchUp::None),
            "all" => Ok(CatchUp::All),
            other => Err(Error::Config(format!(
                "unknown catch-up policy {other:?}; use \"latest\", \"none\" or \"all\""
            ))),
        }
    }
}

/// A schedule: enqueue `task` at every tick of a cron expression.
///
/// Pass it to the worker (`Worker::schedule_with`); `#[sitq::task(cron =
/// "...")]` declares one for a task without arguments. The expression and
/// zone are checked when the worker starts, which fails with
/// [`Error::InvalidSchedule`] naming the schedule.
///
/// ```
/// # use sitq_core::schedule::{CatchUp, Schedule};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Report { day: u32 }
/// # impl sitq_core::Task for Report { const NAME: &'static str = "report"; type Output = (); }
/// let nightly = Schedule::new("nightly-report", Report { day: 1 }, "0 0 2 * * *")
///     .tz("Europe/Berlin")
///     .catch_up(CatchUp::None);
/// ```
#[derive(Debug)]
pub struct Schedule {
    name: String,
    task: String,
    defaults: TaskDefaults,
    payload: Result<Vec<u8>>,
    expression: String,
    zone: String,
    catch_up: CatchUp,
}

impl Schedule {
    /// Enqueues `task` (with its defaults: queue, priority, attempts) at
    /// every tick of `expression`, in UTC until [`tz`](Schedule::tz) says
    /// otherwise. `name` identifies the schedule across workers and
    /// restarts: workers that run the same name fire each tick once
    /// between them.
    ///
    /// `expression` has five fields (minute hour day-of-month month
    /// day-of-week) or six, seconds first: `"0 */5 * * * *"` is every five
    /// minutes on the minute.
    pub fn new<T: Task>(name: impl Into<String>, task: T, expression: impl Into<String>) -> Self {
        let name = name.into();
        let payload = codec::encode(&task, &format!("arguments of schedule {name:?}"));
        Schedule {
            name,
            task: T::NAME.to_owned(),
            defaults: T::DEFAULTS,
            payload,
            expression: expression.into(),
            zone: "UTC".to_owned(),
            catch_up: CatchUp::default(),
        }
    }

    /// The schedule a `#[sitq::task(cron = "...")]` declared.
    pub fn from_registration(registration: &ScheduleRegistration) -> Self {
        Schedule {
            name: registration.name.to_owned(),
            task: registration.task.to_owned(),
            defaults: registration.defaults,
            payload: (registration.payload)(),
            expression: registration.expression.to_owned(),
            zone: registration.zone.to_owned(),
            catch_up: registration.catch_up,
        }
    }

    /// The IANA time zone whose wall clock the expression reads (default
    /// `"UTC"`), e.g. `"Europe/Berlin"`.
    pub fn tz(mut self, zone: impl Into<String>) -> Self {
        self.zone = zone.into();
        self
    }

    /// What to do about missed ticks (default [`CatchUp::Latest`]).
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the task it enqueues.
    pub fn task_name(&self) -> &str {
        &self.task
    }
}

/// A schedule declared with `#[sitq::task(cron = "...")]`, collected with
/// `inventory` like [`TaskRegistration`](crate::TaskRegistration). A worker
/// runs the declared schedules of the tasks it runs.
#[derive(Debug)]
pub struct ScheduleRegistration {
    /// The schedule's name (the task's name).
    pub name: &'static str,
    /// The task it enqueues.
    pub task: &'static str,
    /// The task's defaults.
    pub defaults: TaskDefaults,
    /// The cron expression, checked at compile time.
    pub expression: &'static str,
    /// The IANA zone, checked at compile time.
    pub zone: &'static str,
    /// The catch-up policy.
    pub catch_up: CatchUp,
    /// Encodes the task's (empty) arguments.
    pub payload: fn() -> Result<Vec<u8>>,
    /// The file that declares it.
    pub file: &'static str,
    /// The line of the declaration.
    pub line: u32,
}

inventory::collect!(ScheduleRegistration);

/// A schedule as a worker stores it with [`Backend::register_schedules`](crate::Backend::register_schedules).
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleDefinition {
    /// The schedule's name (unique).
    pub name: String,
    /// The task it enqueues.
    pub task: String,
    /// The queue of the tasks it enqueues.
    pub queue: String,
    /// The cron expression.
    pub expression: String,
    /// The IANA zone.
    pub zone: String,
    /// The catch-up policy.
    pub catch_up: CatchUp,
    /// The next tick, as the registering worker computed it.
    pub next_fire: Option<DateTime<Utc>>,
    /// The registering worker's clock (schedules run on the workers' clocks).
    pub now: DateTime<Utc>,
}

/// A stored schedule, as [`Queue::schedules`](crate::Queue::schedules) lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleInfo {
    /// The schedule's name.
    pub name: String,
    /// The task it enqueues.
    pub task: String,
    /// The queue of the tasks it enqueues.
    pub queue: String,
    /// The cron expression.
    pub expression: String,
    /// The IANA zone.
    pub zone: String,
    /// The catch-up policy.
    pub catch_up: CatchUp,
    /// When this expression and zone were first registered (reset when
    /// either changes): ticks before it are never caught up.
    pub defined_at: DateTime<Utc>,
    /// The latest tick fired.
    pub last_fire: Option<DateTime<Utc>>,
    /// The next tick, as the worker that last fired or registered it computed it.
    pub next_fire: Option<DateTime<Utc>>,
    /// When a worker that runs this schedule last registered it or fired a
    /// tick; workers refresh it every minute. A schedule removed from the
    /// code is fired by no one, and its row stays, with this growing old.
    pub last_seen: DateTime<Utc>,
}

/// One tick to fire, for [`Backend::fire_tick`](crate::Backend::fire_tick).
#[derive(Clone, Debug, PartialEq)]
pub struct TickFire {
    /// The schedule's name.
    pub schedule: String,
    /// The tick's instant (also the task's `run_at`).
    pub tick: DateTime<Utc>,
    /// The task to enqueue if this tick was not fired yet.
    pub task: NewTask,
    /// The schedule's next tick after this one, stored for listing.
    pub next_fire: Option<DateTime<Utc>>,
    /// The firing worker's clock.
    pub now: DateTime<Utc>,
}

/// How long fired ticks are kept for deduplication: each fire deletes the
/// schedule's ticks older than this before its own tick, and no tick older
/// than that horizon fires again (it is treated as fired).
pub const TICK_RETENTION: chrono::Duration = chrono::Duration::hours(1);

impl Schedule {
    /// Checks the schedule; its tick computation and the task each tick
    /// enqueues (without `run_at`).
    pub(crate) fn check(self, options: &crate::ConnectOptions) -> Result<(CronSchedule, Template)> {
        let max_payload_bytes = options.max_payload_bytes;
        let invalid = |reason: String| Error::InvalidSchedule {
            name: self.name.clone(),
            reason,
        };
        if self.name.is_empty() {
            return Err(invalid("the schedule name is empty".into()));
        }
        let cron = CronSchedule::parse(&self.expression, &self.zone).map_err(invalid)?;
        let payload = match self.payload {
            Ok(payload) => payload,
            Err(err) => return Err(invalid(format!("{err}"))),
        };
        if payload.len() > max_payload_bytes {
            return Err(invalid(format!(
                "its arguments are {} bytes, over the limit of {max_payload_bytes} bytes",
                payload.len()
            )));
        }
        // Sealed once: every tick stores the same ciphertext of the same
        // arguments.
        let payload = match &options.encryption {
            Some(keyring) => keyring
                .seal(crate::encryption::Binding::Arguments(&self.task), &payload)
                .map_err(|err| invalid(err.to_string()))?,
            None => payload,
        };
        let definition = ScheduleDefinition {
            name: self.name,
            task: self.task,
            queue: self.defaults.queue.to_owned(),
            expression: self.expression,
            zone: self.zone,
            catch_up: self.catch_up,
            next_fire: None,
            now: DateTime::<Utc>::UNIX_EPOCH,
        };
        Ok((
            cron,
            Template {
                definition,
                payload,
                priority: self.defaults.priority,
                max_attempts: self.defaults.max_attempts.max(1),
            },
        ))
    }
}

/// What a checked schedule enqueues at each tick.
#[derive(Clone, Debug)]
pub(crate) struct Template {
    pub(crate) definition: ScheduleDefinition,
    pub(crate) payload: Vec<u8>,
    pub(crate) priority: i32,
    pub(crate) max_attempts: u32,
}

impl Template {
    pub(crate) fn task(&self, tick: DateTime<Utc>) -> NewTask {
        NewTask {
            name: self.definition.task.clone(),
            queue: self.definition.queue.clone(),
            payload: self.payload.clone(),
            priority: self.priority,
            run_at: tick,
            max_attempts: self.max_attempts,
            // A fired task is deduplicated by its tick, not by a unique key.
            unique: None,
            sequence: None,
            deps: Default::default(),
            // A tick has no producer whose trace it continues.
            trace: None,
        }
    }
}
