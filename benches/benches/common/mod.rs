//! Fixtures shared by the criterion benches: one realistic registration.

use std::collections::BTreeMap;

use waymark_registry::model::{LeaseExpiry, NewInstance};

/// A registration shaped like a typical one: a private address, two tags, two meta
/// entries, no lease.
pub fn new_instance(service: &str, id: &str, n: u32) -> NewInstance {
    NewInstance {
        service: service.to_string(),
        id: id.to_string(),
        address: format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff),
        port: 8080,
        tags: vec!["v1".to_string(), "http".to_string()],
        meta: BTreeMap::from([
            ("version".to_string(), "1.4.2".to_string()),
            ("zone".to_string(), "eu-west-1a".to_string()),
        ]),
        weight_passing: 1,
        weight_warning: 1,
        lease_id: None,
        on_lease_expiry: LeaseExpiry::Remove,
        deregister_critical_after_ms: 0,
        if_modify_index: None,
        initial_health: None,
    }
}
