//! The fast path's view of the DNS wire format: recognises the plain queries whose
//! answers the cache may serve (one IN question with an uncompressed name, and at most
//! an option-less EDNS version 0 OPT record), builds their cache key, and turns a
//! cached response into the response to a new query by patching the ID, the echoed
//! flags and the question name's exact case. Anything else goes the full path.

use crate::handler::udp_limit_for;

/// Size of the DNS header.
const HEADER_LEN: usize = 12;
/// Longest name in wire form (RFC 1035 §3.1).
const MAX_NAME_LEN: usize = 255;
/// Key bytes after the name: query type (2), UDP size limit (2), EDNS flag (1).
const KEY_TAIL_LEN: usize = 5;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// Header flag bits the response echoes from the query (`Metadata::response_from_request`):
/// RD in the third byte, CD in the fourth.
const RD_BIT: u8 = 0x01;
const CD_BIT: u8 = 0x10;
const TC_BIT: u8 = 0x02;
const QR_BIT: u8 = 0x80;
/// Response codes a cached answer may carry: NOERROR (answers and NODATA) and NXDOMAIN.
/// The rest (SERVFAIL, REFUSED, FORMERR, ...) are cheap or must not outlive the moment.
const RCODE_NOERROR: u8 = 0;
const RCODE_NXDOMAIN: u8 = 3;

/// The cache key of a plain query: its lowercased question name, type, the UDP size the
/// answer is fitted to, and whether the answer carries an OPT record. Held in a fixed
/// buffer so a lookup allocates nothing.
pub(crate) struct Key {
    bytes: [u8; MAX_NAME_LEN + KEY_TAIL_LEN],
    len: usize,
}

impl Key {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A query the fast path may answer.
pub(crate) struct PlainQuery {
    pub key: Key,
    /// Length of the question name in wire form; the name starts right after the header.
    pub name_len: usize,
}

fn u16_at(packet: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
}

/// Recognises a plain query, or `None` for anything the full path must see: responses,
/// opcodes other than QUERY, other than exactly one question, compressed or malformed
/// names, classes other than IN, records other than one OPT, EDNS versions above 0,
/// EDNS options, trailing bytes.
pub(crate) fn plain_query(packet: &[u8]) -> Option<PlainQuery> {
    let flags = *packet.get(2)?;
    // QR must be 0 (a query) and the opcode QUERY (0).
    if flags & (QR_BIT | 0x78) != 0 {
        return None;
    }
    let counts = [
        u16_at(packet, 4)?,
        u16_at(packet, 6)?,
        u16_at(packet, 8)?,
        u16_at(packet, 10)?,
    ];
    if counts[0] != 1 || counts[1] != 0 || counts[2] != 0 || counts[3] > 1 {
        return None;
    }
    let mut key = Key {
        bytes: [0; MAX_NAME_LEN + KEY_TAIL_LEN],
        len: 0,
    };
    let mut at = HEADER_LEN;
    loop {
        let label = usize::from(*packet.get(at)?);
        // 0x40 and above are pointers or reserved label types: the full path decides.
        if label > 63 {
            return None;
        }
        let end = at + 1 + label;
        if end - HEADER_LEN > MAX_NAME_LEN {
            return None;
        }
        let bytes = packet.get(at..end)?;
        for (slot, byte) in key.bytes[at - HEADER_LEN..end - HEADER_LEN]
            .iter_mut()
            .zip(bytes)
        {
            *slot = byte.to_ascii_lowercase();
        }
        at = end;
        if label == 0 {
            break;
        }
    }
    let name_len = at - HEADER_LEN;
    let qtype = u16_at(packet, at)?;
    if u16_at(packet, at + 2)? != CLASS_IN {
        return None;
    }
    at += 4;
    let edns_payload = if counts[3] == 1 {
        // The OPT record: root owner, type 41, class = payload size, TTL = extended
        // RCODE, version, flags; no RDATA (no options).
        if *packet.get(at)? != 0 || u16_at(packet, at + 1)? != TYPE_OPT {
            return None;
        }
        let payload = u16_at(packet, at + 3)?;
        let (ext_rcode, version) = (*packet.get(at + 5)?, *packet.get(at + 6)?);
        if ext_rcode != 0 || version != 0 || u16_at(packet, at + 9)? != 0 {
            return None;
        }
        at += 11;
        Some(payload)
    } else {
        None
    };
    if at != packet.len() {
        return None;
    }
    let limit = udp_limit_for(edns_payload);
    let tail = [
        qtype.to_be_bytes()[0],
        qtype.to_be_bytes()[1],
        limit.to_be_bytes()[0],
        limit.to_be_bytes()[1],
        u8::from(edns_payload.is_some()),
    ];
    key.bytes[name_len..name_len + KEY_TAIL_LEN].copy_from_slice(&tail);
    key.len = name_len + KEY_TAIL_LEN;
    Some(PlainQuery { key, name_len })
}

/// How a full-path response to a plain query may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cacheable {
    /// Not at all (an error code, or not the shape expected).
    No,
    /// The same for every query at this index (at most one answer record, not cut).
    Fixed,
    /// In a per-query weighted order: keep several orders.
    Ordered,
}

