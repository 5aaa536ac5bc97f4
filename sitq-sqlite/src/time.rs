//! Stored times: INTEGER unix microseconds, UTC.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The backend's clock, in stored form.
pub(crate) fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// An instant in stored form.
pub(crate) fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A stored instant; out-of-range values (never written by sitq) clamp to the epoch.
pub(crate) fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// `now + duration`, saturating: a lease of `Duration::MAX` means "forever", not an overflow.
pub(crate) fn add(now: i64, duration: Duration) -> i64 {
    let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
    now.saturating_add(micros)
}
