//! Authentication at the client API edge: the token a request presents
//! (`authorization: Bearer <secret>` or `x-waymark-token`) resolved into an
//! `Authorizer` against this node's replica. Every handler of the client API starts
//! here; `acl/` decides what the authorizer allows.

use tonic::metadata::MetadataMap;

use super::errors::ApiError;
use crate::acl::{self, AclError, Authorizer, Resolved};
use crate::audit::AuditEntry;
use crate::node::Node;

/// The secret a request presents, if any. A header that is there but unreadable is
/// refused rather than treated as absent (it would fall back to the default policy).
pub fn presented(metadata: &MetadataMap) -> Result<Option<String>, AclError> {
    secret_in(metadata.as_ref())
}

/// `presented`, from the request's HTTP headers (for tower layers).
pub fn secret_in(headers: &http::HeaderMap) -> Result<Option<String>, AclError> {
    let bad = |what: &str| AclError::Unauthenticated(format!("malformed {what} header"));
    if let Some(v) = headers.get("authorization") {
        let v = v.to_str().map_err(|_| bad("authorization"))?;
        let secret = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .ok_or_else(|| {
                AclError::Unauthenticated(
                    "the authorization header must be `Bearer <secret>`".into(),
                )
            })?;
        return Ok(Some(secret.trim().to_string()));
    }
    if let Some(v) = headers.get("x-waymark-token") {
        let v = v.to_str().map_err(|_| bad("x-waymark-token"))?;
        return Ok(Some(v.trim().to_string()));
    }
    Ok(None)
}

/// Who is calling. A secret this replica does not know may belong to a token created
/// a moment ago that it has not applied yet: it waits for a read barrier (everything
/// committed before the call) and looks again, so a token works on every node as
/// soon as its creation was acknowledged.
pub async fn caller(node: &Node, metadata: &MetadataMap) -> Result<Authorizer, ApiError> {
    if !node.acl.enabled {
        return Ok(Authorizer::everything());
    }
    let secret = presented(metadata)?;
    if let Resolved::Known(a) = resolve_here(node, secret.as_deref())? {
        return Ok(a);
    }
    node.read_barrier().await?;
    match resolve_here(node, secret.as_deref())? {
        Resolved::Known(a) => Ok(a),
        Resolved::Unknown => Err(acl::unknown_token().into()),
    }
}

/// `caller` for a write: the caller is also recorded in its audit entry.
pub async fn writer(
    node: &Node,
    metadata: &MetadataMap,
    audit: &AuditEntry<'_>,
) -> Result<Authorizer, ApiError> {
    let authorizer = caller(node, metadata).await?;
    audit.caller(&authorizer);
    Ok(authorizer)
}

/// Resolves against this node's replica as it is now.
pub fn resolve_here(node: &Node, secret: Option<&str>) -> Result<Resolved, AclError> {
    let catalog = node.catalog.read().expect("catalog lock poisoned");
    acl::resolve(&node.acl, &catalog, secret, acl::now_unix_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(key: &'static str, value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert(key, value.parse().unwrap());
        m
    }

    #[test]
    fn both_headers_carry_the_secret_and_a_malformed_one_is_refused() {
        assert_eq!(presented(&MetadataMap::new()), Ok(None));
        assert_eq!(
            presented(&with("authorization", "Bearer abc")),
            Ok(Some("abc".into()))
        );
        assert_eq!(
            presented(&with("x-waymark-token", "abc")),
            Ok(Some("abc".into()))
        );
        assert!(matches!(
            presented(&with("authorization", "Basic abc")),
            Err(AclError::Unauthenticated(_))
        ));
    }
}
