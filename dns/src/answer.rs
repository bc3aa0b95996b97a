//! Record building: turns a parsed question and the catalog view into the response
//! code and the answer, authority and additional sections. Pure given the view and the
//! RNG, so every rule here is unit-tested without sockets.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use rand::Rng;
use tracing::debug;

use crate::catalog::{CatalogView, DnsInstance, DnsMember, Health};
use crate::config::{is_label, Zone};
use crate::name::{Query, INSTANCE, NODE};
use crate::order::weighted_shuffle;

/// SRV priority of every target. Health already decides who is listed (passing, and
/// warning only if admitted); the weights carry the preference between them.
pub const SRV_PRIORITY: u16 = 1;
/// Longest TXT character-string (RFC 1035 §3.3): longer `key=value` texts are split
/// over several strings of the same record, which clients concatenate (as for SPF).
const TXT_CHUNK: usize = 255;
// SOA timers. Nothing transfers this zone (it is not a file, and AXFR is refused), so
// they only need to be sane values for tools that print them.
const SOA_REFRESH: i32 = 3_600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 86_400;

/// A response before encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

/// Builds the response to `qtype` at `owner` (the question name as asked, so the
/// answer echoes its case), already parsed into `query`.
pub(crate) fn answer<R: Rng + ?Sized>(
    zone: &Zone,
    view: &dyn CatalogView,
    query: &Query,
    owner: &Name,
    qtype: RecordType,
    rng: &mut R,
) -> Answer {
    match query {
        Query::Apex => apex(zone, view, qtype),
        Query::Service { service, tags } => {
            let found = discoverable(zone, view, service, |i| tags.iter().all(|t| has_tag(i, t)));
            discovery(zone, view, owner, qtype, service, found, true, rng)
        }
        Query::Rfc2782 { service, tag } => {
            let found = discoverable(zone, view, service, |i| {
                tag.as_deref().is_none_or(|t| has_tag(i, t))
            });
            discovery(zone, view, owner, qtype, service, found, false, rng)
        }
        Query::Instance { service, id } => instance(zone, view, owner, qtype, service, id),
        Query::InstanceParent { service } => {
            if view.instances(service).is_empty() {
                negative(zone, view, ResponseCode::NXDomain)
            } else {
                negative(zone, view, ResponseCode::NoError)
            }
        }
        Query::Node { name } => node(zone, view, owner, qtype, name),
        Query::EmptyNonTerminal => negative(zone, view, ResponseCode::NoError),
        Query::Unknown => negative(zone, view, ResponseCode::NXDomain),
    }
}

/// Whether an answer of type `have` belongs in a response to `qtype`.
fn wanted(qtype: RecordType, have: RecordType) -> bool {
    qtype == have || qtype == RecordType::ANY
}

fn has_tag(i: &DnsInstance, tag: &str) -> bool {
    i.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
}

/// Instances of `service` that discovery may hand out (passing, and warning if
/// admitted) and that pass `filter`.
fn discoverable(
    zone: &Zone,
    view: &dyn CatalogView,
    service: &str,
    filter: impl Fn(&DnsInstance) -> bool,
) -> Vec<DnsInstance> {
    view.instances(service)
        .into_iter()
        .filter(|i| match i.health {
            Health::Passing => true,
            Health::Warning => zone.admit_warning,
            Health::Critical => false,
        })
        .filter(filter)
        .collect()
}

/// An instance's weight in its current health state.
fn weight(i: &DnsInstance) -> u16 {
    match i.health {
        Health::Passing => i.weight_passing,
        Health::Warning => i.weight_warning,
        Health::Critical => 0,
    }
}

