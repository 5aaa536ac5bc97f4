//! The audit log: admin actions (retry, cancel, purge, pause, resume,
//! drain, enqueue by name) with who did them and when.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The most bytes of an audit entry's `detail`.
pub const MAX_AUDIT_DETAIL: usize = 4096;

/// An admin action to record ([`Backend::record_audit`](crate::Backend::record_audit)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// Who: the OS user or the actor given to the tool.
    pub actor: String,
    /// What, e.g. `retry`, `cancel`, `purge`, `pause`.
    pub action: String,
    /// On what, e.g. `task 42`, `queue mail`, `worker host:12:ab`.
    pub target: String,
    /// More, e.g. the outcome or the purge's cut-off.
    pub detail: Option<String>,
}

/// A recorded admin action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Its id, increasing.
    pub id: i64,
    /// When (the database's clock).
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// More.
    pub detail: Option<String>,
}
