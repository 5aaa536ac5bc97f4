//! Tasks shared by the `producer` and `worker` examples: one crate that both
//! binaries link, which is how a real deployment shares task definitions.

use std::fmt;

/// Why a thumbnail could not be made.
#[derive(Debug)]
pub struct ThumbnailError(String);

impl fmt::Display for ThumbnailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ThumbnailError {}

/// Pretends to make a thumbnail; fails (and is retried) for empty paths.
#[sitq::task(queue = "images", max_attempts = 3, timeout = "30s", backoff = "100ms")]
pub async fn thumbnail(path: String, width: u32) -> Result<String, ThumbnailError> {
    if path.is_empty() {
        return Err(ThumbnailError("empty path".into()));
    }
    Ok(format!("{path}@{width}w.jpg"))
}

/// A CPU-bound task written as a plain fn: the worker runs it on the blocking pool.
#[sitq::task]
pub fn checksum(data: Vec<u8>) -> u64 {
    // FNV-1a: cheap, deterministic, good enough for an example.
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
