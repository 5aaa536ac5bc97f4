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

/// Decodes `parts`, each one encoded value, as one sequence of them (e.g. a
/// `Vec<T>` from encoded `T`s), without copying them into an intermediate
/// value: the encoded sequence is the array header followed by the parts.
pub fn decode_sequence<T: DeserializeOwned>(parts: &[&[u8]], what: &str) -> Result<T> {
    let len = parts.len();
    let body: usize = parts.iter().map(|part| part.len()).sum();
    let mut bytes = Vec::with_capacity(body + 5);
    // MessagePack array headers: fixarray, array 16, array 32.
    if len < 16 {
        bytes.push(0x90 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        bytes.push(0xdc);
        bytes.extend_from_slice(&len.to_be_bytes());
    } else if let Ok(len) = u32::try_from(len) {
        bytes.push(0xdd);
        bytes.extend_from_slice(&len.to_be_bytes());
    } else {
        return Err(Error::Decode {
            what: what.to_owned(),
            source: format!("{len} values are too many for one sequence").into(),
        });
    }
    for part in parts {
        bytes.extend_from_slice(part);
    }
    decode(&bytes, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_decode_as_one_sequence() -> Result<()> {
        for len in [0usize, 1, 15, 16, 300, 70_000] {
            let values: Vec<String> = (0..len).map(|i| format!("v{i}")).collect();
            let encoded = values
                .iter()
                .map(|value| encode(value, "value"))
                .collect::<Result<Vec<_>>>()?;
            let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            assert_eq!(
                decode_sequence::<Vec<String>>(&parts, "list")?,
                values,
                "{len} values"
            );
        }
        Ok(())
    }

    #[test]
    fn a_sequence_of_the_wrong_type_is_a_decode_error() -> Result<()> {
        let part = encode("text", "value")?;
        let err = decode_sequence::<Vec<u32>>(&[&part], "the list").unwrap_err();
        assert!(err.to_string().contains("the list"), "{err}");
        Ok(())
    }

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
