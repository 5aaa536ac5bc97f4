//! [`Worker::metrics_listener`](crate::Worker::metrics_listener): the
//! `metrics-exporter-prometheus` recorder with its HTTP listener.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use sitq_core::{Error, Result};

use super::telemetry::{DURATION, QUEUE_WAIT};

/// Histogram buckets in seconds, for task durations and queue waits alike:
/// from a few milliseconds (a quick task, an idle queue) to an hour (a
/// long job, a deep backlog).
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];

/// Listens on `addr` and makes the exporter the process's recorder; binds
/// first, so a taken address installs nothing.
pub(crate) fn install(addr: SocketAddr) -> Result<()> {
    let builder = [DURATION, QUEUE_WAIT]
        .into_iter()
        .try_fold(
            PrometheusBuilder::new().with_http_listener(addr),
            |builder, name| builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), BUCKETS),
        )
        .map_err(|err| Error::Config(format!("the Prometheus exporter's buckets: {err}")))?;
    let (recorder, exporter) = builder.build().map_err(|err| match err {
        BuildError::FailedToCreateHTTPListener(reason) => Error::Config(format!(
            "cannot serve metrics on {addr}: {reason} (is another process or worker using that address?)"
        )),
        other => Error::Config(format!("cannot start the Prometheus exporter on {addr}: {other}")),
    })?;
    // The exporter future is dropped (and its socket closed) on failure.
    metrics::set_global_recorder(recorder).map_err(|_| {
        Error::Config(format!(
            "cannot serve metrics on {addr}: this process has a `metrics` recorder installed already (one exporter per process: set metrics_listener on one worker, or install the exporter yourself and use Worker::queue_metrics)"
        ))
    })?;
    tokio::spawn(async move {
        if let Err(err) = exporter.await {
            tracing::error!(error = ?err, %addr, "the Prometheus metrics listener stopped");
        }
    });
    Ok(())
}
