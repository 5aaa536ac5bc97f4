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
    // Only a well-formed envelope: other bytes starting 0xc1 are corrupt.
    if let Some(key) = crate::encryption::sealed_key_id(bytes).filter(|key| *key != "?") {
        return Err(Error::Encryption(format!(
            "{what} is sealed with key {key:?} and was not opened; connect with ConnectOptions::encryption and a keyring holding that key"
        )));
    }
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

/// Encodes JSON as a stored value, for enqueueing by name from another
/// language: an object becomes a map with named fields (what a task's
/// arguments are), an array a sequence (a task's arguments by position);
/// integers stay integers. `what` names it in the error.
pub fn from_json(value: &serde_json::Value, what: &str) -> Result<Vec<u8>> {
    encode(value, what)
}

/// An encoded value (a task's stored arguments or result) as JSON, read
/// without the task's Rust types: for the admin tools, and for people.
///
/// Arguments are maps with named fields, so they read as JSON objects.
/// MessagePack has what JSON lacks, shown so: binary data as an array of
/// byte values, a map key that is not a string as its JSON text (`"1"`,
/// `"[1,2]"`), a non-finite float as the string `"NaN"`, `"inf"` or
/// `"-inf"`, an extension as `{"$ext": type, "data": [bytes]}`. `what` names
/// the value in the error for bytes that are not one MessagePack value.
pub fn to_json(bytes: &[u8], what: &str) -> Result<serde_json::Value> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value(&mut rest).map_err(|source| Error::Decode {
        what: what.to_owned(),
        source: source.into(),
    })?;
    if !rest.is_empty() {
        return Err(Error::Decode {
            what: what.to_owned(),
            source: format!("{} bytes after the value", rest.len()).into(),
        });
    }
    Ok(json_of(value))
}

fn json_of(value: rmpv::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        rmpv::Value::Nil => Json::Null,
        rmpv::Value::Boolean(b) => Json::Bool(b),
        rmpv::Value::Integer(n) => match (n.as_u64(), n.as_i64()) {
            (Some(n), _) => Json::from(n),
            (None, Some(n)) => Json::from(n),
            (None, None) => Json::Null,
        },
        rmpv::Value::F32(f) => float(f64::from(f)),
        rmpv::Value::F64(f) => float(f),
        rmpv::Value::String(text) => match text.into_str() {
            Some(text) => Json::String(text),
            // Not UTF-8 (another writer's bytes): shown, not refused.
            None => Json::String("<not UTF-8>".to_owned()),
        },
        rmpv::Value::Binary(bytes) => Json::Array(bytes.into_iter().map(Json::from).collect()),
        rmpv::Value::Array(items) => Json::Array(items.into_iter().map(json_of).collect()),
        rmpv::Value::Map(entries) => Json::Object(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let key = match key {
                        rmpv::Value::String(text) => {
                            text.into_str().unwrap_or_else(|| "<not UTF-8>".to_owned())
                        }
                        other => json_of(other).to_string(),
                    };
                    (key, json_of(value))
                })
                .collect(),
        ),
        rmpv::Value::Ext(kind, data) => serde_json::json!({ "$ext": kind, "data": data }),
    }
}

fn float(f: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(f) {
        Some(number) => serde_json::Value::Number(number),
        None if f.is_nan() => serde_json::Value::String("NaN".to_owned()),
        None if f > 0.0 => serde_json::Value::String("inf".to_owned()),
        None => serde_json::Value::String("-inf".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_read_as_a_json_object() -> Result<()> {
        #[derive(serde::Serialize)]
        struct Args {
            to: String,
            retries: u32,
            delta: i64,
            ratio: f64,
            tags: Vec<&'static str>,
            note: Option<String>,
            nested: std::collections::BTreeMap<String, bool>,
        }
        let bytes = encode(
            &Args {
                to: "ops@example.com".into(),
                retries: 3,
                delta: -7,
                ratio: 0.5,
                tags: vec!["a", "b"],
                note: None,
                nested: [("on".to_owned(), true)].into(),
            },
            "arguments",
        )?;
        assert_eq!(
            to_json(&bytes, "arguments")?,
            serde_json::json!({
                "to": "ops@example.com", "retries": 3, "delta": -7, "ratio": 0.5,
                "tags": ["a", "b"], "note": null, "nested": {"on": true}
            })
        );
        Ok(())
    }

    #[test]
    fn what_json_lacks_is_shown_not_refused() -> Result<()> {
        let bytes_value = encode(&serde_bytes_like(), "bytes")?;
        assert_eq!(
            to_json(&bytes_value, "bytes")?,
            serde_json::json!([1, 2, 255])
        );
        let keyed: std::collections::BTreeMap<u8, &str> = [(1, "one")].into();
        assert_eq!(
            to_json(&encode(&keyed, "map")?, "map")?,
            serde_json::json!({"1": "one"})
        );
        assert_eq!(
            to_json(&encode(&f64::NAN, "nan")?, "nan")?,
            serde_json::json!("NaN")
        );
        assert_eq!(
            to_json(&encode(&f64::NEG_INFINITY, "inf")?, "inf")?,
            serde_json::json!("-inf")
        );
        // fixext 1: type 5, one byte of data.
        assert_eq!(
            to_json(&[0xd4, 0x05, 0x2a], "ext")?,
            serde_json::json!({"$ext": 5, "data": [42]})
        );
        Ok(())
    }

    /// `Vec<u8>` as MessagePack binary (bin 8), as a serializer of bytes writes it.
    fn serde_bytes_like() -> Bytes {
        Bytes(vec![1, 2, 255])
    }

    struct Bytes(Vec<u8>);

    impl serde::Serialize for Bytes {
        fn serialize<S: serde::Serializer>(
            &self,
            serializer: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            serializer.serialize_bytes(&self.0)
        }
    }

    #[test]
    fn garbage_and_trailing_bytes_are_decode_errors_naming_what() {
        // A string of 5 bytes with one present.
        let err = to_json(&[0xa5, b'a'], "arguments of task 7").unwrap_err();
        assert!(err.to_string().contains("arguments of task 7"), "{err}");
        let err = to_json(&[0xc0, 0xc0], "result of task 7").unwrap_err();
        assert!(err.to_string().contains("result of task 7"), "{err}");
        let err = to_json(&[], "empty").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

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