/// Service and RFC 2782 names: NXDOMAIN without a discoverable instance; otherwise
/// A/AAAA (if `addresses`) and SRV, in weighted random order.
#[allow(clippy::too_many_arguments)]
fn discovery<R: Rng + ?Sized>(
    zone: &Zone,
    view: &dyn CatalogView,
    owner: &Name,
    qtype: RecordType,
    service: &str,
    mut found: Vec<DnsInstance>,
    addresses: bool,
    rng: &mut R,
) -> Answer {
    if found.is_empty() {
        return negative(zone, view, ResponseCode::NXDomain);
    }
    weighted_shuffle(&mut found, weight, rng);
    let ttl = zone.service_ttl(service);
    let mut answers = Vec::new();
    let mut additional = Vec::new();
    if addresses {
        // Two instances on one IP (different ports) are one A record: an RRset holds
        // no duplicates (RFC 2181 §5). The first, weight-chosen position wins.
        let mut seen = HashSet::new();
        for i in &found {
            if let Ok(ip) = i.address.parse::<IpAddr>() {
                if address_wanted(qtype, ip) && seen.insert(ip) {
                    answers.push(address_record(owner.clone(), ttl, ip));
                }
            }
        }
    }
    if wanted(qtype, RecordType::SRV) {
        for i in &found {
            let srv = |target| {
                Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::SRV(SRV::new(SRV_PRIORITY, weight(i), i.port, target)),
                )
            };
            match i.address.parse::<IpAddr>() {
                Ok(ip) => {
                    let Some(target) = instance_name(zone, service, &i.id) else {
                        continue;
                    };
                    answers.push(srv(target.clone()));
                    additional.push(address_record(target, ttl, ip));
                }
                // A hostname address is the target itself (as Consul does); the client
                // resolves it through its usual resolver, so no additional record.
                Err(_) => {
                    if let Some(target) = hostname(&i.address) {
                        answers.push(srv(target));
                    }
                }
            }
        }
    }
    positive(zone, view, answers, additional)
}

/// `<id>.<service>.instance.<domain>`: any registered instance, whatever its health
/// (the name identifies one instance; health filtering is for discovery names).
fn instance(
    zone: &Zone,
    view: &dyn CatalogView,
    owner: &Name,
    qtype: RecordType,
    service: &str,
    id: &str,
) -> Answer {
    let Some(i) = view
        .instances(service)
        .into_iter()
        .find(|i| i.id.eq_ignore_ascii_case(id))
    else {
        return negative(zone, view, ResponseCode::NXDomain);
    };
    let ttl = zone.service_ttl(service);
    let mut answers = Vec::new();
    // A hostname address has no A/AAAA here (NODATA): a CNAME would be the other
    // option, but a CNAME may not share its name with the meta TXT records.
    if let Ok(ip) = i.address.parse::<IpAddr>() {
        if address_wanted(qtype, ip) {
            answers.push(address_record(owner.clone(), ttl, ip));
        }
    }
    if wanted(qtype, RecordType::TXT) {
        for (k, v) in &i.meta {
            let text = format!("{k}={v}");
            let chunks: Vec<&[u8]> = text.as_bytes().chunks(TXT_CHUNK).collect();
            answers.push(Record::from_rdata(
                owner.clone(),
                ttl,
                RData::TXT(TXT::from_bytes(chunks)),
            ));
        }
    }
    positive(zone, view, answers, Vec::new())
}

/// `<node>.node.<domain>`, by the member's label or its decimal id.
fn node(
    zone: &Zone,
    view: &dyn CatalogView,
    owner: &Name,
    qtype: RecordType,
    name: &str,
) -> Answer {
    let Some(m) = view
        .members()
        .into_iter()
        .find(|m| member_label(m) == name || m.node_id.to_string() == name)
    else {
        return negative(zone, view, ResponseCode::NXDomain);
    };
    let mut answers = Vec::new();
    if address_wanted(qtype, m.address) {
        answers.push(address_record(owner.clone(), zone.ttl, m.address));
    }
    positive(zone, view, answers, Vec::new())
}

