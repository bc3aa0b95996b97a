//! Meta keys by which an instance registered by `waymark-proxy` describes its proxy:
//! a convention between proxies (and the `waymark proxies` CLI), not a registry rule.

/// The port of the proxy's inbound (mesh) listener at the instance's address. Peers
/// dial `address:<this>`; DNS clients outside the mesh use the instance's own port.
pub const MESH_PORT_META: &str = "waymark-mesh-port";

/// `host:port` of the proxy's admin listener (`/ready`, `/endpoints`, `/metrics`).
pub const PROXY_ADMIN_META: &str = "waymark-proxy-admin";

/// SPIFFE identities of mesh services: `spiffe://<trust-domain>/svc/<service>`.
pub mod spiffe {
    use crate::validate::{check_dns_label, ValidationError};

    /// Largest CSR accepted, in bytes of PEM.
    pub const MAX_CSR_LEN: usize = 16 * 1024;

    /// A service's SPIFFE ID.
    pub fn id(trust_domain: &str, service: &str) -> String {
        format!("spiffe://{trust_domain}/svc/{service}")
    }

    /// The service a SPIFFE ID names, if it is one of this trust domain's service IDs.
    pub fn service_of<'a>(id: &'a str, trust_domain: &str) -> Option<&'a str> {
        let rest = id.strip_prefix("spiffe://")?.strip_prefix(trust_domain)?;
        let service = rest.strip_prefix("/svc/")?;
        check_dns_label("service", service).ok()?;
        Some(service)
    }

    /// A trust domain: dot-separated DNS labels (SPIFFE allows lowercase letters,
    /// digits, '.', '-' and '_'; we keep to labels), at most 255 bytes.
    pub fn check_trust_domain(field: &str, td: &str) -> Result<(), ValidationError> {
        if td.len() > 255 {
            return Err(ValidationError::new(field, "must be at most 255 bytes"));
        }
        for label in td.split('.') {
            check_dns_label(field, label)?;
        }
        Ok(())
    }

    /// A `SignRequest`'s fields, before the CSR itself is parsed.
    pub fn check_sign_request(service: &str, csr_pem: &str) -> Result<(), ValidationError> {
        check_dns_label("service", service)?;
        if csr_pem.len() > MAX_CSR_LEN {
            return Err(ValidationError::new(
                "csr_pem",
                format!(
                    "must be at most {MAX_CSR_LEN} bytes (got {})",
                    csr_pem.len()
                ),
            ));
        }
        if !csr_pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
            return Err(ValidationError::new(
                "csr_pem",
                "must be a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)",
            ));
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ids_round_trip_and_foreign_ones_are_refused() {
            let id = id("c1.waymark", "web");
            assert_eq!(id, "spiffe://c1.waymark/svc/web");
            assert_eq!(service_of(&id, "c1.waymark"), Some("web"));
            assert_eq!(service_of(&id, "c2.waymark"), None);
            assert_eq!(
                service_of("spiffe://c1.waymark/ns/x/sa/web", "c1.waymark"),
                None
            );
            assert_eq!(
                service_of("spiffe://c1.waymark/svc/Web", "c1.waymark"),
                None
            );
            assert_eq!(
                service_of("spiffe://c1.waymarkx/svc/web", "c1.waymark"),
                None
            );
            assert!(check_trust_domain("trust_domain", "c1.waymark").is_ok());
            assert!(check_trust_domain("trust_domain", "c1..waymark").is_err());
            assert_eq!(
                check_sign_request("web", "hello").unwrap_err().field,
                "csr_pem"
            );
        }
    }
}
