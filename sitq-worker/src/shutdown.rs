use tokio::sync::watch;

/// Stops a running [`Worker`](crate::Worker) gracefully from elsewhere.
///
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    requested: watch::Sender<bool>,
    finished: watch::Receiver<bool>,
}

/// The worker's side: sees requests, reports when it has stopped.
#[derive(Debug)]
pub(crate) struct ShutdownSignal {
    requested: watch::Sender<bool>,
    finished: watch::Sender<bool>,
}

pub(crate) fn channel() -> (ShutdownHandle, ShutdownSignal) {
    let requested = watch::Sender::new(false);
    let (finished_tx, finished_rx) = watch::channel(false);
    (
        ShutdownHandle {
            requested: requested.clone(),
            finished: finished_rx,
        },
        ShutdownSignal {
            requested,
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
        let mut finished = self.finished.clone();
        // An error means the worker was dropped: nothing left to wait for.
        let _ = finished.wait_for(|done| *done).await;
    }
}

impl ShutdownSignal {
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.requested.subscribe()
    }

    pub(crate) fn requester(&self) -> watch::Sender<bool> {
        self.requested.clone()
    }

    pub(crate) fn finish(&self) {
        self.finished.send_replace(true);
    }
}
