//! The `LISTEN` side of wake-ups: a background task on its own connection
//! that turns notifications from any process into in-process [`Signals`].
//!
//! Notifications are transient: those sent while the connection is down are
//! lost. So after every reconnect the task signals work (idle workers then
//! look for themselves), and waiters of finished tasks fall back on their
//! poll (the backend's `poll_interval`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sitq_core::{Error, Result, Signals};
use sqlx::postgres::{PgListener, PgNotification, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::notify;

/// The first wait before re-listening after a failure; doubled per failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between attempts to re-listen.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long [`Listener::stop`] waits for the task to let go of its connection.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The running listener task. Dropping this stops it.
#[derive(Debug)]
pub(crate) struct Listener {
    pool: PgPool,
    // Dropping the sender is what stops the task when the backend is dropped
    // without `close`.
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    /// Starts listening on `pool` (a pool of one connection). Returns once
    /// `LISTEN` is in effect, so nothing committed after this is missed.
    pub(crate) async fn start(pool: PgPool, signals: Arc<Signals>) -> Result<Listener> {
        let listener = listen(&pool)
            .await
            .map_err(|error| Error::database("listening for notifications", error))?;
        let (shutdown, stop) = watch::channel(false);
        let task = tokio::spawn(run(pool.clone(), signals, listener, stop));
        Ok(Listener {
            pool,
            shutdown,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops the task and closes its connection.
    pub(crate) async fn stop(&self) {
        self.shutdown.send_replace(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && tokio::time::timeout(STOP_TIMEOUT, task).await.is_err()
        {
            tracing::warn!("the sitq listener task did not stop in time");
        }
        self.pool.close().await;
    }
}

/// A listener subscribed to every sitq channel.
async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all([
            notify::WORK,
            notify::FINISHED,
            notify::CANCEL,
            notify::RETRY,
            notify::CONTROL,
        ])
        .await?;
    Ok(listener)
}

/// Receives until told to stop, re-listening with backoff whenever the
/// connection fails.
async fn run(
    pool: PgPool,
    signals: Arc<Signals>,
    listener: PgListener,
    mut stop: watch::Receiver<bool>,
) {
    let mut listener = Some(listener);
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut active = match listener.take() {
            Some(active) => active,
            None => match listen(&pool).await {
                Ok(active) => {
                    tracing::info!("sitq listener reconnected");
                    // Anything enqueued, cancelled or drained while we were
                    // away went unheard.
                    signals.notify_work();
                    signals.notify_cancel_check();
                    signals.notify_control();
                    active
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "sitq listener could not reconnect");
                    if sleep_or_stop(backoff, &mut stop).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        loop {
            tokio::select! {
                biased;
                // Ok: `stop` was called; Err: the backend was dropped.
                _ = stop.changed() => return,
                received = active.try_recv() => match received {
                    Ok(Some(notification)) => {
                        backoff = MIN_BACKOFF;
                        dispatch(&signals, &notification);
                    }
                    Ok(None) => {
                        // sqlx noticed the connection drop, reconnected and
                        // listened again; notifications in between are lost.
                        tracing::info!("sitq listener connection was lost and re-established");
                        signals.notify_work();
                        signals.notify_cancel_check();
                        signals.notify_control();
                    }
                    Err(error) => {
                        tracing::warn!(%error, retry_in = ?backoff, "sitq listener connection failed");
                        break;
                    }
                },
            }
        }
        drop(active);
        if sleep_or_stop(backoff, &mut stop).await {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sleeps `delay`; true when told to stop meanwhile.
async fn sleep_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

fn dispatch(signals: &Signals, notification: &PgNotification) {
    match notification.channel() {
        notify::WORK => signals.notify_work(),
        notify::FINISHED => signals.notify_finished(notify::parse_finished(notification.payload())),
        notify::CANCEL => signals.notify_cancel(notify::parse_finished(notification.payload())),
        notify::CONTROL => signals.notify_control(),
        notify::RETRY => {
            for id in notify::parse_finished(notification.payload()) {
                signals.forget_outcome(id);
            }
        }
        other => tracing::debug!(
            channel = other,
            "ignoring a notification on an unknown channel"
        ),
    }
}