/// Whether `response`, the full path's answer to the plain query `query` (with
/// question name length `name_len`), may be cached, and how.
pub(crate) fn cacheable(query: &[u8], response: &[u8], name_len: usize) -> Cacheable {
    let question = HEADER_LEN..HEADER_LEN + name_len;
    let (Some(asked), Some(echoed)) = (query.get(question.clone()), response.get(question)) else {
        return Cacheable::No;
    };
    let rcode = response[3] & 0x0f;
    let shaped = response[2] & QR_BIT != 0
        && u16_at(response, 4) == Some(1)
        && (rcode == RCODE_NOERROR || rcode == RCODE_NXDOMAIN)
        && asked == echoed;
    if !shaped {
        return Cacheable::No;
    }
    let truncated = response[2] & TC_BIT != 0;
    match u16_at(response, 6) {
        Some(answers) if answers <= 1 && !truncated => Cacheable::Fixed,
        Some(_) => Cacheable::Ordered,
        None => Cacheable::No,
    }
}

/// The form a response is stored in: ID 0, RD and CD clear, the question name
/// lowercased (length bytes are below 64, so lowercasing leaves them alone).
pub(crate) fn normalise(response: &[u8], name_len: usize) -> Box<[u8]> {
    let mut stored = response.to_vec();
    stored[0] = 0;
    stored[1] = 0;
    stored[2] &= !RD_BIT;
    stored[3] &= !CD_BIT;
    stored[HEADER_LEN..HEADER_LEN + name_len].make_ascii_lowercase();
    stored.into_boxed_slice()
}

/// Writes into `out` the response to `query` made from the stored response `cached`:
/// the query's ID, its RD and CD flags, and its question name byte for byte, so a
/// resolver that randomises case (0x20 encoding) finds its own spelling. Name
/// compression points answer owners at the question, so they echo the case too.
pub(crate) fn patch(cached: &[u8], query: &[u8], name_len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(cached);
    out[..2].copy_from_slice(&query[..2]);
    out[2] = (out[2] & !RD_BIT) | (query[2] & RD_BIT);
    out[3] = (out[3] & !CD_BIT) | (query[3] & CD_BIT);
    let question = HEADER_LEN..HEADER_LEN + name_len;
    out[question.clone()].copy_from_slice(&query[question]);
}

#[cfg(test)]
mod tests {
    use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_server::proto::rr::{DNSClass, Name, RecordType};

    use super::*;

    fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut msg = Message::new(0x1234, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            msg.set_edns(e);
        }
        msg.to_vec().expect("encode")
    }

    #[test]
    fn keys_ignore_case_and_id_but_not_type_or_size() {
        let key = |bytes: &[u8]| plain_query(bytes).expect("plain").key.as_bytes().to_vec();
        let base = key(&query("web.service.waymark.", RecordType::A, None));
        assert_eq!(
            base,
            key(&query("WeB.SERVICE.waymark.", RecordType::A, None))
        );
        assert_ne!(
            base,
            key(&query("web.service.waymark.", RecordType::SRV, None))
        );
        assert_ne!(
            base,
            key(&query("web.service.waymark.", RecordType::A, Some(1232)))
        );
        // Sizes that fit answers to the same limit share a key.
        assert_eq!(
            key(&query("web.service.waymark.", RecordType::A, Some(4096))),
            key(&query("web.service.waymark.", RecordType::A, Some(1232)))
        );
        assert_eq!(
            key(&query("web.service.waymark.", RecordType::A, Some(100))),
            key(&query("web.service.waymark.", RecordType::A, Some(512)))
        );
    }

    #[test]
    fn only_plain_queries_qualify() {
        let plain = query("web.service.waymark.", RecordType::A, Some(1232));
        assert!(plain_query(&plain).is_some());
        assert!(
            plain_query(&plain[..plain.len() - 1]).is_none(),
            "cut short"
        );
        let mut trailing = plain.clone();
        trailing.push(0);
        assert!(plain_query(&trailing).is_none(), "trailing bytes");
        let mut response = plain.clone();
        response[2] |= QR_BIT;
        assert!(plain_query(&response).is_none(), "a response");
        let mut notify = plain.clone();
        notify[2] |= 4 << 3;
        assert!(plain_query(&notify).is_none(), "opcode NOTIFY");

        let mut msg = Message::new(1, MessageType::Query, OpCode::Query);
        let mut chaos = Query::query(
            Name::from_ascii("web.service.waymark.").expect("name"),
            RecordType::A,
        );
        chaos.set_query_class(DNSClass::CH);
        msg.add_query(chaos);
        assert!(
            plain_query(&msg.to_vec().expect("encode")).is_none(),
            "class CH"
        );

        let mut two = Message::new(1, MessageType::Query, OpCode::Query);
        for name in ["a.service.waymark.", "b.service.waymark."] {
            two.add_query(Query::query(
                Name::from_ascii(name).expect("name"),
                RecordType::A,
            ));
        }
        assert!(
            plain_query(&two.to_vec().expect("encode")).is_none(),
            "two questions"
        );

        let mut with_option = Message::new(1, MessageType::Query, OpCode::Query);
        with_option.add_query(Query::query(
            Name::from_ascii("web.service.waymark.").expect("name"),
            RecordType::A,
        ));
        let mut e = Edns::new();
        e.options_mut()
            .insert(hickory_server::proto::rr::rdata::opt::EdnsOption::Unknown(
                10,
                vec![1, 2, 3, 4, 5, 6, 7, 8],
            ));
        with_option.set_edns(e);
        assert!(
            plain_query(&with_option.to_vec().expect("encode")).is_none(),
            "an EDNS option (cookie)"
        );

        let mut version1 = plain.clone();
        let opt_version = version1.len() - 5;
        version1[opt_version] = 1;
        assert!(plain_query(&version1).is_none(), "EDNS version 1");
    }

    #[test]
    fn patch_echoes_id_flags_and_case() {
        let asked = query("WeB.Service.WAYMARK.", RecordType::A, None);
        let parsed = plain_query(&asked).expect("plain");
        // A stand-in response: the query itself with QR set (same question layout).
        let mut response = asked.clone();
        response[2] |= QR_BIT;
        let stored = normalise(&response, parsed.name_len);
        assert_eq!(&stored[..2], &[0, 0]);
        assert_eq!(stored[2] & RD_BIT, 0);
        assert_eq!(&stored[13..16], b"web");
        let mut out = Vec::new();
        patch(&stored, &asked, parsed.name_len, &mut out);
        assert_eq!(out, response);
    }
}
