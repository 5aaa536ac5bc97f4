//! The worker side of the backend conformance suite: every backend's
//! [`Harness`](sitq_core::testing::Harness) starts its workers with [`start`].

use async_trait::async_trait;
use sitq_core::Queue;
use sitq_core::testing::{RunningWorker, WorkerConfig};

use crate::{ShutdownHandle, Worker};

/// Starts a worker on `queue` as the suite asks, without signal handling.
pub fn start(queue: &Queue, config: WorkerConfig) -> Box<dyn RunningWorker> {
    let worker = Worker::new(queue.clone())
        .concurrency(config.concurrency)
        .lease(config.lease)
        .registry(config.registry)
        .cancel_grace(config.cancel_grace)
        .handle_signals(false);
    let handle = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    Box::new(Started { handle, running })
}

struct Started {
    handle: ShutdownHandle,
    running: tokio::task::JoinHandle<sitq_core::Result<()>>,
}

#[async_trait]
impl RunningWorker for Started {
    async fn shutdown(self: Box<Self>) {
        self.handle.shutdown().await;
        // A worker that failed is a failed conformance case.
        match self.running.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("the worker failed: {err}"),
            Err(err) => panic!("the worker task failed: {err}"),
        }
    }
}