/// The apex: SOA, and one NS per member (`<node>.node.<domain>`, glue in additional):
/// every member serves the whole zone from its replica.
fn apex(zone: &Zone, view: &dyn CatalogView, qtype: RecordType) -> Answer {
    let mut answers = Vec::new();
    let mut additional = Vec::new();
    if wanted(qtype, RecordType::SOA) {
        answers.push(soa(zone, view));
    }
    if wanted(qtype, RecordType::NS) {
        for m in sorted_members(view) {
            let Some(target) = member_name(zone, &m) else {
                continue;
            };
            answers.push(Record::from_rdata(
                zone.domain.clone(),
                zone.ttl,
                RData::NS(NS(target.clone())),
            ));
            additional.push(address_record(target, zone.ttl, m.address));
        }
    }
    positive(zone, view, answers, additional)
}

/// A positive answer, or NODATA (NOERROR, SOA in authority) if nothing matched the type.
fn positive(
    zone: &Zone,
    view: &dyn CatalogView,
    answers: Vec<Record>,
    additional: Vec<Record>,
) -> Answer {
    if answers.is_empty() {
        return negative(zone, view, ResponseCode::NoError);
    }
    Answer {
        rcode: ResponseCode::NoError,
        answers,
        authority: Vec::new(),
        additional,
    }
}

/// NXDOMAIN or NODATA: no answers, the SOA in authority so resolvers cache the
/// negative answer for the SOA's TTL/MINIMUM (RFC 2308).
fn negative(zone: &Zone, view: &dyn CatalogView, rcode: ResponseCode) -> Answer {
    Answer {
        rcode,
        answers: Vec::new(),
        authority: vec![soa(zone, view)],
        additional: Vec::new(),
    }
}

/// The zone's SOA. Its TTL and MINIMUM are both the negative TTL, so the negative
/// caching time (their minimum) is exactly that. The serial is the catalog index
/// (mod 2^32; serial arithmetic, RFC 1982, copes with the wrap).
fn soa(zone: &Zone, view: &dyn CatalogView) -> Record {
    let mname = sorted_members(view)
        .first()
        .and_then(|m| member_name(zone, m))
        .unwrap_or_else(|| zone.domain.clone());
    let rname = Name::from_labels([b"hostmaster".as_slice()])
        .and_then(|n| n.append_domain(&zone.domain))
        .unwrap_or_else(|_| zone.domain.clone());
    Record::from_rdata(
        zone.domain.clone(),
        zone.negative_ttl,
        RData::SOA(SOA::new(
            mname,
            rname,
            view.index() as u32,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            zone.negative_ttl,
        )),
    )
}

fn sorted_members(view: &dyn CatalogView) -> Vec<DnsMember> {
    let mut members = view.members();
    members.sort_by_key(|m| m.node_id);
    members
}

/// A member's label under `node.`: its name if that is a DNS label, else its id.
fn member_label(m: &DnsMember) -> String {
    if is_label(&m.name) {
        m.name.to_ascii_lowercase()
    } else {
        m.node_id.to_string()
    }
}

fn member_name(zone: &Zone, m: &DnsMember) -> Option<Name> {
    let label = member_label(m);
    build_name(zone, &[label.as_bytes(), NODE.as_bytes()])
}

/// `<id>.<service>.instance.<domain>`, the SRV target of an IP-addressed instance.
fn instance_name(zone: &Zone, service: &str, id: &str) -> Option<Name> {
    let id = id.to_ascii_lowercase();
    build_name(
        zone,
        &[id.as_bytes(), service.as_bytes(), INSTANCE.as_bytes()],
    )
}

fn build_name(zone: &Zone, labels: &[&[u8]]) -> Option<Name> {
    match Name::from_labels(labels.iter().copied()).and_then(|n| n.append_domain(&zone.domain)) {
        Ok(name) => Some(name),
        Err(error) => {
            // Only reachable if the registry let an invalid name through; skip the record.
            debug!(%error, ?labels, "skipping record with an unencodable name");
            None
        }
    }
}

/// A hostname address as a fully qualified SRV target.
fn hostname(address: &str) -> Option<Name> {
    match Name::from_ascii(address) {
        Ok(mut name) => {
            name.set_fqdn(true);
            Some(name)
        }
        Err(error) => {
            debug!(%error, address, "skipping SRV target that is not a DNS name");
            None
        }
    }
}

