//! The scheduler beside the claim loop: registers the worker's schedules,
//! sleeps until the next tick, fires what is due (once across every worker:
//! the database decides, see [`Backend::fire_tick`]), and stops with the
//! worker.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sitq_core::Backend;
use sitq_core::schedule::Firing;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::maintenance::stopped;

/// How often a running worker re-registers its schedules, which keeps their
/// `last_seen` fresh.
const REFRESH: Duration = Duration::from_secs(60);

/// The longest pause between retries after a database error.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Starts the scheduler, unless there is nothing to schedule.
pub(super) fn spawn(
    backend: Arc<dyn Backend>,
    firing: Firing,
    stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if firing.is_empty() {
        return None;
    }
    Some(tokio::spawn(run(backend, firing, stop)))
}

async fn run(backend: Arc<dyn Backend>, mut firing: Firing, mut stop: watch::Receiver<bool>) {
    let mut registered: Option<Instant> = None;
    let mut pause = Duration::from_millis(100);
    while !*stop.borrow() {
        let mut failed = false;
        if registered.is_none_or(|at| at.elapsed() >= REFRESH) {
            match firing.register(backend.as_ref(), Utc::now()).await {
                Ok(()) => registered = Some(Instant::now()),
                Err(err) => {
                    tracing::warn!(error = %err, "could not register schedules; retrying");
                    failed = true;
                }
            }
        }
        if registered.is_some() {
            match firing.fire_due(backend.as_ref(), Utc::now()).await {
                Ok(fired) => {
                    for fired in fired {
                        tracing::debug!(schedule = %fired.schedule, tick = %fired.tick, task.id = %fired.task, "fired a scheduled task");
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not fire a schedule's tick; retrying");
                    failed = true;
                }
            }
        }
        let wake = if failed {
            let wake = Instant::now() + pause;
            pause = (pause * 2).min(MAX_PAUSE);
            wake
        } else {
            pause = Duration::from_millis(100);
            let refresh = registered.map_or_else(Instant::now, |at| at + REFRESH);
            match firing.next_tick() {
                Some(tick) => {
                    // A millisecond past the tick, so that the wall clock has
                    // surely reached it when the timer fires.
                    let wait = (tick - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    (Instant::now() + wait + Duration::from_millis(1)).min(refresh)
                }
                None => refresh,
            }
        };
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}
