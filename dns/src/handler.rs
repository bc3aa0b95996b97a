//! The hickory `RequestHandler` (the full path): checks the request (opcode, EDNS
//! version, class, domain, staleness), builds the answer from the catalog view, and
//! fits UDP answers into the client's size limit, setting TC only when answer data was
//! cut. `Handler::answer_datagram` runs it on raw bytes as hickory's server would, for
//! the UDP loop (`udp.rs`) and the fuzz target.

use std::iter;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_server::net::runtime::{Time, TokioTime};
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{DNSClass, Record, RecordType};
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::proto::ProtoError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tracing::{debug, warn};

use crate::answer::{answer, Answer};
use crate::catalog::CatalogView;
use crate::config::{ConfigError, DnsConfig, Zone};
use crate::name::parse;

/// Largest UDP response we send, whatever a client advertises: the DNS Flag Day 2020
/// value, which avoids IP fragmentation on ordinary paths. Larger answers are cut with
/// TC set and clients retry over TCP, which returns everything.
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// UDP limit without EDNS (RFC 1035 §4.2.1).
pub const PLAIN_UDP_PAYLOAD: u16 = 512;
/// Wire size of our OPT record (root owner, type, class, TTL, empty RDATA); it must
/// still fit after the trimmed sections.
const OPT_RECORD_LEN: u16 = 11;

pub(crate) struct Handler {
    zone: Zone,
    view: Arc<dyn CatalogView>,
}

impl Handler {
    pub fn new(zone: Zone, view: Arc<dyn CatalogView>) -> Self {
        Self { zone, view }
    }

    /// Whether this node may answer at all now (its last leader contact is within
    /// `max_stale`); when not, every answer is SERVFAIL, cached names included.
    pub(crate) fn fresh(&self) -> bool {
        !too_stale(self.view.last_leader_contact(), self.zone.max_stale)
    }

    /// The catalog index answers are computed at now.
    pub(crate) fn index(&self) -> u64 {
        self.view.index()
    }

    /// Answers one DNS message in wire format exactly as hickory's server does with
    /// this handler (its decoding, FORMERR for a message with a readable header but an
    /// undecodable body, responses dropped against reflection, this handler, then its
    /// encoding) and returns the bytes to send, or `None` where nothing is sent: a
    /// message shorter than a header, or a response.
    pub(crate) async fn answer_datagram(
        &self,
        message: &[u8],
        protocol: Protocol,
    ) -> Option<Vec<u8>> {
        let src = SocketAddr::from((Ipv4Addr::LOCALHOST, 53_000));
        let capture = Capture {
            protocol,
            sent: Arc::default(),
        };
        match Request::from_bytes(message.to_vec(), src, protocol) {
            Ok(request) if request.metadata.message_type == MessageType::Response => return None,
            Ok(request) => {
                self.handle_request::<_, TokioTime>(&request, capture.clone())
                    .await;
            }
            Err(_) => {
                let header = Header::read(&mut BinDecoder::new(message)).ok()?;
                let no_queries = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
                let response = MessageResponseBuilder::new(&no_queries, None)
                    .error_msg(&header.metadata, ResponseCode::FormErr);
                capture.clone().send_response(response).await.ok()?;
            }
        }
        let sent = capture
            .sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        sent
    }

