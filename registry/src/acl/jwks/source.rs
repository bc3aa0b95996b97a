//! Where an auth method's JWKS comes from: its `jwks_url` parsed into what a fetch
//! dials (scheme, host, port, path) and the roots an https fetch trusts (its
//! `jwks_ca_cert`, else the system's). Parsed when a method is written, so bad input
//! is refused naming the field, and again by the cache on the node serving a login.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use waymark_proto::ValidationError;

/// A parsed `jwks_url` and its trust.
#[derive(Debug, Clone)]
pub struct Source {
    /// The URL as written in the method (for messages and logs).
    pub url: String,
    pub https: bool,
    /// Host to dial and to name in TLS: a DNS name or an IP (no brackets).
    pub host: String,
    pub port: u16,
    /// The `Host` header: host and port as written.
    pub authority: String,
    pub path_and_query: String,
    /// The method's own CA certificates (https only); `None`: the system roots.
    pub roots: Option<Arc<RootCertStore>>,
}

impl Source {
    /// Parses `url` (with `ca_pem`, may be empty); errors name `method.jwks_url` or
    /// `method.jwks_ca_cert`.
    pub fn parse(url: &str, ca_pem: &str) -> Result<Source, ValidationError> {
        waymark_proto::acl::check_jwks_url(url)?;
        waymark_proto::acl::check_jwks_ca_cert(url, ca_pem)?;
        let bad = |rule: String| ValidationError::new("method.jwks_url", rule);
        let uri: http::Uri = url
            .parse()
            .map_err(|e| bad(format!("not a valid URL: {e}")))?;
        let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("must be an http:// or https:// URL".into())),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| bad("has no host".into()))?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(bad("has no host".into()));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        let roots = if ca_pem.is_empty() {
            None
        } else {
            Some(Arc::new(parse_roots(ca_pem).map_err(|rule| {
                ValidationError::new("method.jwks_ca_cert", rule)
            })?))
        };
        Ok(Source {
            url: url.to_string(),
            https,
            host,
            port,
            authority: authority.as_str().to_string(),
            path_and_query: if path_and_query.is_empty() {
                "/".into()
            } else {
                path_and_query
            },
            roots,
        })
    }

    /// The roots an https fetch trusts: the method's CA, else the system's (loaded
    /// once per process).
    pub fn trust(&self) -> Result<Arc<RootCertStore>, String> {
        match &self.roots {
            Some(roots) => Ok(roots.clone()),
            None => system_roots(),
        }
    }
}

/// PEM certificates into a root store; every block must be a usable trust anchor.
fn parse_roots(pem: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let cert = cert.map_err(|e| format!("certificate {i}: not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("certificate {i}: not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no -----BEGIN CERTIFICATE----- block".into());
    }
    Ok(roots)
}

fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(format!(
                    "no trusted CA certificates found on this system ({}); give the method a jwks_ca_cert",
                    if errors.is_empty() { "none installed".into() } else { errors.join("; ") }
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_what_a_fetch_dials() {
        let s = Source::parse("https://idp.example/.well-known/jwks.json?v=2", "").unwrap();
        assert!(s.https);
        assert_eq!((s.host.as_str(), s.port), ("idp.example", 443));
        assert_eq!(s.authority, "idp.example");
        assert_eq!(s.path_and_query, "/.well-known/jwks.json?v=2");
        let s = Source::parse("http://[::1]:8080", "").unwrap();
        assert!(!s.https);
        assert_eq!((s.host.as_str(), s.port), ("::1", 8080));
        assert_eq!(s.authority, "[::1]:8080");
        assert_eq!(s.path_and_query, "/");
        let e = Source::parse("https://idp.example/jw ks", "").unwrap_err();
        assert_eq!(e.field, "method.jwks_url");
    }

    #[test]
    fn a_ca_must_be_real_certificates() {
        let ca = crate::tls::generate::LocalCa::new("jwks test ca")
            .unwrap()
            .cert_pem();
        let s = Source::parse("https://idp.example/jwks", &ca).unwrap();
        assert_eq!(s.roots.unwrap().len(), 1);
        let junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = Source::parse("https://idp.example/jwks", junk).unwrap_err();
        assert_eq!(e.field, "method.jwks_ca_cert");
        assert!(e.rule.contains("certificate 0"), "{e}");
    }
}
