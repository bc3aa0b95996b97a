//! Keys from an auth method's `jwks_url` (like Consul's `JWKSURL`, Vault's
//! `jwks_url`, Envoy's remote JWKS): the URL and its trust (`source.rs`), one bounded
//! HTTP(S) fetch (`fetch.rs`), the node's cache and its refresh rules (`cache.rs`),
//! and the background loop that keeps cached keys fresh. Only the URL is replicated;
//! keys are fetched by the node serving a login, never in apply, so apply stays a
//! pure function of the log.

pub mod cache;
pub mod fetch;
pub mod source;

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use waymark_proto::ValidationError;

pub use cache::{JwksCache, JwksSettings, Unavailable};

use crate::model::{AuthMethodConfig, JwtMethod};
use crate::node::Node;

/// A JWT method's key sources as a whole: inline keys parse (strictly), a
/// `jwks_url` and `jwks_ca_cert` parse, and there is at least one source. Run where
/// the method is written and by the leader before proposing it.
pub fn check_method_keys(method: &JwtMethod) -> Result<(), ValidationError> {
    if method.jwks_url.is_empty() {
        crate::acl::jwt::Keys::parse(&method.jwks, &method.public_keys)?;
        // The proto check refuses a CA without an https URL; say it here too, as
        // this runs on commands that did not come through the API.
        waymark_proto::acl::check_jwks_ca_cert("", &method.jwks_ca_cert)?;
        return Ok(());
    }
    crate::acl::jwt::Keys::inline(&method.jwks, &method.public_keys)?;
    source::Source::parse(&method.jwks_url, &method.jwks_ca_cert).map(|_| ())
}

/// Refreshes cached keys as they fall due, until `shutdown`; methods deleted or
/// changed in the catalog are dropped from the cache on the way.
pub async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    let tick = node.jwks.settings().tick();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let live: HashMap<String, (String, String)> = {
            let catalog = node.catalog.read().expect("catalog lock poisoned");
            catalog
                .auth_methods()
                .filter_map(|m| {
                    let AuthMethodConfig::Jwt(jwt) = &m.config;
                    (!jwt.jwks_url.is_empty()).then(|| {
                        (
                            m.name.clone(),
                            (jwt.jwks_url.clone(), jwt.jwks_ca_cert.clone()),
                        )
                    })
                })
                .collect()
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = node.jwks.refresh_due(|name| live.get(name).cloned()) => {}
        }
    }
}
