//! Query-name parsing: which of Waymark's name forms a question is for, or that it
//! lies outside the domain. Pure; case-insensitive (everything is lowercased).

use hickory_server::proto::rr::Name;

/// Label naming the service subtree: `<service>.service.<domain>`.
pub const SERVICE: &str = "service";
/// Label naming the instance subtree: `<id>.<service>.instance.<domain>`.
pub const INSTANCE: &str = "instance";
/// Label naming the member subtree: `<node>.node.<domain>`.
pub const NODE: &str = "node";
/// The RFC 2782 "protocol" label meaning "no tag filter": `_<service>._tcp.service.<domain>`.
pub const TCP: &str = "tcp";

/// A question name inside the domain, by form. Labels are lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `<domain>`: SOA and NS.
    Apex,
    /// `<t1>.<t2>.<service>.service.<domain>`: healthy instances carrying every tag
    /// (none for the bare service name). A, AAAA, SRV.
    Service { service: String, tags: Vec<String> },
    /// `_<service>._<tag>.service.<domain>` (RFC 2782); `_tcp` means no tag. SRV.
    Rfc2782 {
        service: String,
        tag: Option<String>,
    },
    /// `<id>.<service>.instance.<domain>`: one instance. A/AAAA, TXT (meta).
    Instance { service: String, id: String },
    /// `<service>.instance.<domain>`: exists (empty) while the service has instances,
    /// because instance names live below it.
    InstanceParent { service: String },
    /// `<node>.node.<domain>`: a cluster member. A/AAAA.
    Node { name: String },
    /// `service.`, `instance.`, `node.` and `_<x>.service.` under the domain: names
    /// that always exist without data, because names we serve sit below them. They get
    /// NODATA, not NXDOMAIN, so resolvers that prune below an NXDOMAIN (RFC 8020) do
    /// not lose the real names.
    EmptyNonTerminal,
    /// In the domain, but no form we serve: NXDOMAIN.
    Unknown,
}

/// Parses `qname` against the (lowercase) `domain`. `None` = not in the domain.
pub fn parse(qname: &Name, domain: &Name) -> Option<Query> {
    if !domain.zone_of(qname) {
        return None;
    }
    let own = qname.iter().len().checked_sub(domain.iter().len())?;
    let labels: Vec<String> = qname
        .iter()
        .take(own)
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    Some(classify(&labels))
}

/// Classifies the labels left of the domain, most specific first.
fn classify(labels: &[String]) -> Query {
    let Some((kind, rest)) = labels.split_last() else {
        return Query::Apex;
    };
    match (kind.as_str(), rest) {
        (SERVICE | INSTANCE | NODE, []) => Query::EmptyNonTerminal,
        (SERVICE, [only]) if only.starts_with('_') => Query::EmptyNonTerminal,
        (SERVICE, [svc, tag]) if svc.starts_with('_') && tag.starts_with('_') => {
            let tag = &tag[1..];
            Query::Rfc2782 {
                service: svc[1..].to_string(),
                tag: (tag != TCP).then(|| tag.to_string()),
            }
        }
        (SERVICE, [tags @ .., svc]) => Query::Service {
            service: svc.clone(),
            tags: tags.to_vec(),
        },
        (INSTANCE, [svc]) => Query::InstanceParent {
            service: svc.clone(),
        },
        (INSTANCE, [id, svc]) => Query::Instance {
            service: svc.clone(),
            id: id.clone(),
        },
        (NODE, [name]) => Query::Node { name: name.clone() },
        _ => Query::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Option<Query> {
        let domain = Name::from_ascii("waymark.").expect("domain");
        parse(&Name::from_ascii(q).expect("name"), &domain)
    }

    fn svc(service: &str, tags: &[&str]) -> Option<Query> {
        Some(Query::Service {
            service: service.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        })
    }

    #[test]
    fn service_forms() {
        assert_eq!(p("web.service.waymark."), svc("web", &[]));
        assert_eq!(p("v1.web.service.waymark."), svc("web", &["v1"]));
        assert_eq!(p("v1.eu.web.service.waymark."), svc("web", &["v1", "eu"]));
        // A service may be called "service".
        assert_eq!(p("service.service.waymark."), svc("service", &[]));
    }

    #[test]
    fn rfc2782_forms() {
        assert_eq!(
            p("_web._tcp.service.waymark."),
            Some(Query::Rfc2782 {
                service: "web".into(),
                tag: None
            })
        );
        assert_eq!(
            p("_web._v1.service.waymark."),
            Some(Query::Rfc2782 {
                service: "web".into(),
                tag: Some("v1".into())
            })
        );
        // Only the pair of underscore labels is the RFC 2782 form.
        assert_eq!(p("v1._web.service.waymark."), svc("_web", &["v1"]));
        assert_eq!(p("_tcp.service.waymark."), Some(Query::EmptyNonTerminal));
    }

    #[test]
    fn instance_node_apex_and_structure() {
        assert_eq!(
            p("web-1.web.instance.waymark."),
            Some(Query::Instance {
                service: "web".into(),
                id: "web-1".into()
            })
        );
        assert_eq!(
            p("web.instance.waymark."),
            Some(Query::InstanceParent {
                service: "web".into()
            })
        );
        assert_eq!(
            p("node-1.node.waymark."),
            Some(Query::Node {
                name: "node-1".into()
            })
        );
        assert_eq!(p("waymark."), Some(Query::Apex));
        for ent in ["service.waymark.", "instance.waymark.", "node.waymark."] {
            assert_eq!(p(ent), Some(Query::EmptyNonTerminal), "{ent}");
        }
        for unknown in [
            "x.waymark.",
            "x.web-1.web.instance.waymark.",
            "a.b.node.waymark.",
            "ns.waymark.",
        ] {
            assert_eq!(p(unknown), Some(Query::Unknown), "{unknown}");
        }
    }

    #[test]
    fn matching_ignores_case() {
        assert_eq!(p("V1.WeB.Service.WAYMARK."), svc("web", &["v1"]));
        assert_eq!(
            p("Web-1.WEB.Instance.Waymark."),
            Some(Query::Instance {
                service: "web".into(),
                id: "web-1".into()
            })
        );
    }

    #[test]
    fn outside_the_domain() {
        assert_eq!(p("example.com."), None);
        assert_eq!(p("."), None);
        assert_eq!(p("web.service.waymark.example."), None);
        assert_eq!(p("waymarks."), None);
    }

    #[test]
    fn multi_label_domain() {
        let domain = Name::from_ascii("disco.example.").expect("domain");
        let q = Name::from_ascii("web.service.disco.example.").expect("name");
        assert_eq!(parse(&q, &domain), svc("web", &[]));
        let q = Name::from_ascii("web.service.example.").expect("name");
        assert_eq!(parse(&q, &domain), None);
    }
}
