//! The producer's trace context, carried with a task so that the span of
//! each attempt can be linked to the enqueue that caused it, across
//! processes and machines.
//!
//! sitq stores an opaque text per task (a W3C `traceparent` with
//! OpenTelemetry) and leaves what it means to a [`TracePropagation`] the
//! program sets on [`ConnectOptions`](crate::ConnectOptions): `inject`
//! reads the current context at enqueue, `extract` makes it the parent of
//! the attempt's span in the worker. The worker records it on the span as
//! the field `trace.parent` either way.

use std::fmt;

use crate::{Error, Result};

/// The most bytes of a stored trace context.
pub const MAX_TRACE_CONTEXT: usize = 512;

/// How the program's tracing carries a context across the queue.
///
/// With `tracing-opentelemetry` (and a W3C propagator installed), e.g.:
///
/// ```ignore
/// use opentelemetry::global;
/// use tracing_opentelemetry::OpenTelemetrySpanExt;
///
/// fn inject() -> Option<String> {
///     let context = tracing::Span::current().context();
///     let mut carrier = std::collections::HashMap::new();
///     global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
///     carrier.remove("traceparent")
/// }
/// fn extract(span: &tracing::Span, traceparent: &str) {
///     let carrier = std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
///     span.set_parent(global::get_text_map_propagator(|p| p.extract(&carrier)));
/// }
/// let options = sitq::ConnectOptions::new().trace_propagation(sitq::TracePropagation { inject, extract });
/// ```
#[derive(Copy, Clone)]
pub struct TracePropagation {
    /// The current trace context as text, at enqueue (`None`: nothing to carry).
    pub inject: fn() -> Option<String>,
    /// Makes the context stored with a task the parent of `span`, the
    /// attempt's span, before the attempt runs in it.
    pub extract: fn(span: &tracing::Span, context: &str),
}

/// The same functions (as far as function addresses tell: options compare
/// equal when they were built from the same propagation).
impl PartialEq for TracePropagation {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::fn_addr_eq(self.inject, other.inject)
            && std::ptr::fn_addr_eq(self.extract, other.extract)
    }
}

impl Eq for TracePropagation {}

impl fmt::Debug for TracePropagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracePropagation").finish_non_exhaustive()
    }
}

/// Checks a trace context given at enqueue.
pub(crate) fn validate(context: &str) -> Result<()> {
    if context.len() > MAX_TRACE_CONTEXT {
        return Err(Error::InvalidOptions(format!(
            "a trace context is at most {MAX_TRACE_CONTEXT} bytes, got {}",
            context.len()
        )));
    }
    if context.chars().any(char::is_control) {
        return Err(Error::InvalidOptions(
            "a trace context has no control characters".into(),
        ));
    }
    Ok(())
}
