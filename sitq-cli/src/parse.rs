//! Values typed on the command line: durations, instants, states, ids.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sitq::{TaskId, TaskStatus};

use crate::error::{CliError, Result};

/// A duration like `90s`, `30m`, `1h30m`, `7d` or `250ms`; a bare number is
/// seconds.
pub fn duration(text: &str) -> Result<Duration> {
    let bad = || {
        CliError::new(format!(
            "bad duration {text:?}: use a number with a unit, e.g. 30s, 15m, 1h30m, 7d (units ms, s, m, h, d, w)"
        ))
    };
    let text_trimmed = text.trim();
    if text_trimmed.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text_trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text_trimmed;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let part = number.checked_mul(unit_ms).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// An instant: a duration ago (`1h`) or an RFC 3339 time.
pub fn since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(at.with_timezone(&Utc));
    }
    let ago = duration(text).map_err(|_| {
        CliError::new(format!(
            "bad time {text:?}: use a duration ago (30m, 1h, 2d) or an RFC 3339 time (2026-01-31T12:00:00Z)"
        ))
    })?;
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|ago| now.checked_sub_signed(ago))
        .ok_or_else(|| CliError::new(format!("bad time {text:?}: too long ago")))
}

/// States given as repeated options and/or comma lists.
pub fn statuses(texts: &[String]) -> Result<Vec<TaskStatus>> {
    let mut statuses = Vec::new();
    for text in texts {
        for part in text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let status = part.parse::<TaskStatus>().map_err(|_| {
                let known: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
                CliError::new(format!(
                    "unknown status {part:?}: use one of {}",
                    known.join(", ")
                ))
            })?;
            if !statuses.contains(&status) {
                statuses.push(status);
            }
        }
    }
    Ok(statuses)
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
    fn durations() {
        assert_eq!(duration("90").ok(), Some(Duration::from_secs(90)));
        assert_eq!(duration("1h30m").ok(), Some(Duration::from_secs(5400)));
        assert_eq!(duration("250ms").ok(), Some(Duration::from_millis(250)));
        assert_eq!(duration("7d").ok(), Some(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "1x", "1.5h", "-1h", "99999999999999999999w"] {
            assert!(duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn status_lists() {
        let parsed = statuses(&["failed,pending".into(), "failed".into()]).ok();
        assert_eq!(parsed, Some(vec![TaskStatus::Failed, TaskStatus::Pending]));
        assert!(statuses(&["done".into()]).is_err());
    }
}
