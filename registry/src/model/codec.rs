//! The one binary encoding of what a node stores and what it sends its peers: Raft log
//! entries, Raft messages, forwarded writes, mirror rows (and so snapshot images), and
//! the small metadata values beside them.
//!
//! MessagePack through serde (`rmp-serde`), with structs as maps of field names:
//! - serde, because openraft's messages and entries are serde types; a schema of our
//!   own (prost) would need a hand-kept copy of each of them;
//! - self-describing with names, because records skip absent optional fields
//!   (`skip_serializing_if`) and gain fields over time, which positional encodings
//!   (bincode, postcard, MessagePack arrays) cannot read back;
//! - about half the size of JSON and several times cheaper to write and read (no
//!   escaping, no number formatting, byte strings as they are).
//!
//! Byte fields that must be raw bytes here (rather than a list of numbers) say so with
//! `serde_bytes`, or with a human-readable switch where they are also written as JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encoding: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("decoding: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
}

pub type Result<T> = std::result::Result<T, CodecError>;

/// Encodes `value`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// Appends the encoding of `value` to `out` (no intermediate buffer).
pub fn write_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    Ok(rmp_serde::encode::write_named(out, value)?)
}

/// Decodes a value written by `to_vec`. Trailing bytes are an error: a value is
/// always stored or sent on its own, so extra bytes mean a damaged or foreign value.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = rmp_serde::Deserializer::new(bytes);
    let value = T::deserialize(&mut de)?;
    let rest = de.into_inner().len();
    if rest != 0 {
        return Err(CodecError::Decode(rmp_serde::decode::Error::Syntax(
            format!("{rest} bytes after the value"),
        )));
    }
    Ok(value)
}

/// `#[serde(with = "codec::bytes_or_base64")]` for byte fields that are written both
/// here (as raw bytes) and in JSON (as base64 text: a JSON array of numbers would be
/// about four times larger).
pub mod bytes_or_base64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
        } else {
            s.serialize_bytes(v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(serde::de::Error::custom)
        } else {
            serde_bytes::deserialize(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct WithBytes {
        name: String,
        #[serde(with = "bytes_or_base64")]
        value: Vec<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }

    #[test]
    fn values_round_trip_with_skipped_optional_fields_and_raw_bytes() {
        let value = WithBytes {
            name: "web".into(),
            value: (0..=255).collect(),
            note: None,
        };
        let bytes = to_vec(&value).unwrap();
        assert_eq!(from_slice::<WithBytes>(&bytes).unwrap(), value);
        // Raw bytes: 256 payload bytes plus small framing, not a list of numbers
        // (which would take about 384) or base64 (344).
        assert!(bytes.len() < 256 + 40, "{} bytes", bytes.len());
        // JSON still carries the bytes as base64.
        let json = serde_json::to_string(&value).unwrap();
        assert!(json.contains("\"AAECAwQF"), "{json}");
        assert_eq!(serde_json::from_str::<WithBytes>(&json).unwrap(), value);
    }

    #[test]
    fn damaged_values_are_refused_not_misread() {
        let bytes = to_vec(&WithBytes {
            name: "web".into(),
            value: vec![1, 2, 3],
            note: Some("n".into()),
        })
        .unwrap();
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            let err = from_slice::<WithBytes>(&bytes[..cut]).unwrap_err();
            assert!(err.to_string().starts_with("decoding"), "{err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let err = from_slice::<WithBytes>(&longer).unwrap_err();
        assert!(err.to_string().contains("1 bytes after the value"), "{err}");
        assert!(from_slice::<WithBytes>(b"{\"name\":\"web\"}").is_err());
    }
}
