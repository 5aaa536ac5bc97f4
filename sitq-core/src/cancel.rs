//! Cancelling and retrying tasks: the request and what came of it.

use crate::record::TaskStatus;
use crate::{Error, Result};

/// Who cancels a task and why: [`Queue::cancel_with`](crate::Queue::cancel_with).
///
/// ```
/// # use sitq_core::CancelRequest;
/// let request = CancelRequest::new().by("ops").reason("duplicate charge");
/// assert_eq!(request.get_by(), "ops");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelRequest {
    by: String,
    reason: Option<String>,
}

/// The `by` of a [`CancelRequest`] that does not say.
pub const DEFAULT_CANCELLED_BY: &str = "api";

/// The longest `by` or `reason` accepted, in bytes.
pub const MAX_CANCEL_TEXT: usize = 4096;

impl CancelRequest {
    /// A request by `"api"`, with no reason.
    pub fn new() -> CancelRequest {
        CancelRequest {
            by: DEFAULT_CANCELLED_BY.to_owned(),
            reason: None,
        }
    }

    /// Who asks (stored with the task; default `"api"`).
    pub fn by(mut self, by: impl Into<String>) -> CancelRequest {
        self.by = by.into();
        self
    }

    /// Why (stored with the task, and in [`Error::Cancelled`]).
    pub fn reason(mut self, reason: impl Into<String>) -> CancelRequest {
        self.reason = Some(reason.into());
        self
    }

    /// Who asks.
    pub fn get_by(&self) -> &str {
        &self.by
    }

    /// Why, if given.
    pub fn get_reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Checks the request: `by` not empty, neither text over
    /// [`MAX_CANCEL_TEXT`] bytes nor holding a NUL character (which
    /// PostgreSQL's text cannot store).
    pub fn validate(&self) -> Result<()> {
        if self.by.is_empty() {
            return Err(Error::InvalidOptions(
                "cancel request: `by` is empty; say who cancels (default \"api\")".into(),
            ));
        }
        for (what, text) in [("by", Some(&self.by)), ("reason", self.reason.as_ref())] {
            let Some(text) = text else { continue };
            if text.len() > MAX_CANCEL_TEXT {
                return Err(Error::InvalidOptions(format!(
                    "cancel request: `{what}` is {} bytes, over the limit of {MAX_CANCEL_TEXT}",
                    text.len()
                )));
            }
            if text.contains('\0') {
                return Err(Error::InvalidOptions(format!(
                    "cancel request: `{what}` contains a NUL character, which cannot be stored"
                )));
            }
        }
        Ok(())
    }

    /// The message stored as a cancelled task's error: `cancelled by ops: why`.
    pub fn message(by: &str, reason: Option<&str>) -> String {
        match reason {
            Some(reason) => format!("cancelled by {by}: {reason}"),
            None => format!("cancelled by {by}"),
        }
    }
}

impl Default for CancelRequest {
    fn default() -> Self {
        CancelRequest::new()
    }
}

/// What [`Queue::cancel`](crate::Queue::cancel) did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The task had not started (pending, blocked, or reserved by a worker
    /// that had not started it): it is `cancelled` now.
    Cancelled,
    /// The task is running: the request is stored and the worker running it
    /// cancels its context, then drops the attempt after its grace period.
    /// The task ends `cancelled` unless it returns `Ok` first. Also the
    /// answer when a request was already stored (the first one is kept).
    Requested,
    /// The task had already finished with this status; nothing changed.
    AlreadyFinished(TaskStatus),
}