    /// Everything but the send: synchronous, so the thread-local RNG is never held
    /// across an await.
    fn respond(&self, request: &Request) -> (Metadata, Answer) {
        let mut meta = Metadata::response_from_request(&request.metadata);
        let fail = |mut meta: Metadata, rcode| {
            meta.response_code = rcode;
            (
                meta,
                Answer {
                    rcode,
                    ..Answer::default()
                },
            )
        };
        if request.metadata.op_code != OpCode::Query {
            return fail(meta, ResponseCode::NotImp);
        }
        // We speak EDNS version 0 only (RFC 6891 §6.1.3).
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return fail(meta, ResponseCode::BADVERS);
        }
        // Exactly one question, as every real client sends.
        let Ok(info) = request.request_info() else {
            return fail(meta, ResponseCode::FormErr);
        };
        let qtype = info.query.query_type();
        let owner = info.query.original().name();
        // Only IN data lives here, and we are no one's resolver: anything else, and any
        // name outside the domain, is refused.
        if info.query.query_class() != DNSClass::IN {
            return fail(meta, ResponseCode::Refused);
        }
        let Some(query) = parse(owner, &self.zone.domain) else {
            return fail(meta, ResponseCode::Refused);
        };
        // No zone transfers: the zone is computed per query, not a file to copy.
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return fail(meta, ResponseCode::Refused);
        }
        let contact = self.view.last_leader_contact();
        if too_stale(contact, self.zone.max_stale) {
            debug!(
                ?contact,
                max_stale = ?self.zone.max_stale,
                index = self.view.index(),
                "dns: SERVFAIL, replica too stale"
            );
            return fail(meta, ResponseCode::ServFail);
        }
        let ans = answer(
            &self.zone,
            self.view.as_ref(),
            &query,
            owner,
            qtype,
            &mut rand::thread_rng(),
        );
        meta.authoritative = true;
        meta.response_code = ans.rcode;
        (meta, ans)
    }
}

/// Whether a node whose last leader contact was `contact` ago must refuse to answer.
pub(crate) fn too_stale(contact: Option<Duration>, max_stale: Duration) -> bool {
    contact.is_none_or(|c| c > max_stale)
}

/// The UDP size limit for a request: 512 without EDNS; with it, the advertised size
/// (at least 512) capped at `MAX_UDP_PAYLOAD`.
pub(crate) fn udp_limit(edns: Option<&Edns>) -> u16 {
    udp_limit_for(edns.map(Edns::max_payload))
}

/// `udp_limit` from the advertised EDNS payload size (`None` without EDNS).
pub(crate) fn udp_limit_for(edns_payload: Option<u16>) -> u16 {
    edns_payload.map_or(PLAIN_UDP_PAYLOAD, |size| {
        size.clamp(PLAIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD)
    })
}

