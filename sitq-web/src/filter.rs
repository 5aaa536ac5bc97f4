//! Query strings and path segments as the pages and the API read them: the
//! task list's filters, ids, durations. Empty form fields count as absent.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sitq_core::inspect::{MAX_LIST, parse_since, parse_statuses};
use sitq_core::{TaskFilter, TaskId, TaskStatus, WorkflowId};

use crate::error::WebError;

/// Tasks a list page shows unless `limit` says otherwise.
pub const PAGE_SIZE: usize = 50;

/// The task list's query: `status` (comma list), `queue`, `name`, `since`
/// (a duration ago or an RFC 3339 time), `before` (an id: the next page),
/// `limit`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct TaskQuery {
    /// States, comma-separated.
    #[serde(default)]
    pub status: Option<String>,
    /// One queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// One task name.
    #[serde(default)]
    pub name: Option<String>,
    /// Created at or after.
    #[serde(default)]
    pub since: Option<String>,
    /// Ids below this one.
    #[serde(default)]
    pub before: Option<String>,
    /// How many.
    #[serde(default)]
    pub limit: Option<String>,
}

fn given(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

impl TaskQuery {
    /// The filter, or what is wrong with the query.
    pub fn filter(&self) -> Result<TaskFilter, WebError> {
        let statuses = match given(&self.status) {
            Some(text) => parse_statuses([text]).map_err(|bad| {
                let known: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
                WebError::bad_request(format!(
                    "unknown status {bad:?}: use one of {}",
                    known.join(", ")
                ))
            })?,
            None => Vec::new(),
        };
        let since = given(&self.since)
            .map(|text| {
                parse_since(text, Utc::now()).ok_or_else(|| {
                    WebError::bad_request(format!(
                        "bad time {text:?}: use a duration ago (30m, 1h, 2d) or an RFC 3339 time (2026-01-31T12:00:00Z)"
                    ))
                })
            })
            .transpose()?;
        let before = given(&self.before).map(task_id).transpose()?;
        let limit = match given(&self.limit) {
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|limit| (1..=MAX_LIST).contains(limit))
                .ok_or_else(|| {
                    WebError::bad_request(format!(
                        "bad limit {text:?}: a number from 1 to {MAX_LIST}"
                    ))
                })?,
            None => PAGE_SIZE,
        };
        Ok(TaskFilter {
            statuses,
            queue: given(&self.queue).map(str::to_owned),
            name: given(&self.name).map(str::to_owned),
            since,
            before,
            limit,
        })
    }

    /// This query for the page after the one ending at `last`.
    pub fn next_page(&self, last: TaskId) -> TaskQuery {
        TaskQuery {
            before: Some(last.to_string()),
            ..self.clone()
        }
    }

    /// The query string (without `?`), empty fields left out.
    pub fn encode(&self) -> String {
        let pairs = [
            ("status", &self.status),
            ("queue", &self.queue),
            ("name", &self.name),
            ("since", &self.since),
            ("before", &self.before),
            ("limit", &self.limit),
        ];
        pairs
            .iter()
            .filter_map(|(key, value)| given(value).map(|value| format!("{key}={}", encode(value))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A task id from a path or form.
pub fn task_id(text: &str) -> Result<TaskId, WebError> {
    text.trim()
        .parse::<TaskId>()
        .map_err(|_| WebError::bad_request(format!("bad task id {text:?}: a task id is a number")))
}

/// A workflow id from a path or form.
pub fn workflow_id(text: &str) -> Result<WorkflowId, WebError> {
    text.trim().parse::<i64>().map(WorkflowId).map_err(|_| {
        WebError::bad_request(format!(
            "bad workflow id {text:?}: a workflow id is a number"
        ))
    })
}

/// Percent-encodes a query value or path segment.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_become_filters() {
        let query = TaskQuery {
            status: Some("failed, pending".into()),
            queue: Some(" ".into()),
            name: Some("mail::send".into()),
            since: Some("1h".into()),
            before: Some("120".into()),
            limit: None,
        };
        let filter = query.filter().expect("filter");
        assert_eq!(
            filter.statuses,
            vec![TaskStatus::Failed, TaskStatus::Pending]
        );
        assert_eq!(filter.queue, None);
        assert_eq!(filter.before, Some(TaskId(120)));
        assert_eq!(filter.limit, PAGE_SIZE);
        assert_eq!(
            query.next_page(TaskId(7)).encode(),
            "status=failed%2C%20pending&name=mail%3A%3Asend&since=1h&before=7"
        );
    }

    #[test]
    fn bad_queries_say_why() {
        let bad = |query: TaskQuery| query.filter().err().map(|err| err.message);
        let message = bad(TaskQuery {
            status: Some("done".into()),
            ..TaskQuery::default()
        });
        assert!(message.is_some_and(|m| m.contains("unknown status \"done\"")));
        let message = bad(TaskQuery {
            limit: Some("0".into()),
            ..TaskQuery::default()
        });
        assert!(message.is_some_and(|m| m.contains("bad limit")));
        assert!(task_id("x1").is_err());
    }
}
