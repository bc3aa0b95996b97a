//! A watch stream message as the server sends it: a `WatchResponse` to encode, or one
//! already encoded. Each index's changes are encoded once and the bytes shared by every
//! watcher that selects them (issue 13: at 10,000 watchers of one service, converting
//! and encoding every change per watcher was most of the fan-out's work), so the
//! server's generated code (`build.rs`) sends this type where clients receive
//! `pb::WatchResponse`: on the wire the two are the same.
//!
//! Protobuf makes the assembly cheap: a repeated field is the concatenation of its
//! encoded elements, so a `WatchChanges` is the encoded `RecordChange`s one after the
//! other, each with its key and length (`change_element`), and a Changes message is
//! its index, a key, a length and that body (`changes_message`).

use bytes::{Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::pb;

/// `WatchResponse.index`.
const INDEX_FIELD: u32 = 1;
/// `WatchResponse.changes` (in the `event` oneof).
const CHANGES_FIELD: u32 = 3;
/// `WatchChanges.changes`.
const CHANGE_ELEMENT_FIELD: u32 = 1;

/// One message of a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchFrame {
    /// A message encoded when it is sent (snapshots, progress, resets).
    Message(pb::WatchResponse),
    /// The encoding of a `WatchResponse` (without a length prefix).
    Encoded(Bytes),
}

impl Default for WatchFrame {
    fn default() -> Self {
        Self::Message(pb::WatchResponse::default())
    }
}

impl From<pb::WatchResponse> for WatchFrame {
    fn from(msg: pb::WatchResponse) -> Self {
        Self::Message(msg)
    }
}

impl WatchFrame {
    /// The message this frame carries (decoding an encoded one).
    pub fn to_message(&self) -> Result<pb::WatchResponse, DecodeError> {
        match self {
            Self::Message(m) => Ok(m.clone()),
            Self::Encoded(b) => pb::WatchResponse::decode(b.clone()),
        }
    }
}

impl Message for WatchFrame {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        match self {
            Self::Message(m) => m.encode_raw(buf),
            Self::Encoded(b) => buf.put_slice(b),
        }
    }

    /// Servers only encode frames; decoding one (tests, tools) reads a message.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl bytes::Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        if let Self::Encoded(b) = self {
            *self = Self::Message(pb::WatchResponse::decode(b.clone())?);
        }
        match self {
            Self::Message(m) => m.merge_field(tag, wire_type, buf, ctx),
            Self::Encoded(_) => unreachable!("made a message above"),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Message(m) => m.encoded_len(),
            Self::Encoded(b) => b.len(),
        }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// One change encoded as an element of `WatchChanges.changes`: key, length, body.
pub fn change_element(change: &pb::RecordChange) -> Bytes {
    let len = change.encoded_len();
    let mut buf = BytesMut::with_capacity(1 + encoded_len_varint(len as u64) + len);
    encode_key(CHANGE_ELEMENT_FIELD, WireType::LengthDelimited, &mut buf);
    encode_varint(len as u64, &mut buf);
    change.encode_raw(&mut buf);
    buf.freeze()
}

/// The encoding of `WatchResponse { index, changes: WatchChanges { elements… } }`,
/// from elements made by `change_element`.
pub fn changes_message<'a>(index: u64, elements: impl Iterator<Item = &'a Bytes> + Clone) -> Bytes {
    let body: usize = elements.clone().map(Bytes::len).sum();
    let mut buf = BytesMut::with_capacity(2 * 10 + 2 + body);
    // proto3 leaves a zero out; an index is never zero here, but stay exact.
    if index != 0 {
        encode_key(INDEX_FIELD, WireType::Varint, &mut buf);
        encode_varint(index, &mut buf);
    }
    encode_key(CHANGES_FIELD, WireType::LengthDelimited, &mut buf);
    encode_varint(body as u64, &mut buf);
    for e in elements {
        buf.extend_from_slice(e);
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes() -> Vec<pb::RecordChange> {
        use pb::record_change::Change;
        let instance = pb::Instance {
            service: "web".into(),
            id: "web-1".into(),
            address: "10.0.0.1".into(),
            port: 8080,
            tags: vec!["a".into(), "b".into()],
            meta: [("k".to_string(), "v".repeat(300))].into(),
            ..Default::default()
        };
        vec![
            pb::RecordChange {
                change: Some(Change::Upsert(instance)),
            },
            pb::RecordChange {
                change: Some(Change::Remove(pb::InstanceKey {
                    service: "web".into(),
                    id: "web-2".into(),
                })),
            },
            pb::RecordChange {
                change: Some(Change::ConfigRemove("app/x".into())),
            },
            // An empty change (no oneof set) still encodes as an element.
            pb::RecordChange::default(),
        ]
    }

    #[test]
    fn assembled_changes_are_byte_for_byte_what_prost_encodes() {
        let all = changes();
        for index in [0, 1, 127, 128, 1 << 40] {
            for n in 0..=all.len() {
                let picked = &all[..n];
                let elements: Vec<Bytes> = picked.iter().map(change_element).collect();
                let assembled = changes_message(index, elements.iter());
                let want = pb::WatchResponse {
                    index,
                    event: Some(pb::watch_response::Event::Changes(pb::WatchChanges {
                        changes: picked.to_vec(),
                    })),
                };
                assert_eq!(
                    assembled.as_ref(),
                    want.encode_to_vec(),
                    "index {index}, {n} changes"
                );
                let frame = WatchFrame::Encoded(assembled);
                assert_eq!(frame.encoded_len(), want.encoded_len());
                assert_eq!(frame.encode_to_vec(), want.encode_to_vec());
                assert_eq!(frame.to_message().unwrap(), want);
            }
        }
    }

    #[test]
    fn a_frame_decodes_as_the_message_it_carries() {
        let want = pb::WatchResponse {
            index: 9,
            event: Some(pb::watch_response::Event::Reset(pb::WatchReset {
                reason: 2,
            })),
        };
        let frame = WatchFrame::decode(want.encode_to_vec().as_slice()).unwrap();
        assert_eq!(frame, WatchFrame::Message(want.clone()));
        assert_eq!(
            WatchFrame::from(want.clone()).encode_to_vec(),
            want.encode_to_vec()
        );
    }
}