/// Trims `ans` so the encoded response fits in `limit` bytes (OPT record included if
/// `with_opt`). Cut answers (or authority) set TC, as the client must retry over TCP to
/// get the full set; cut additional records do not (RFC 2181 §9): they are only hints.
/// Encodes with hickory's own encoder, so the count is exact, name compression included.
pub(crate) fn fit(
    queries: &Queries,
    meta: &mut Metadata,
    ans: &mut Answer,
    limit: u16,
    with_opt: bool,
) -> Result<(), ProtoError> {
    let budget = if with_opt {
        limit - OPT_RECORD_LEN
    } else {
        limit
    };
    let mut buf = Vec::with_capacity(usize::from(limit));
    let mut encoder = BinEncoder::new(&mut buf);
    encoder.set_max_size(budget);
    let info = MessageResponseBuilder::new(queries, None)
        .build(
            *meta,
            ans.answers.iter(),
            ans.authority.iter(),
            iter::empty::<&Record>(),
            ans.additional.iter(),
        )
        .destructive_emit(&mut encoder)?;
    let counts = info.counts();
    let kept = |n: u16| usize::from(n);
    if kept(counts.answers) < ans.answers.len() || kept(counts.authorities) < ans.authority.len() {
        meta.truncation = true;
        ans.answers.truncate(kept(counts.answers));
        ans.authority.truncate(kept(counts.authorities));
        ans.additional.clear();
    } else {
        ans.additional.truncate(kept(counts.additionals));
    }
    Ok(())
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        // Answer EDNS with EDNS (RFC 6891 §6.1.1), advertising our own UDP size.
        let edns = request.edns.as_ref().map(|_| {
            let mut e = Edns::new();
            e.set_max_payload(MAX_UDP_PAYLOAD).set_version(0);
            e
        });
        let (mut meta, mut ans) = self.respond(request);
        // Echo the question only when there is exactly one (the only kind answered; the
        // rest get FORMERR). Echoing many could overflow the UDP size: the FORMERR then
        // became a SERVFAIL plus a warning per packet (found by the `dns` fuzz target).
        let no_queries = Queries::read(&mut BinDecoder::new(&[]), 0);
        let queries = match &no_queries {
            Ok(none) if request.queries.len() != 1 => none,
            _ => &request.queries,
        };
        if request.protocol() == Protocol::Udp {
            let limit = udp_limit(request.edns.as_ref());
            if let Err(error) = fit(queries, &mut meta, &mut ans, limit, edns.is_some()) {
                warn!(%error, "dns: encoding the response failed; answering SERVFAIL");
                meta.response_code = ResponseCode::ServFail;
                ans = Answer::default();
            }
        }
        let response = MessageResponseBuilder::new(queries, edns.as_ref()).build(
            meta,
            ans.answers.iter(),
            ans.authority.iter(),
            iter::empty::<&Record>(),
            ans.additional.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                // The client is gone or the socket failed; nothing to answer any more.
                debug!(%error, src = %request.src(), "dns: sending the response failed");
                meta.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: meta,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// Answers one DNS message in wire format as the server answers a UDP or TCP query
/// that misses the fast path (`Handler::answer_datagram`), without sockets, and returns
/// the response bytes. It exists so the fuzz target (`fuzz/fuzz_targets/dns.rs`) can
/// drive the real handler with arbitrary bytes. `Err` only for an invalid `config`;
/// `None` where the server sends nothing: a message shorter than a header, or a
/// response rather than a query (dropped, against reflection).
pub async fn answer_wire(
    config: &DnsConfig,
    view: Arc<dyn CatalogView>,
    message: &[u8],
    over_tcp: bool,
) -> Result<Option<Vec<u8>>, ConfigError> {
    let handler = Handler::new(Zone::new(config)?, view);
    let protocol = if over_tcp {
        Protocol::Tcp
    } else {
        Protocol::Udp
    };
    Ok(handler.answer_datagram(message, protocol).await)
}

/// The full path's stand-in for the socket: keeps the encoded response.
#[derive(Clone)]
struct Capture {
    protocol: Protocol,
    sent: Arc<Mutex<Option<Vec<u8>>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // Encoded as hickory's socket `ResponseHandle` does (its encoder is private to
        // hickory): UDP capped at the response's EDNS size, or 512 without EDNS; where
        // that fails, a bare SERVFAIL with the request's id.
        let id = response.metadata().id;
        let limit = match self.protocol {
            Protocol::Udp => response.edns().map_or(PLAIN_UDP_PAYLOAD, Edns::max_payload),
            _ => u16::MAX,
        };
        let mut buf = Vec::with_capacity(usize::from(PLAIN_UDP_PAYLOAD));
        let mut encoder = BinEncoder::new(&mut buf);
        encoder.set_max_size(limit);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(_) => {
                buf.clear();
                let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: HeaderCounts::default(),
                };
                header.emit(&mut BinEncoder::new(&mut buf))?;
                ResponseInfo::from(header)
            }
        };
        *self.sent.lock().unwrap_or_else(PoisonError::into_inner) = Some(buf);
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use hickory_server::proto::op::{Message, MessageType, Query};
    use hickory_server::proto::rr::Name;

    use super::*;
    use crate::catalog::{DnsInstance, DnsMember, Health};
    use crate::config::DnsConfig;

    #[test]
    fn staleness_bound() {
        let max = Duration::from_secs(5);
        assert!(too_stale(None, max), "never heard from a leader");
        assert!(!too_stale(Some(Duration::ZERO), max));
        assert!(
            !too_stale(Some(max), max),
            "the bound itself is still fresh"
        );
        assert!(too_stale(Some(max + Duration::from_millis(1)), max));
    }

    #[test]
    fn udp_limits() {
        assert_eq!(udp_limit(None), 512);
        let mut e = Edns::new();
        e.set_max_payload(100);
        assert_eq!(udp_limit(Some(&e)), 512);
        e.set_max_payload(1000);
        assert_eq!(udp_limit(Some(&e)), 1000);
        e.set_max_payload(4096);
        assert_eq!(udp_limit(Some(&e)), MAX_UDP_PAYLOAD);
    }

    struct Fake(Mutex<Vec<DnsInstance>>);

    impl CatalogView for Fake {
        fn instances(&self, _service: &str) -> Vec<DnsInstance> {
            self.0.lock().expect("lock").clone()
        }
        fn members(&self) -> Vec<DnsMember> {
            Vec::new()
        }
        fn last_leader_contact(&self) -> Option<Duration> {
            Some(Duration::ZERO)
        }
        fn index(&self) -> u64 {
            1
        }
    }

    fn instances(n: usize) -> Vec<DnsInstance> {
        (0..n)
            .map(|k| DnsInstance {
                service: "web".into(),
                id: format!("web-{k}"),
                address: format!("10.0.{}.{}", k / 250, k % 250 + 1),
                port: 80,
                tags: Vec::new(),
                meta: BTreeMap::new(),
                weight_passing: 1,
                weight_warning: 1,
                health: Health::Passing,
            })
            .collect()
    }

    /// Runs `respond` and `fit` for a wire query, then decodes what would be sent.
    fn udp_exchange(n: usize, qtype: RecordType, edns_size: Option<u16>) -> (Message, usize) {
        let handler = Handler::new(
            Zone::new(&DnsConfig::default()).expect("zone"),
            Arc::new(Fake(Mutex::new(instances(n)))),
        );
        let mut msg = Message::new(7, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(
            Name::from_ascii("web.service.waymark.").expect("name"),
            qtype,
        ));
        if let Some(size) = edns_size {
            let mut e = Edns::new();
            e.set_max_payload(size);
            msg.set_edns(e);
        }
        let bytes = msg.to_vec().expect("encode query");
        let src: SocketAddr = "127.0.0.1:5353".parse().expect("addr");
        let request = Request::from_bytes(bytes, src, Protocol::Udp).expect("decode query");
        let (mut meta, mut ans) = handler.respond(&request);
        let limit = udp_limit(request.edns.as_ref());
        fit(
            &request.queries,
            &mut meta,
            &mut ans,
            limit,
            request.edns.is_some(),
        )
        .expect("fit");
        let edns = request.edns.as_ref().map(|_| {
            let mut e = Edns::new();
            e.set_max_payload(MAX_UDP_PAYLOAD);
            e
        });
        let mut buf = Vec::new();
        let mut encoder = BinEncoder::new(&mut buf);
        MessageResponseBuilder::new(&request.queries, edns.as_ref())
            .build(
                meta,
                ans.answers.iter(),
                ans.authority.iter(),
                iter::empty::<&Record>(),
                ans.additional.iter(),
            )
            .destructive_emit(&mut encoder)
            .expect("encode response");
        let len = buf.len();
        (Message::from_vec(&buf).expect("decode response"), len)
    }

    /// `answer_wire` (the fuzz entry point) answers as the server does and sends
    /// nothing where hickory would drop the packet or answer before the handler.
    #[test]
    fn answer_wire_matches_the_handler() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let view: Arc<dyn CatalogView> = Arc::new(Fake(Mutex::new(instances(3))));
        let wire = |bytes: &[u8], tcp: bool| {
            rt.block_on(answer_wire(&DnsConfig::default(), view.clone(), bytes, tcp))
                .expect("valid config")
        };
        let mut msg = Message::new(9, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(
            Name::from_ascii("web.service.waymark.").expect("name"),
            RecordType::A,
        ));
        let query = msg.to_vec().expect("encode query");
        for tcp in [false, true] {
            let out = wire(&query, tcp).expect("an answer");
            let m = Message::from_vec(&out).expect("decode answer");
            assert_eq!(m.metadata.id, 9);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert_eq!(m.answers.len(), 3);
        }
        assert_eq!(wire(&query[..11], false), None, "shorter than a header");
        let formerr = wire(&query[..14], false).expect("a FORMERR");
        let m = Message::from_vec(&formerr).expect("decode FORMERR");
        assert_eq!(m.metadata.id, 9);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        let mut response = msg.clone();
        response.metadata.message_type = MessageType::Response;
        let response = response.to_vec().expect("encode response");
        assert_eq!(wire(&response, false), None, "responses are dropped");
        let bad = DnsConfig {
            max_stale_ms: 0,
            ..DnsConfig::default()
        };
        assert!(rt
            .block_on(answer_wire(&bad, view.clone(), &query, false))
            .is_err());
    }

    /// Found by the `dns` fuzz target: ten long questions in one UDP query made the
    /// FORMERR echo them all, overflow 512 bytes, and turn into SERVFAIL (with a
    /// warning logged per packet). Now it is a FORMERR without the questions.
    #[test]
    fn many_questions_get_formerr_not_servfail() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let view: Arc<dyn CatalogView> = Arc::new(Fake(Mutex::new(instances(3))));
        let mut msg = Message::new(11, MessageType::Query, OpCode::Query);
        // Distinct names, so the encoder cannot compress them away.
        for k in 0..10 {
            let long = format!("{}.{k}.service.waymark.", "a".repeat(60));
            msg.add_query(Query::query(
                Name::from_ascii(&long).expect("name"),
                RecordType::A,
            ));
        }
        let query = msg.to_vec().expect("encode query");
        assert!(query.len() > 512);
        for tcp in [false, true] {
            let out = rt
                .block_on(answer_wire(
                    &DnsConfig::default(),
                    view.clone(),
                    &query,
                    tcp,
                ))
                .expect("valid config")
                .expect("an answer");
            let m = Message::from_vec(&out).expect("decode answer");
            assert_eq!(m.metadata.id, 11);
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::FormErr,
                "tcp: {tcp}"
            );
            assert!(m.queries.is_empty());
            assert!(out.len() <= 512, "{}", out.len());
        }
    }

    #[test]
    fn small_answers_are_whole() {
        let (m, _) = udp_exchange(3, RecordType::A, None);
        assert!(!m.metadata.truncation);
        assert!(m.metadata.authoritative);
        assert_eq!(m.answers.len(), 3);
    }

    #[test]
    fn big_answers_are_cut_with_tc() {
        let (m, len) = udp_exchange(100, RecordType::A, None);
        assert!(m.metadata.truncation);
        assert!(len <= 512, "{len}");
        assert!(!m.answers.is_empty() && m.answers.len() < 100);

        let (m, len) = udp_exchange(100, RecordType::A, Some(1000));
        assert!(m.metadata.truncation);
        assert!(len <= 1000, "{len}");
        assert!(m.edns.is_some(), "the OPT record survives the cut");

        let (m, len) = udp_exchange(500, RecordType::A, Some(4096));
        assert!(m.metadata.truncation);
        assert!(len <= usize::from(MAX_UDP_PAYLOAD), "{len}");
    }

    #[test]
    fn cut_glue_alone_does_not_set_tc() {
        // Find an SRV set whose records fit in 512 bytes but whose glue does not.
        let found = (1..40).find(|&n| {
            let (m, _) = udp_exchange(n, RecordType::SRV, None);
            !m.metadata.truncation && m.answers.len() == n && m.additionals.len() < n
        });
        assert!(found.is_some(), "some SRV set should drop only glue");
    }
}
