//! The PostgreSQL backend of sitq.
//!
//! Producers and workers on many machines share one PostgreSQL database:
//!
//! - **Claims** take ready tasks in order (priority, then `run_at`, then id)
//!   with `FOR UPDATE SKIP LOCKED`, so concurrent workers never block on or
//!   double-claim a task.
//! - **Wake-ups** travel by `LISTEN/NOTIFY`: an enqueue, a retry or a
//!   released claim notifies `sitq_work`, a finished task notifies
//!   `sitq_finished` with its id, a drain request for a worker notifies
//!   `sitq_control`, and every connected process turns those into
//!   in-process [`Signals`]. A background task keeps the listening
//!   connection alive and reconnects it with backoff; a poll every
//!   `ConnectOptions::poll_interval` covers the gaps.
//! - **Round trips**: every call is one statement (its `NOTIFY` included),
//!   so one round trip; a pooled connection is checked with a ping only
//!   when it sat idle, not before every call.
//! - **Time** comes from the server's clock, so leases and retry delays do
//!   not depend on the clocks of the machines involved.
//!
//! - **Transactional enqueue** (the outbox pattern): [`enqueue_in`] stores a
//!   task inside the caller's own `sqlx::Transaction`, so it exists if and
//!   only if the caller's writes commit.
//!
//! Users reach it through `sitq::Queue::connect("postgres://…")` with the
//! facade's `postgres` feature; [`PostgresBackend::connect`] builds one by hand.
//!
//! The URL is sqlx's (libpq-style) with one addition: `connect_timeout=SECONDS`
//! bounds how long a call waits for a connection when the server is
//! unreachable (default 10 s).
//!
//! - **TLS** through rustls: `sslmode=verify-full&sslrootcert=/path/ca.pem`
//!   checks the server's certificate against that authority (and Mozilla's
//!   roots) and its name against the URL's host; `require` encrypts without
//!   checking; `prefer`, the default, uses TLS when the server offers it.
//! - **Least privilege**: [`Roles`] writes the SQL for a producer, a worker
//!   and an admin role. A role that may not change the schema connects to
//!   a database whose migrations are all applied; an operation its role may
//!   not do fails with `Error::PermissionDenied`.
//!
//! [`Signals`]: sitq_core::Signals

mod backend;
mod connect;
mod listener;
mod notify;
mod roles;
mod transaction;

pub use backend::PostgresBackend;
pub use roles::Roles;
pub use transaction::{enqueue_in, enqueue_in_with};

/// The sqlx sitq is built with: open the transactions for [`enqueue_in`]
/// with it (or with the same version of sqlx).
pub use sqlx;

use std::sync::Arc;

use sitq_core::{Backend, BackendConnector, ConnectFuture, ConnectOptions};

fn connect_fn(url: String, options: ConnectOptions) -> ConnectFuture {
    Box::pin(async move {
        let backend = PostgresBackend::connect(&url, options).await?;
        Ok(Arc::new(backend) as Arc<dyn Backend>)
    })
}

inventory::submit! {
    BackendConnector { schemes: &["postgres", "postgresql"], connect: connect_fn }
}
