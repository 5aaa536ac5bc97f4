//! Unique tasks: the key a task holds while it blocks duplicates, and the
//! rule both backends enforce.
//!
//! A key is scoped by task name: the database's unique index is on
//! `(name, unique_key)`, so two task types may use the same explicit key
//! without clashing. A row *holds* its key while its `unique_key` column is
//! set; it *blocks* a new enqueue of that key while it is pending, blocked
//! or running, or succeeded less than its window ago ([`holder_blocks`]).
//! Finishing as failed or cancelled (and succeeding without a window)
//! clears the column; a holder that no longer blocks (its window ran out)
//! is released by the next enqueue of its key, in the same transaction as
//! the insert that takes the key over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::record::{TaskId, TaskStatus};
use crate::{Error, Result};

/// The longest explicit unique key, in bytes: keys live in a database index,
/// whose entries have a size limit (about 2.7 kB on PostgreSQL).
pub const MAX_UNIQUE_KEY_BYTES: usize = 1024;

/// The unique key a new task takes, and how long it keeps it after succeeding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UniqueKey {
    /// The key, unique among tasks of the same name.
    pub key: String,
    /// How long after succeeding the task still blocks its key; `None` (or
    /// zero): not at all once it succeeded.
    pub window: Option<Duration>,
}

impl UniqueKey {
    /// The key of a task unique by its arguments: `sha256:` and the hex
    /// SHA-256 of the encoded payload.
    ///
    /// SHA-256 is collision resistant: two different payloads sharing a key
    /// would take about 2^128 tries to find, so the hash may stand in for
    /// the arguments (whose encoding may be up to the payload limit, too
    /// long for an index). Equal arguments encode equally with the default
    /// codec as long as they contain no `HashMap`/`HashSet` (whose order
    /// varies from run to run; use `BTreeMap`/`BTreeSet`).
    pub fn of_arguments(payload: &[u8], window: Option<Duration>) -> UniqueKey {
        let digest = Sha256::digest(payload);
        let mut key = String::with_capacity(7 + 2 * digest.len());
        key.push_str("sha256:");
        for byte in digest.iter() {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        UniqueKey { key, window }
    }

    /// An explicit key, checked: not empty, at most [`MAX_UNIQUE_KEY_BYTES`].
    pub fn explicit(key: String, window: Option<Duration>) -> Result<UniqueKey> {
        if key.is_empty() {
            return Err(Error::InvalidOptions(
                "the unique key is empty; leave unique_key out for no key".into(),
            ));
        }
        if key.len() > MAX_UNIQUE_KEY_BYTES {
            return Err(Error::InvalidOptions(format!(
                "the unique key is {} bytes, over the limit of {MAX_UNIQUE_KEY_BYTES}; \
                 use a shorter key (e.g. a hash of it)",
                key.len()
            )));
        }
        Ok(UniqueKey { key, window })
    }

    /// The window in whole microseconds as stored (capped far beyond any
    /// real use); `None` when there is none or it is zero.
    pub fn window_micros(&self) -> Option<i64> {
        const CAP: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        self.window
            .filter(|window| !window.is_zero())
            .map(|window| i64::try_from(window.min(CAP).as_micros()).unwrap_or(i64::MAX))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether a row holding a key blocks a new enqueue of it at `now`: while it
/// is pending, blocked or running, and until `window` after it succeeded.
/// Failed and cancelled tasks never block.
pub fn holder_blocks(
    status: TaskStatus,
    finished_at: Option<DateTime<Utc>>,
    window: Option<Duration>,
    now: DateTime<Utc>,
) -> bool {
    match status {
        TaskStatus::Pending | TaskStatus::Blocked | TaskStatus::Running => true,
        TaskStatus::Succeeded => match (finished_at, window) {
            (Some(finished_at), Some(window)) => chrono::Duration::from_std(window)
                .ok()
                .and_then(|window| finished_at.checked_add_signed(window))
                .is_none_or(|until| until > now),
            _ => false,
        },
        _ => false,
    }
}

/// What [`Backend::enqueue_unique`](crate::Backend::enqueue_unique) did with one task.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Enqueued {
    /// The new task's id, or the id of the task that holds its key.
    pub id: TaskId,
    /// Whether its key was held, so nothing was stored and `id` is the holder's.
    pub duplicate: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_key_is_the_hex_sha256() {
        let key = UniqueKey::of_arguments(b"abc", None);
        assert_eq!(
            key.key,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn explicit_keys_are_checked() {
        assert!(matches!(
            UniqueKey::explicit(String::new(), None),
            Err(Error::InvalidOptions(_))
        ));
        let long = "k".repeat(MAX_UNIQUE_KEY_BYTES + 1);
        assert!(matches!(
            UniqueKey::explicit(long, None),
            Err(Error::InvalidOptions(_))
        ));
        assert!(UniqueKey::explicit("k".repeat(MAX_UNIQUE_KEY_BYTES), None).is_ok());
    }

    #[test]
    fn who_blocks() {
        let now = Utc::now();
        let hour = Some(Duration::from_secs(3600));
        let before = |secs| Some(now - chrono::Duration::seconds(secs));
        for status in [
            TaskStatus::Pending,
            TaskStatus::Blocked,
            TaskStatus::Running,
        ] {
            assert!(holder_blocks(status, None, None, now));
        }
        assert!(!holder_blocks(TaskStatus::Succeeded, before(1), None, now));
        assert!(holder_blocks(TaskStatus::Succeeded, before(1), hour, now));
        assert!(!holder_blocks(
            TaskStatus::Succeeded,
            before(3601),
            hour,
            now
        ));
        assert!(!holder_blocks(TaskStatus::Failed, before(1), hour, now));
        assert!(!holder_blocks(TaskStatus::Cancelled, before(1), hour, now));
    }

    #[test]
    fn zero_window_is_none() {
        let key = UniqueKey::of_arguments(b"", Some(Duration::ZERO));
        assert_eq!(key.window_micros(), None);
    }
}
