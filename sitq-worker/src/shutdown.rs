use tokio::sync::watch;

/// Stops a running [`Worker`](crate::Worker) gracefully from elsewhere.
///
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    requested: watch::Sender<bool>,
    forced: watch::Sender<bool>,
    finished: watch::Receiver<bool>,
}

/// The worker's side: sees requests, reports when it has stopped.
///
/// Two stages: *requested* (stop claiming, drain in-flight tasks) and
/// *forced* (stop at once, abandoning them). Forced implies requested.
#[derive(Debug)]
pub(crate) struct ShutdownSignal {
    requested: watch::Sender<bool>,
    forced: watch::Sender<bool>,
    finished: watch::Sender<bool>,
}

pub(crate) fn channel() -> (ShutdownHandle, ShutdownSignal) {
    let requested = watch::Sender::new(false);
    let forced = watch::Sender::new(false);
    let (finished_tx, finished_rx) = watch::channel(false);
    (
        ShutdownHandle {
            requested: requested.clone(),
            forced: forced.clone(),
            finished: finished_rx,
        },
        ShutdownSignal {
            requested,
            forced,
            finished: finished_tx,
        },
    )
}

impl ShutdownHandle {
    /// Asks the worker to stop claiming and drain; returns at once.
    pub fn request(&self) {
        self.requested.send_replace(true);
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Asks the worker to stop, then waits until its in-flight tasks have
    /// finished and their results are stored (or the worker's shutdown
    /// timeout passed). Returns at once if the worker is not running.
    pub async fn shutdown(&self) {
        self.request();
        self.stopped().await;
    }

    /// Stops the worker at once, as a second SIGINT/SIGTERM does: it stops
    /// claiming and abandons its in-flight tasks instead of draining them
    /// (also when a graceful shutdown is already under way), and
    /// [`Worker::run`](crate::Worker::run) returns
    /// [`Error::ForcedShutdown`](sitq_core::Error::ForcedShutdown).
    /// Abandoned tasks keep their claims until their leases expire, then
    /// run again. Returns at once; see [`stopped`](ShutdownHandle::stopped).
    ///
    /// An async task is dropped at its next `.await`; a plain (blocking)
    /// task cannot be interrupted and runs on to its end, its result
    /// discarded, and Tokio waits for it when its runtime is dropped: a
    /// program that must exit now calls `std::process::exit` after `run`
    /// returns.
    pub fn force(&self) {
        self.requested.send_replace(true);
        self.forced.send_replace(true);
    }

    /// Whether a forced stop was asked for.
    pub fn is_forced(&self) -> bool {
        *self.forced.borrow()
    }

    /// Waits until the worker has stopped (drained, or forced). Returns at
    /// once if the worker is not running.
    pub async fn stopped(&self) {
        let mut finished = self.finished.clone();
        // An error means the worker was dropped: nothing left to wait for.
        let _ = finished.wait_for(|done| *done).await;
    }
}

impl ShutdownSignal {
    /// Turns true when a stop is requested (graceful or forced).
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.requested.subscribe()
    }

    pub(crate) fn requester(&self) -> watch::Sender<bool> {
        self.requested.clone()
    }

    /// Turns true when the stop is forced: abandon in-flight tasks now.
    pub(crate) fn subscribe_forced(&self) -> watch::Receiver<bool> {
        self.forced.subscribe()
    }

    /// Sets both stages, as [`ShutdownHandle::force`] does.
    pub(crate) fn forcer(&self) -> Forcer {
        Forcer {
            requested: self.requested.clone(),
            forced: self.forced.clone(),
        }
    }

    /// Turns true once the worker has stopped.
    pub(crate) fn subscribe_finished(&self) -> watch::Receiver<bool> {
        self.finished.subscribe()
    }

    pub(crate) fn finish(&self) {
        self.finished.send_replace(true);
    }
}

/// Forces the stop from a task of its own (the signal listener).
#[derive(Debug)]
pub(crate) struct Forcer {
    requested: watch::Sender<bool>,
    forced: watch::Sender<bool>,
}

impl Forcer {
    pub(crate) fn force(&self) {
        self.requested.send_replace(true);
        self.forced.send_replace(true);
    }
}

/// Resolves once `flag` is true, or its sender is gone.
pub(crate) async fn raised(flag: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here.
    let _ = flag.wait_for(|raised| *raised).await.map(|_| ());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn within(what: &str, future: impl std::future::Future<Output = ()>) {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    #[tokio::test]
    async fn force_raises_both_stages() {
        let (handle, signal) = channel();
        let mut requested = signal.subscribe();
        let mut forced = signal.subscribe_forced();
        handle.request();
        assert!(*requested.borrow_and_update());
        assert!(!*forced.borrow() && !handle.is_forced());
        handle.force();
        within("the forced stage", raised(&mut forced)).await;
        assert!(handle.is_forced() && handle.is_requested());
    }

    #[tokio::test]
    async fn the_forcer_forces_without_a_request_first() {
        let (handle, signal) = channel();
        let mut requested = signal.subscribe();
        signal.forcer().force();
        within("the requested stage", raised(&mut requested)).await;
        assert!(handle.is_forced());
    }

    #[tokio::test]
    async fn stopped_returns_once_finished() {
        let (handle, signal) = channel();
        let waiting = tokio::spawn(async move { handle.stopped().await });
        signal.finish();
        within("stopped()", async { waiting.await.expect("join") }).await;
    }

    #[tokio::test]
    async fn stopped_returns_when_the_worker_is_dropped() {
        let (handle, signal) = channel();
        drop(signal);
        within("stopped()", handle.stopped()).await;
    }
}
