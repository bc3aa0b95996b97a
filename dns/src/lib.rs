//! Waymark's DNS interface: answers discovery queries under the Waymark domain from a
//! node's local catalog replica, read through the [`CatalogView`] trait the registry
//! implements. Built on hickory-server; knows nothing of Raft or storage.
//!
//! # Names (under `domain`, default `waymark.`; matching ignores case)
//!
//! | name | types | content |
//! |---|---|---|
//! | `<service>.service.<domain>` | A, AAAA, SRV | discoverable instances: passing, plus warning if `admit_warning` |
//! | `<t1>.<t2>….<service>.service.<domain>` | A, AAAA, SRV | those carrying every listed tag |
//! | `_<service>._<tag>.service.<domain>` (RFC 2782) | SRV | `_tcp` means no tag filter |
//! | `<id>.<service>.instance.<domain>` | A or AAAA, TXT | one instance, any health; TXT = one `key=value` record per meta entry |
//! | `<node>.node.<domain>` | A or AAAA | a cluster member, by name or decimal id |
//! | `<domain>` | SOA, NS | NS = every member as `<node>.node.<domain>`, addresses in additional |
//!
//! SRV records: priority 1, weight = the instance's passing or warning weight, its port,
//! target `<id>.<service>.instance.<domain>` with the A/AAAA in the additional section.
//! An instance whose address is a hostname is the exception: its SRV target is that
//! hostname (no additional record; clients resolve it as usual), it is left out of
//! A/AAAA answers, and its instance name has no A/AAAA (NODATA), since a CNAME could
//! not coexist with the meta TXT records. Several instances on one IP give one A record.
//!
//! # Response codes
//!
//! - NXDOMAIN (SOA in authority): unknown names, and service names with no
//!   discoverable instance (critical instances are hidden).
//! - NODATA (NOERROR, no answer, SOA in authority): the name exists, not the type.
//!   The structural names `service.`, `instance.`, `node.`, `_x.service.` and
//!   `<service>.instance.` (while it has instances) also answer NODATA, so resolvers
//!   that prune below NXDOMAIN (RFC 8020) keep finding the names under them.
//! - The SOA's TTL and MINIMUM are both `negative_ttl_secs`, so that is how long
//!   negative answers are cached; its serial is the catalog index (mod 2^32).
//! - REFUSED: names outside the domain, classes other than IN, zone transfers. Not an
//!   open resolver.
//! - SERVFAIL: this node has not heard from a leader within `max_stale_ms` (or never).
//! - FORMERR: packets that decode to a header but not a message (hickory answers them);
//!   packets shorter than a header are dropped. Also queries with no or several
//!   questions, answered without echoing the question section (several long ones would
//!   not fit a UDP answer). NOTIMP for opcodes other than QUERY, BADVERS for EDNS
//!   versions above 0.
//!
//! # Ordering
//!
//! Records come in a weighted random order, drawn per query (`order.rs`): an instance is
//! first with probability proportional to its weight, since most clients use only the
//! first address and never look at SRV weights. Equal weights give a uniform shuffle.
//!
//! # Size
//!
//! UDP answers fit 512 bytes without EDNS, or the client's EDNS size capped at 1232
//! (DNS Flag Day 2020, avoids fragmentation) with it. When answer records are cut, TC
//! is set and the client retries over TCP, which returns the whole set; when only
//! additional records are cut, TC is not set (RFC 2181 §9).
//!
//! # Consistency
//!
//! Answers come from the node's replica with no Raft round trip, so they may trail the
//! leader. The bound: a node whose last leader contact is older than `max_stale_ms`
//! (default 5 s) answers SERVFAIL, and clients move to another server. 5 s is far above
//! a healthy follower's contact interval (heartbeat 100 ms) and above a leader
//! failover (election timeout 300–600 ms, a few rounds if votes split), so normal
//! operation and elections never SERVFAIL; yet a partitioned or quorum-less node stops
//! answering within seconds. What a client acts on is then at most about
//! `max_stale_ms` plus the TTL it cached the answer for (plus the follower's apply lag
//! behind the leader's last message, normally milliseconds).
//!
//! # The fast path (UDP)
//!
//! Answers only change when the catalog index does, so each UDP socket's loop thread
//! (`udp.rs`) keeps the full path's wire answers to plain queries (one IN question,
//! no EDNS options, EDNS version 0 at most) per (lowercased name, type, UDP size
//! limit) and serves a repeat by copying the stored bytes with the query's ID, RD and
//! CD flags and its exact question spelling (resolvers that randomise case, 0x20,
//! find their own). The cache empties whenever the index moves, so a cached answer is
//! never older than the replica; the staleness guard runs before the cache, so a stale
//! node SERVFAILs cached names too. Answers in weighted random order keep 8 orders,
//! one of which is picked per query and one in 16 hits redraws it through the full
//! path, so the order still varies per query and follows the weights over time.
//! Everything else (EDNS options, several or compressed questions, other classes or
//! opcodes, SERVFAIL/REFUSED answers, TCP) goes through hickory exactly as before.
//! Datagrams move in batches (`recvmmsg`/`sendmmsg` on Linux, `batch_io.rs`).
//!
//! # Cores
//!
//! [`DnsListeners::bind`] opens N UDP sockets on one port with SO_REUSEPORT (Linux):
//! the kernel spreads queries over them by flow, and each has its own loop thread
//! (and cache), from the runtime's blocking pool, so N sockets use N cores. One
//! exclusive TCP listener, served by hickory's `Server` on the async runtime.

mod answer;
mod batch_io;
mod cache;
mod catalog;
mod config;
mod handler;
mod name;
mod order;
mod server;
mod stats;
mod udp;
mod wire;

pub use catalog::{CatalogView, DnsInstance, DnsMember, Health};
pub use config::{ConfigError, DnsConfig, MAX_DOMAIN_LEN, MAX_TTL_SECS, MAX_UDP_SOCKETS};
pub use handler::{answer_wire, MAX_UDP_PAYLOAD, PLAIN_UDP_PAYLOAD};
pub use server::{serve, DnsError, DnsListeners, TCP_IDLE_TIMEOUT};
pub use stats::DnsStats;