fn address_wanted(qtype: RecordType, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => wanted(qtype, RecordType::A),
        IpAddr::V6(_) => wanted(qtype, RecordType::AAAA),
    }
}

fn address_record(owner: Name, ttl: u32, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner, ttl, rdata)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::config::DnsConfig;
    use crate::name::parse;

    struct Fake {
        instances: Vec<DnsInstance>,
        members: Vec<DnsMember>,
    }

    impl CatalogView for Fake {
        fn instances(&self, service: &str) -> Vec<DnsInstance> {
            self.instances
                .iter()
                .filter(|i| i.service == service)
                .cloned()
                .collect()
        }
        fn members(&self) -> Vec<DnsMember> {
            self.members.clone()
        }
        fn last_leader_contact(&self) -> Option<Duration> {
            Some(Duration::ZERO)
        }
        fn index(&self) -> u64 {
            (1 << 32) + 42
        }
    }

    fn inst(service: &str, id: &str, address: &str, tags: &[&str], health: Health) -> DnsInstance {
        DnsInstance {
            service: service.into(),
            id: id.into(),
            address: address.into(),
            port: 8080,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            meta: BTreeMap::new(),
            weight_passing: 10,
            weight_warning: 1,
            health,
        }
    }

    fn fake() -> Fake {
        let mut web1 = inst("web", "web-1", "10.0.0.1", &["v1", "eu"], Health::Passing);
        web1.meta = [
            ("zone".to_string(), "a".to_string()),
            ("long".to_string(), "x".repeat(300)),
        ]
        .into();
        Fake {
            instances: vec![
                web1,
                inst("web", "web-2", "10.0.0.2", &["v1"], Health::Passing),
                inst("web", "web-3", "fd00::3", &["v2"], Health::Passing),
                inst("web", "web-4", "10.0.0.4", &["v1"], Health::Warning),
                inst("web", "web-5", "10.0.0.5", &["v1"], Health::Critical),
                inst("web", "web-6", "app.example.com", &["v3"], Health::Passing),
                inst("db", "db-1", "10.0.1.1", &[], Health::Critical),
            ],
            members: vec![
                DnsMember {
                    node_id: 2,
                    name: "node-2".into(),
                    address: "127.0.0.2".parse().expect("ip"),
                },
                DnsMember {
                    node_id: 1,
                    name: "Node One".into(),
                    address: "127.0.0.1".parse().expect("ip"),
                },
            ],
        }
    }

    fn zone(admit_warning: bool) -> Zone {
        Zone::new(&DnsConfig {
            admit_warning,
            service_ttl_secs: [("db".to_string(), 60)].into(),
            ..DnsConfig::default()
        })
        .expect("zone")
    }

    fn ask_with(zone: &Zone, view: &Fake, q: &str, t: RecordType) -> Answer {
        let owner = Name::from_ascii(q).expect("name");
        let query = parse(&owner, &zone.domain).expect("in domain");
        answer(zone, view, &query, &owner, t, &mut StdRng::seed_from_u64(1))
    }

    fn ask(q: &str, t: RecordType) -> Answer {
        ask_with(&zone(false), &fake(), q, t)
    }

    fn ips(records: &[Record]) -> Vec<String> {
        let mut v: Vec<String> = records
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0.to_string()),
                RData::AAAA(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    fn srv_targets(records: &[Record]) -> Vec<(String, u16)> {
        let mut v: Vec<(String, u16)> = records
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some((s.target.to_ascii(), s.weight)),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    fn assert_negative(a: &Answer, rcode: ResponseCode) {
        assert_eq!(a.rcode, rcode);
        assert!(a.answers.is_empty(), "{a:?}");
        assert_eq!(a.authority.len(), 1);
        assert_eq!(a.authority[0].record_type(), RecordType::SOA);
        assert_eq!(a.authority[0].ttl, 5);
        let RData::SOA(soa) = &a.authority[0].data else {
            panic!("not an SOA");
        };
        assert_eq!(soa.minimum, 5);
        assert_eq!(soa.serial, 42);
    }

    #[test]
    fn service_a_and_aaaa_hold_only_healthy_ip_instances() {
        let a = ask("web.service.waymark.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(ips(&a.answers), ["10.0.0.1", "10.0.0.2"]);
        assert!(a.answers.iter().all(|r| r.ttl == 5));
        let a = ask("web.service.waymark.", RecordType::AAAA);
        assert_eq!(ips(&a.answers), ["fd00::3"]);
        // Admitting warning adds web-4.
        let a = ask_with(&zone(true), &fake(), "web.service.waymark.", RecordType::A);
        assert_eq!(ips(&a.answers), ["10.0.0.1", "10.0.0.2", "10.0.0.4"]);
    }

    #[test]
    fn tags_must_all_match() {
        let a = ask("v1.web.service.waymark.", RecordType::A);
        assert_eq!(ips(&a.answers), ["10.0.0.1", "10.0.0.2"]);
        let a = ask("eu.v1.web.service.waymark.", RecordType::A);
        assert_eq!(ips(&a.answers), ["10.0.0.1"]);
        assert_negative(
            &ask("v2.v1.web.service.waymark.", RecordType::A),
            ResponseCode::NXDomain,
        );
    }

    #[test]
    fn srv_targets_weights_and_glue() {
        let a = ask("web.service.waymark.", RecordType::SRV);
        assert_eq!(
            srv_targets(&a.answers),
            [
                ("app.example.com.".to_string(), 10),
                ("web-1.web.instance.waymark.".to_string(), 10),
                ("web-2.web.instance.waymark.".to_string(), 10),
                ("web-3.web.instance.waymark.".to_string(), 10),
            ]
        );
        // Glue for IP targets only; none for the hostname.
        assert_eq!(ips(&a.additional), ["10.0.0.1", "10.0.0.2", "fd00::3"]);
        assert!(a.additional[0]
            .name
            .to_ascii()
            .ends_with(".web.instance.waymark."));
        // Warning instances carry their warning weight.
        let a = ask_with(
            &zone(true),
            &fake(),
            "_web._v1.service.waymark.",
            RecordType::SRV,
        );
        assert!(srv_targets(&a.answers).contains(&("web-4.web.instance.waymark.".to_string(), 1)));
    }

    #[test]
    fn rfc2782_names() {
        let a = ask("_web._tcp.service.waymark.", RecordType::SRV);
        assert_eq!(srv_targets(&a.answers).len(), 4);
        let a = ask("_web._v1.service.waymark.", RecordType::SRV);
        assert_eq!(srv_targets(&a.answers).len(), 2);
        // Only SRV lives there.
        assert_negative(
            &ask("_web._tcp.service.waymark.", RecordType::A),
            ResponseCode::NoError,
        );
        assert_negative(
            &ask("_web._nope.service.waymark.", RecordType::SRV),
            ResponseCode::NXDomain,
        );
    }

    #[test]
    fn nxdomain_vs_nodata() {
        // Unknown service; service with only critical instances.
        assert_negative(
            &ask("nope.service.waymark.", RecordType::A),
            ResponseCode::NXDomain,
        );
        assert_negative(
            &ask("db.service.waymark.", RecordType::A),
            ResponseCode::NXDomain,
        );
        // Existing name, type not there.
        assert_negative(
            &ask("web.service.waymark.", RecordType::TXT),
            ResponseCode::NoError,
        );
        assert_negative(
            &ask("v3.web.service.waymark.", RecordType::A),
            ResponseCode::NoError,
        );
        // Structure.
        assert_negative(
            &ask("service.waymark.", RecordType::A),
            ResponseCode::NoError,
        );
        assert_negative(
            &ask("web.instance.waymark.", RecordType::A),
            ResponseCode::NoError,
        );
        assert_negative(
            &ask("nope.instance.waymark.", RecordType::A),
            ResponseCode::NXDomain,
        );
        assert_negative(&ask("what.waymark.", RecordType::A), ResponseCode::NXDomain);
    }

    #[test]
    fn instance_names() {
        let a = ask("web-1.web.instance.waymark.", RecordType::A);
        assert_eq!(ips(&a.answers), ["10.0.0.1"]);
        let a = ask("web-1.web.instance.waymark.", RecordType::TXT);
        let texts: Vec<Vec<Vec<u8>>> = a
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::TXT(t) => t.txt_data.iter().map(|s| s.to_vec()).collect(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts.len(), 2);
        // "long=" + 300 x's, split at 255 bytes.
        assert_eq!(texts[0].len(), 2);
        assert_eq!(texts[0][0].len(), 255);
        assert_eq!(
            texts[0].concat(),
            format!("long={}", "x".repeat(300)).into_bytes()
        );
        assert_eq!(texts[1], vec![b"zone=a".to_vec()]);
        // Health does not hide an instance name; the DB TTL override applies.
        let a = ask("db-1.db.instance.waymark.", RecordType::A);
        assert_eq!(ips(&a.answers), ["10.0.1.1"]);
        assert_eq!(a.answers[0].ttl, 60);
        // Hostname address: NODATA for A, meta-less TXT is NODATA too.
        assert_negative(
            &ask("web-6.web.instance.waymark.", RecordType::A),
            ResponseCode::NoError,
        );
        assert_negative(
            &ask("web-2.web.instance.waymark.", RecordType::TXT),
            ResponseCode::NoError,
        );
        assert_negative(
            &ask("web-9.web.instance.waymark.", RecordType::A),
            ResponseCode::NXDomain,
        );
    }

    #[test]
    fn nodes_and_apex() {
        let a = ask("node-2.node.waymark.", RecordType::A);
        assert_eq!(ips(&a.answers), ["127.0.0.2"]);
        // "Node One" is not a label: reachable by id.
        let a = ask("1.node.waymark.", RecordType::A);
        assert_eq!(ips(&a.answers), ["127.0.0.1"]);
        assert_negative(
            &ask("node-2.node.waymark.", RecordType::AAAA),
            ResponseCode::NoError,
        );
        assert_negative(
            &ask("node-3.node.waymark.", RecordType::A),
            ResponseCode::NXDomain,
        );

        let a = ask("waymark.", RecordType::SOA);
        assert_eq!(a.answers.len(), 1);
        let RData::SOA(soa) = &a.answers[0].data else {
            panic!("not an SOA");
        };
        assert_eq!(soa.mname.to_ascii(), "1.node.waymark.");
        assert_eq!(soa.rname.to_ascii(), "hostmaster.waymark.");
        let a = ask("waymark.", RecordType::NS);
        let ns: Vec<String> = a
            .answers
            .iter()
            .map(|r| match &r.data {
                RData::NS(n) => n.0.to_ascii(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ns, ["1.node.waymark.", "node-2.node.waymark."]);
        assert_eq!(ips(&a.additional), ["127.0.0.1", "127.0.0.2"]);
        assert_negative(&ask("waymark.", RecordType::A), ResponseCode::NoError);
    }

    #[test]
    fn answers_echo_the_question_case() {
        let a = ask("WEB.Service.Waymark.", RecordType::A);
        assert_eq!(a.answers.len(), 2);
        assert_eq!(a.answers[0].name.to_ascii(), "WEB.Service.Waymark.");
    }

    #[test]
    fn duplicate_addresses_collapse() {
        let mut view = fake();
        let mut twin = inst("web", "web-1b", "10.0.0.1", &[], Health::Passing);
        twin.port = 9090;
        view.instances.push(twin);
        let a = ask_with(&zone(false), &view, "web.service.waymark.", RecordType::A);
        assert_eq!(ips(&a.answers), ["10.0.0.1", "10.0.0.2"]);
        let a = ask_with(&zone(false), &view, "web.service.waymark.", RecordType::SRV);
        assert_eq!(srv_targets(&a.answers).len(), 5);
    }

    #[test]
    fn any_returns_every_type_at_the_name() {
        let a = ask("web.service.waymark.", RecordType::ANY);
        let types: HashSet<RecordType> = a.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(
            types,
            [RecordType::A, RecordType::AAAA, RecordType::SRV].into()
        );
    }
}
