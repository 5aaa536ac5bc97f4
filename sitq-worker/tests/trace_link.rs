//! The producer's trace context travels with a task: the attempt's span
//! shows it as `trace.parent` and the program's `TracePropagation::extract`
//! is handed that span and the context, in a worker on another client of
//! the same SQLite database. Its own test binary: it installs a global
//! tracing subscriber.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sitq_core::{
    ConnectOptions, Context, EnqueueOptions, Queue, Registry, Result, TaskDefaults, TaskFuture,
    TaskInputs, TaskRegistration, TracePropagation,
};
use sitq_worker::Worker;
use tracing_subscriber::fmt::MakeWriter;

// Links the SQLite backend's `sqlite://` connector.
use sitq_sqlite as _;

const WITHIN: Duration = Duration::from_secs(60);
const PRODUCER_CONTEXT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

static TRACED: TaskRegistration = TaskRegistration {
    name: "traced",
    file: file!(),
    line: line!(),
    defaults: TaskDefaults::DEFAULT,
    run: traced,
};

fn traced(_: &[u8], _: Option<&TaskInputs>, _: Context) -> Result<TaskFuture> {
    Ok(Box::pin(async {
        tracing::info!("inside the attempt");
        // `()` in MessagePack: nil.
        Ok(vec![0xc0])
    }))
}

/// What `extract` was handed: the span's name and the context.
static EXTRACTED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn inject() -> Option<String> {
    Some(PRODUCER_CONTEXT.to_owned())
}

fn extract(span: &tracing::Span, context: &str) {
    let name = span
        .metadata()
        .map_or("<disabled span>", |metadata| metadata.name());
    EXTRACTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((name.to_owned(), context.to_owned()));
}

/// Log lines, kept for the test to read.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_span_carries_the_producers_trace_context() {
    let lines = Lines::default();
    tracing_subscriber::fmt()
        .with_writer(lines.clone())
        .with_ansi(false)
        .init();
    let dir = std::env::temp_dir().join(format!("sitq-trace-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let url = format!("sqlite://{}", dir.join("tasks.db").display());

    let propagation = TracePropagation { inject, extract };
    let producer = Queue::connect_with(&url, ConnectOptions::new().trace_propagation(propagation))
        .await
        .expect("producer");
    let traced_id = producer
        .enqueue_raw("traced", Vec::from([0x80u8]), EnqueueOptions::new())
        .await
        .expect("enqueue");
    // The worker's client has the same propagation (it extracts); a task
    // enqueued without a context is run without one.
    let plain = Queue::connect(&url).await.expect("plain client");
    let plain_id = plain
        .enqueue_raw("traced", Vec::from([0x80u8]), EnqueueOptions::new())
        .await
        .expect("enqueue");
    let worker_queue =
        Queue::connect_with(&url, ConnectOptions::new().trace_propagation(propagation))
            .await
            .expect("worker client");
    let worker = Worker::new(worker_queue.clone())
        .registry(Registry::from_registrations([&TRACED]).expect("registry"))
        .concurrency(2)
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    for id in [traced_id, plain_id] {
        worker_queue
            .handle::<()>(id)
            .wait_timeout(WITHIN)
            .await
            .expect("the task succeeds");
    }
    stop.shutdown().await;
    running.await.expect("worker task").expect("worker run");

    let extracted = EXTRACTED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert_eq!(
        extracted,
        [("sitq.attempt".to_owned(), PRODUCER_CONTEXT.to_owned())],
        "extract is called once, for the traced task's attempt span"
    );
    let log = String::from_utf8_lossy(&lines.0.lock().unwrap_or_else(PoisonError::into_inner))
        .into_owned();
    let inside: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("inside the attempt"))
        .collect();
    assert_eq!(inside.len(), 2, "{log}");
    assert!(
        inside
            .iter()
            .any(|line| line.contains(&format!("task.id={traced_id}"))
                && line.contains(&format!("trace.parent={PRODUCER_CONTEXT}"))),
        "the traced attempt's lines carry the producer's context:\n{log}"
    );
    assert!(
        inside
            .iter()
            .any(|line| line.contains(&format!("task.id={plain_id}"))
                && !line.contains("trace.parent")),
        "a task without a context has none:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
