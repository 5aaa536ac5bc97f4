//! The codec: how arguments and results are stored.
//!
//! MessagePack (via `rmp-serde`) with named fields, so a task's arguments may be
//! reordered, and fields with `#[serde(default)]` added, without breaking tasks
//! already queued.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Encodes `value`; `what` names it in the error.
pub fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|source| Error::Encode {
        what: what.to_owned(),
        source: source.into(),
    })
}

/// Decodes `bytes` into a `T`; `what` names it in the error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|source| Error::Decode {
        what: what.to_owned(),
        source: source.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_decode_error_naming_what() {
        let err = decode::<(i64, i64)>(&[0xc1, 0xff], "arguments of add").unwrap_err();
        assert!(err.to_string().contains("arguments of add"), "{err}");
    }

    #[test]
    fn round_trip() -> Result<()> {
        let bytes = encode(&("a", 1u8), "pair")?;
        assert_eq!(decode::<(String, u8)>(&bytes, "pair")?, ("a".to_owned(), 1));
        Ok(())
    }
}
