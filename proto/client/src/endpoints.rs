//! Node addresses: the one rule for `HOST:PORT` / `http://HOST:PORT` /
//! `https://HOST:PORT`, and the list of nodes a client fails over across.

use std::fmt;
use std::str::FromStr;

/// An address that is not `HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {addr:?}: {reason}")]
pub struct AddrError {
    pub addr: String,
    pub reason: String,
}

/// Turns `HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT` into the URI tonic
/// dials (`http://` unless `https://` was written; `ConnectOptions` with TLS dials
/// https either way). Rejects other schemes and a missing port here, so the error
/// names the address instead of surfacing later as an opaque transport error.
pub fn endpoint_uri(addr: &str) -> Result<String, AddrError> {
    let trimmed = addr.trim();
    let fail = |reason: String| AddrError {
        addr: trimmed.to_string(),
        reason,
    };
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
        Some((scheme, _)) => {
            return Err(fail(format!(
                "scheme {scheme:?} is not supported; use HOST:PORT, http://HOST:PORT or https://HOST:PORT"
            )))
        }
        None => ("http", trimmed),
    };
    let rest = rest.trim_end_matches('/');
    let bad = || fail("expected HOST:PORT or http://HOST:PORT, e.g. 127.0.0.1:8500".to_string());
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(format!("{scheme}://{rest}"))
}

/// The address as a user would type it, without the scheme added for tonic.
pub fn display_addr(uri: &str) -> &str {
    uri.strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .unwrap_or(uri)
}

/// A non-empty list of node URIs, normalised and without repeats, in the order given
/// (the first is tried first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    uris: Vec<String>,
}

impl Endpoints {
    /// From individual addresses; every one must be valid.
    pub fn new<I, S>(addrs: I) -> Result<Self, AddrError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut uris: Vec<String> = Vec::new();
        for addr in addrs {
            let uri = endpoint_uri(addr.as_ref())?;
            if !uris.iter().any(|u| display_addr(u) == display_addr(&uri)) {
                uris.push(uri);
            }
        }
        if uris.is_empty() {
            return Err(AddrError {
                addr: String::new(),
                reason: "no address given; expected HOST:PORT[,HOST:PORT...]".into(),
            });
        }
        Ok(Self { uris })
    }

    /// From a comma-separated list such as `10.0.0.1:8500,10.0.0.2:8500`. Empty items
    /// (a trailing comma) are rejected, like any other malformed address.
    pub fn parse(list: &str) -> Result<Self, AddrError> {
        Self::new(list.split(','))
    }

    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    pub fn len(&self) -> usize {
        self.uris.len()
    }

    /// Never true: an empty list is refused when it is built.
    pub fn is_empty(&self) -> bool {
        self.uris.is_empty()
    }

    /// The URI at `i`, counting round the list.
    pub fn get(&self, i: usize) -> &str {
        &self.uris[i % self.uris.len()]
    }

    /// Where `addr` (in any accepted spelling, with or without a scheme) is in the list.
    pub fn position(&self, addr: &str) -> Option<usize> {
        let uri = endpoint_uri(addr).ok()?;
        self.uris
            .iter()
            .position(|u| display_addr(u) == display_addr(&uri))
    }
}

impl FromStr for Endpoints {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        Self::parse(s)
    }
}

impl fmt::Display for Endpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<&str> = self.uris.iter().map(|u| display_addr(u)).collect();
        f.write_str(&shown.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            endpoint_uri("127.0.0.1:8500").as_deref(),
            Ok("http://127.0.0.1:8500")
        );
        assert_eq!(
            endpoint_uri("http://127.0.0.1:8501").as_deref(),
            Ok("http://127.0.0.1:8501")
        );
        assert_eq!(
            endpoint_uri("http://node-2:8500/").as_deref(),
            Ok("http://node-2:8500")
        );
        assert_eq!(
            endpoint_uri("[::1]:8500").as_deref(),
            Ok("http://[::1]:8500")
        );
        assert_eq!(
            endpoint_uri("https://node-2:8500").as_deref(),
            Ok("https://node-2:8500")
        );
        assert_eq!(display_addr("https://node-2:8500"), "node-2:8500");
        for bad in [
            "",
            "localhost",
            "127.0.0.1:",
            ":8500",
            "host:0",
            "host:99999",
            "ftp://h:1",
            "h:1/x",
        ] {
            let err = endpoint_uri(bad).unwrap_err();
            assert_eq!(err.addr, bad.trim(), "the error names the address");
        }
        assert!(endpoint_uri("grpc://h:1")
            .unwrap_err()
            .to_string()
            .contains("scheme \"grpc\" is not supported"));
    }

    #[test]
    fn lists() {
        let e = Endpoints::parse("a:1, http://b:2/,a:1").unwrap();
        assert_eq!(e.uris(), ["http://a:1", "http://b:2"]);
        assert_eq!(e.to_string(), "a:1,b:2");
        assert_eq!(e.get(3), "http://b:2");
        assert_eq!(e.position("http://b:2"), Some(1));
        assert_eq!(e.position("b:2"), Some(1));
        assert_eq!(e.position("c:3"), None);
        let one = Endpoints::parse("127.0.0.1:8500").unwrap();
        assert_eq!(one.uris(), ["http://127.0.0.1:8500"]);
        let tls = Endpoints::parse("https://a:1,a:1").unwrap();
        assert_eq!(
            tls.uris(),
            ["https://a:1"],
            "one node, whatever its spelling"
        );
        assert_eq!(tls.position("a:1"), Some(0));
        for bad in ["", "a:1,", "a:1,ftp://b:2", ",a:1"] {
            assert!(Endpoints::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let err = Endpoints::parse("a:1,junk").unwrap_err();
        assert_eq!(err.addr, "junk");
    }
}
