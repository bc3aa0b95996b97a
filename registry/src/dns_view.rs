//! The registry side of DNS: exposes this node's replica to the `dns` crate through
//! its `CatalogView` trait. Every call reads local memory only (no Raft round trip).
//! With ACLs on, a service resolves only if the `[acl] dns_token` may read it (DNS
//! carries no credentials); a denied service looks like an unknown one.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use waymark_dns::{CatalogView, DnsInstance, DnsMember, Health as DnsHealth};

use crate::acl::{self, Resolved};
use crate::model::Health;
use crate::node::Node;

pub struct DnsCatalogView {
    node: Arc<Node>,
}

impl DnsCatalogView {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

impl DnsCatalogView {
    /// Whether DNS may answer for `service`: the dns token's rules, or, when it is
    /// unset, unknown or expired, what an anonymous caller gets (nothing under
    /// default deny: it fails closed).
    fn may_resolve(&self, catalog: &crate::catalog::Catalog, service: &str) -> bool {
        let config = &self.node.acl;
        let now = acl::now_unix_ms();
        let authorizer = match acl::resolve(config, catalog, config.dns_token.as_deref(), now) {
            Ok(Resolved::Known(authorizer)) => authorizer,
            Ok(Resolved::Unknown) | Err(_) => match acl::resolve(config, catalog, None, now) {
                Ok(Resolved::Known(anonymous)) => anonymous,
                Ok(Resolved::Unknown) | Err(_) => return false,
            },
        };
        authorizer.may_read_service(service)
    }
}

impl CatalogView for DnsCatalogView {
    fn instances(&self, service: &str) -> Vec<DnsInstance> {
        let catalog = self.node.catalog.read().expect("catalog lock poisoned");
        if !self.may_resolve(&catalog, service) {
            return Vec::new();
        }
        catalog
            .service_records(service)
            .map(|r| DnsInstance {
                service: r.service.clone(),
                id: r.id.clone(),
                address: r.address.clone(),
                port: r.port,
                tags: r.tags.clone(),
                meta: r.meta.clone(),
                weight_passing: r.weight_passing,
                weight_warning: r.weight_warning,
                health: match r.health {
                    Health::Passing => DnsHealth::Passing,
                    Health::Warning => DnsHealth::Warning,
                    Health::Critical => DnsHealth::Critical,
                },
            })
            .collect()
    }

    fn members(&self) -> Vec<DnsMember> {
        // A member's address is the host part of its advertised API address; members
        // advertised by hostname have no A record to give and are left out.
        self.node
            .view()
            .members
            .into_iter()
            .filter_map(|(node_id, m, _)| {
                let host = m.api_addr.rsplit_once(':')?.0.trim_matches(['[', ']']);
                let address: IpAddr = host.parse().ok()?;
                Some(DnsMember {
                    node_id,
                    name: format!("node-{node_id}"),
                    address,
                })
            })
            .collect()
    }

    fn last_leader_contact(&self) -> Option<Duration> {
        self.node.leader_contact_age().map(Duration::from_millis)
    }

    fn index(&self) -> u64 {
        self.node
            .catalog
            .read()
            .expect("catalog lock poisoned")
            .applied_index()
    }
}
