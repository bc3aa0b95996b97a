//! The read-only view of a node's catalog replica that DNS answers from: the trait the
//! registry implements and the plain value types it hands over.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// What the DNS server needs from the catalog. Implementations read the node's local
/// replica (no Raft round trip): every call is on the query path, so it must be cheap
/// and must not block on the network.
pub trait CatalogView: Send + Sync + 'static {
    /// Every registered instance of `service`, in any health state (the DNS layer
    /// filters). `service` is lowercase; an unknown service gives an empty list.
    fn instances(&self, service: &str) -> Vec<DnsInstance>;
    /// The cluster members, for `<node>.node.<domain>` and the apex NS records.
    fn members(&self) -> Vec<DnsMember>;
    /// How long ago this node last heard from a leader (for a leader: since a quorum
    /// last acknowledged it). `None` = never, which answers SERVFAIL.
    fn last_leader_contact(&self) -> Option<Duration>;
    /// The catalog index the replica reflects; used as the SOA serial and in logs.
    /// UDP answers are cached per index, so anything that changes an answer (records,
    /// members, ACLs) must advance it.
    fn index(&self) -> u64;
}

/// Health of an instance as DNS sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    Passing,
    Warning,
    Critical,
}

/// One registered instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsInstance {
    pub service: String,
    /// Unique within the service; a DNS label.
    pub id: String,
    /// An IP address, or a hostname (then it appears only as an SRV target, never in
    /// A/AAAA answers: we do not resolve other people's names).
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    /// Served as TXT on the instance name, one `key=value` record per entry.
    pub meta: BTreeMap<String, String>,
    /// SRV weight (and share of first place in A/AAAA answers) while passing.
    pub weight_passing: u16,
    /// The same while warning (only served when `admit_warning` is set).
    pub weight_warning: u16,
    pub health: Health,
}

/// One cluster member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMember {
    pub node_id: u64,
    /// Its DNS label, e.g. `node-1`. If it is not a valid DNS label, the member is
    /// named by its decimal id instead; `<id>.node.<domain>` always works too.
    pub name: String,
    pub address: IpAddr,
}
