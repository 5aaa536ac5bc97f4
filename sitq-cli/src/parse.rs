//! Values typed on the command line: durations, instants, states, ids.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sitq::{TaskId, TaskStatus};

use crate::error::{CliError, Result};

/// A duration like `90s`, `30m`, `1h30m`, `7d` or `250ms`; a bare number is
/// seconds.
pub fn duration(text: &str) -> Result<Duration> {
    sitq_core::inspect::parse_duration(text).ok_or_else(|| {
        CliError::new(format!(
            "bad duration {text:?}: use a number with a unit, e.g. 30s, 15m, 1h30m, 7d (units ms, s, m, h, d, w)"
        ))
    })
}

/// An instant: a duration ago (`1h`) or an RFC 3339 time.
pub fn since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    sitq_core::inspect::parse_since(text, now).ok_or_else(|| {
        CliError::new(format!(
            "bad time {text:?}: use a duration ago (30m, 1h, 2d) or an RFC 3339 time (2026-01-31T12:00:00Z)"
        ))
    })
}

/// States given as repeated options and/or comma lists.
pub fn statuses(texts: &[String]) -> Result<Vec<TaskStatus>> {
    sitq_core::inspect::parse_statuses(texts.iter().map(String::as_str)).map_err(|part| {
        let known: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
        CliError::new(format!(
            "unknown status {part:?}: use one of {}",
            known.join(", ")
        ))
    })
}

/// A task id.
pub fn task_id(text: &str) -> Result<TaskId> {
    text.trim()
        .parse::<TaskId>()
        .map_err(|_| CliError::new(format!("bad task id {text:?}: a task id is a number")))
}

/// The actor for the audit log: the given one, else `$USER`, `$LOGNAME`,
/// else `unknown`.
pub fn actor(given: Option<String>) -> String {
    given
        .filter(|actor| !actor.trim().is_empty())
        .or_else(|| env_nonempty("USER"))
        .or_else(|| env_nonempty("LOGNAME"))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_input() {
        let err = duration("1x").err().map(|err| err.to_string());
        assert!(err.is_some_and(|err| err.contains("\"1x\"")));
        let err = statuses(&["done".into()]).err().map(|err| err.to_string());
        assert!(err.is_some_and(|err| err.contains("unknown status \"done\"")));
    }
}
