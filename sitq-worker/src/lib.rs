//! The sitq worker runtime.
//!
//! A [`Worker`] claims tasks from a [`Queue`](sitq_core::Queue), runs them by
//! their registered name with bounded concurrency, keeps their leases alive
//! with heartbeats, stores results in batches, retries failures with backoff,
//! enforces timeouts, survives panics, and shuts down gracefully.

mod shutdown;
mod worker;

#[cfg(feature = "testing")]
pub mod testing;

pub use shutdown::ShutdownHandle;
pub use worker::Worker;
