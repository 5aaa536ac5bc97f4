//! The sitq worker runtime.
//!
//! A [`Worker`] claims tasks from a [`Queue`](sitq_core::Queue), runs them by
//! their registered name with bounded concurrency, keeps their leases alive
//! with heartbeats, stores results in batches, retries failures with backoff,
//! enforces timeouts, survives panics, and shuts down gracefully.
//!
//! It registers itself in the database's worker registry (and drains when
//! asked to there), can scale its concurrency between bounds
//! ([`Worker::concurrency_range`]), reports metrics through the `metrics`
//! facade (served for Prometheus with the `prometheus` feature), and runs
//! each attempt in a `sitq.attempt` tracing span.

mod shutdown;
mod worker;

#[cfg(feature = "testing")]
pub mod testing;

pub use shutdown::ShutdownHandle;
pub use worker::Worker;
