//! What one worker does with its schedules, on its own clock: register them,
//! then at each look fire the ticks that are due. The worker's scheduler task
//! drives it with real time; the conformance suite with chosen instants.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::cron::{CronSchedule, ON_TIME_WINDOW};
use super::{Schedule, Template, TickFire};
use crate::backend::Backend;
use crate::record::TaskId;
use crate::{Error, Result};

/// A worker's schedules and how far it has fired them.
#[derive(Debug)]
pub struct Firing {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    cron: CronSchedule,
    template: Template,
    /// Every tick up to here is handled (fired, by anyone, or skipped);
    /// `None` until registered.
    handled: Option<DateTime<Utc>>,
    /// Whether this worker has looked since it registered: until it has,
    /// every tick since the stored last fire was missed.
    started: bool,
}

/// A tick this worker fired (another worker firing it first is not listed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The schedule.
    pub schedule: String,
    /// The tick.
    pub tick: DateTime<Utc>,
    /// The task it enqueued.
    pub task: TaskId,
}

impl Firing {
    /// Checks `schedules` (expression, zone, unique names, payload size
    /// under `options`, whose keyring seals the arguments if it has one):
    /// the first bad one is an [`Error::InvalidSchedule`] naming it.
    pub fn new(schedules: Vec<Schedule>, options: &crate::ConnectOptions) -> Result<Firing> {
        let mut names = HashSet::new();
        let mut entries = Vec::with_capacity(schedules.len());
        for schedule in schedules {
            if !names.insert(schedule.name.clone()) {
                return Err(Error::InvalidSchedule {
                    name: schedule.name,
                    reason: "two schedules have this name; give each its own".into(),
                });
            }
            let (cron, template) = schedule.check(options)?;
            entries.push(Entry {
                cron,
                template,
                handled: None,
                started: false,
            });
        }
        Ok(Firing { entries })
    }

    /// Whether there are no schedules.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Stores the schedules (or refreshes them: `last_seen`, and the
    /// definition if it changed). The first successful call sets where each
    /// schedule's firing starts: after its stored last fire, or after the
    /// moment its definition was first stored, whichever is later.
    pub async fn register(&mut self, backend: &dyn Backend, now: DateTime<Utc>) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let definitions = self
            .entries
            .iter()
            .map(|entry| {
                let mut definition = entry.template.definition.clone();
                definition.next_fire = entry.cron.next_after(entry.handled.unwrap_or(now).max(now));
                definition.now = now;
                definition
            })
            .collect();
        let stored = backend.register_schedules(definitions).await?;
        for entry in &mut self.entries {
            let name = &entry.template.definition.name;
            let info = stored
                .iter()
                .find(|info| &info.name == name)
                .ok_or_else(|| {
                    Error::database(
                        "registering schedules",
                        format!("the backend did not return schedule {name:?}"),
                    )
                })?;
            if entry.handled.is_none() {
                let since = info
                    .last_fire
                    .map_or(info.defined_at, |last| last.max(info.defined_at));
                entry.handled = Some(since);
            }
        }
        Ok(())
    }

    /// Fires the ticks due at `now` (see [`CronSchedule::due`]); returns
    /// those this worker fired. A tick another worker fired first counts as
    /// handled. On an error the schedule is looked at again next time, from
    /// where it was.
    pub async fn fire_due(
        &mut self,
        backend: &dyn Backend,
        now: DateTime<Utc>,
    ) -> Result<Vec<Fired>> {
        let mut fired = Vec::new();
        let mut failure = None;
        for entry in &mut self.entries {
            let Some(handled) = entry.handled else {
                continue;
            };
            let on_time_from = if entry.started {
                now - ON_TIME_WINDOW
            } else {
                // Just started: whatever came due since the stored last fire
                // was missed while no worker ran.
                now + chrono::Duration::seconds(1)
            };
            let due = entry.cron.due(
                handled,
                now,
                on_time_from,
                entry.template.definition.catch_up,
            );
            let mut ok = true;
            for tick in due {
                let fire = TickFire {
                    schedule: entry.template.definition.name.clone(),
                    tick,
                    task: entry.template.task(tick),
                    next_fire: entry.cron.next_after(tick.max(now)),
                    now,
                };
                match backend.fire_tick(fire).await {
                    Ok(Some(task)) => fired.push(Fired {
                        schedule: entry.template.definition.name.clone(),
                        tick,
                        task,
                    }),
                    Ok(None) => {}
                    Err(err) => {
                        failure.get_or_insert(err);
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                entry.handled = Some(handled.max(now));
                entry.started = true;
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(fired),
        }
    }

    /// The earliest next tick of any registered schedule.
    pub fn next_tick(&self) -> Option<DateTime<Utc>> {
        self.entries
            .iter()
            .filter_map(|entry| entry.cron.next_after(entry.handled?))
            .min()
    }
}
