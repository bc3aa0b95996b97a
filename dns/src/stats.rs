//! Counters of the DNS server, shared with whoever renders metrics (the registry's
//! `/metrics`): how UDP queries were answered.

use waymark_metrics::{family, sample, Counter};

/// How the UDP loops answered. Hits over all answers is the cache's hit rate.
#[derive(Debug, Default)]
pub struct DnsStats {
    /// Answered from the answer cache (a stored wire answer, patched).
    pub udp_cached: Counter,
    /// Answered by the full path: cache misses, redraws of an ordered answer, and
    /// queries the cache does not serve (EDNS options, errors, a stale node).
    pub udp_full_path: Counter,
}

impl DnsStats {
    /// Renders `waymark_dns_udp_answers_total{path}` in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let name = "waymark_dns_udp_answers_total";
        family(
            out,
            name,
            "UDP DNS answers sent, by path: cache (stored answer of this catalog index) or full (built from the catalog).",
            "counter",
        );
        sample(out, name, "path=\"cache\"", self.udp_cached.get());
        sample(out, name, "path=\"full\"", self.udp_full_path.get());
    }
}
