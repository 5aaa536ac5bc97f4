//! Why an enqueue transaction failed: PostgreSQL chose it as a deadlock's
//! victim (the caller retries it whole), or anything else (an error for the
//! user). Shared by the unique and the dependency enqueue paths.

use sitq_core::Error;

use super::resolve::is_deadlock;
use crate::connect::db_error;

/// Why an enqueue transaction failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// PostgreSQL chose this transaction as a deadlock's victim, doing `op`.
    Deadlock {
        /// What was being done, for the error if retries run out.
        op: &'static str,
        /// The server's error.
        error: sqlx::Error,
    },
    /// Anything else.
    Other(Error),
}

impl Failure {
    /// As sitq's error.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::Deadlock { op, error } => db_error(op)(error),
            Failure::Other(error) => error,
        }
    }
}

/// Classifies a database error met while doing `op`.
pub(crate) fn failure(op: &'static str) -> impl Fn(sqlx::Error) -> Failure {
    move |error| {
        if is_deadlock(&error) {
            Failure::Deadlock { op, error }
        } else {
            Failure::Other(db_error(op)(error))
        }
    }
}
