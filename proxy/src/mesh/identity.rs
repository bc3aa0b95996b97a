//! This proxy's leaf certificate: a fresh P-256 key and CSR, signed by the registry's
//! CA (`Identity.Sign`, with the proxy's token), renewed at about 70 % of its lifetime
//! (with jitter, so proxies started together do not renew together) and at once when
//! the active root changes. The key never leaves the process. Each new leaf, and each
//! change of the trusted roots, publishes new `Credentials`; connections already open
//! keep theirs.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use waymark_client::{identity as identity_client, Backoff, CallPolicy, Client};
use waymark_proto::pb;

use super::state::MeshState;
use super::tls::{Credentials, Material};
use crate::metrics::MeshMetrics;

/// Renew at this share of the lifetime, give or take `JITTER`.
const RENEW_AT: f64 = 0.7;
const JITTER: f64 = 0.05;

/// A signed leaf with its key.
struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
    not_before_ms: u64,
    not_after_ms: u64,
    /// Unique per leaf (the CA's random serial).
    serial: String,
    root_id: String,
    /// The roots the Sign answer listed (before the watch delivers any).
    roots: Vec<pb::CaRoot>,
    trust_domain: String,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn der_certs(
    pems: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    pems.into_iter()
        .map(|p| {
            CertificateDer::from_pem_slice(p.as_ref().as_bytes())
                .map_err(|e| format!("a certificate from the registry is not PEM: {e}"))
        })
        .collect()
}

async fn sign(client: &Client, service: &str) -> Result<Leaf, String> {
    let key = KeyPair::generate().map_err(|e| format!("generating the key: {e}"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, service);
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| format!("making the CSR: {e}"))?;
    let request = pb::SignRequest {
        service: service.to_string(),
        csr_pem: csr,
    };
    let resp = client
        .call(CallPolicy::read(client.endpoints().len()), |ch| {
            let request = request.clone();
            async move { identity_client(ch).sign(request).await }
        })
        .await
        .map_err(|e| format!("Identity.Sign: {e}"))?;
    let mut chain = der_certs([&resp.cert_pem])?;
    chain.extend(der_certs(&resp.chain_pem)?);
    let trust_domain = resp
        .roots
        .iter()
        .find(|r| r.id == resp.root_id)
        .map(|r| r.trust_domain.clone())
        .unwrap_or_default();
    Ok(Leaf {
        chain,
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        not_before_ms: resp.not_before_ms,
        not_after_ms: resp.not_after_ms,
        serial: resp.serial,
        root_id: resp.root_id,
        roots: resp.roots,
        trust_domain,
    })
}

/// When to renew a leaf valid from `not_before_ms` to `not_after_ms`.
fn renew_in(not_before_ms: u64, not_after_ms: u64, now_ms: u64, jitter: f64) -> Duration {
    let life = not_after_ms.saturating_sub(not_before_ms) as f64;
    let at = not_before_ms as f64 + life * (RENEW_AT + jitter);
    Duration::from_millis((at.round() as u64).saturating_sub(now_ms))
}

/// The trust anchors: the watched roots once the watch has caught up with the Sign
/// answer, else the answer's.
fn trusted<'a>(leaf: &'a Leaf, state: &'a MeshState) -> Vec<&'a pb::CaRoot> {
    if state.roots.contains_key(&leaf.root_id) {
        state.roots.values().collect()
    } else {
        leaf.roots.iter().collect()
    }
}

fn credentials(leaf: &Leaf, state: &MeshState) -> Result<Credentials, String> {
    let roots = der_certs(trusted(leaf, state).iter().map(|r| &r.trust_anchor_pem))?;
    Credentials::build(Material {
        chain: leaf.chain.clone(),
        key: PrivateKeyDer::Pkcs8(leaf.key.clone_key()),
        roots,
        trust_domain: leaf.trust_domain.clone(),
        not_after_ms: leaf.not_after_ms,
        root_id: leaf.root_id.clone(),
    })
    .map_err(|e| format!("building the TLS configuration: {e}"))
}

/// Keeps `tx` holding credentials for `service` until `shutdown`.
pub async fn run(
    client: Client,
    service: String,
    mut mesh: watch::Receiver<Arc<MeshState>>,
    tx: watch::Sender<Option<Arc<Credentials>>>,
    metrics: Arc<MeshMetrics>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut leaf: Option<Leaf> = None;
    let mut renew_at = tokio::time::Instant::now();
    // What the published credentials were built from (leaf serial, trusted roots):
    // an intention change alone does not rebuild them (a new configuration would
    // also start a new TLS session cache).
    let mut published: Option<(String, Vec<String>)> = None;
    loop {
        // Sign when due (first leaf, renewal time, or a new active root).
        let state = mesh.borrow_and_update().clone();
        let active_changed = match (&leaf, state.active_root()) {
            (Some(l), Some(active)) => active.id != l.root_id,
            _ => false,
        };
        if leaf.is_none() || active_changed || tokio::time::Instant::now() >= renew_at {
            match sign(&client, &service).await {
                Ok(new) => {
                    backoff.reset();
                    metrics.renewals.inc();
                    let jitter = rand::thread_rng().gen_range(-JITTER..JITTER);
                    renew_at = tokio::time::Instant::now()
                        + renew_in(new.not_before_ms, new.not_after_ms, now_ms(), jitter);
                    tracing::info!(
                        service = %service,
                        root = %new.root_id,
                        not_after_ms = new.not_after_ms,
                        renew_in_ms = renew_at.duration_since(tokio::time::Instant::now()).as_millis() as u64,
                        "leaf certificate issued"
                    );
                    leaf = Some(new);
                }
                Err(e) => {
                    metrics.renewal_failures.inc();
                    tracing::warn!(service = %service, error = %e, "could not get a leaf certificate; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        _ = backoff.wait() => {}
                    }
                    continue;
                }
            }
        }
        let basis = leaf.as_ref().map(|l| {
            let roots = trusted(l, &state).iter().map(|r| r.id.clone()).collect();
            (l.serial.clone(), roots)
        });
        if let (Some(l), true) = (&leaf, basis != published) {
            published = basis;
            match credentials(l, &state) {
                Ok(c) => {
                    metrics.leaf_not_after_ms.set(c.not_after_ms as i64);
                    *metrics.leaf_root.lock().unwrap_or_else(|p| p.into_inner()) =
                        c.root_id.clone();
                    metrics.trusted_roots.set(trusted(l, &state).len() as i64);
                    tx.send_replace(Some(Arc::new(c)));
                }
                Err(e) => {
                    tracing::error!(service = %service, error = %e, "keeping the previous credentials")
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(renew_at) => {}
            changed = mesh.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_at_seventy_percent_of_the_lifetime() {
        // A 100 s leaf issued at t=1000 s, asked at t=1010 s: renew at t=1070 s.
        let d = renew_in(1_000_000, 1_100_000, 1_010_000, 0.0);
        assert_eq!(d, Duration::from_secs(60));
        let early = renew_in(1_000_000, 1_100_000, 1_010_000, -JITTER);
        let late = renew_in(1_000_000, 1_100_000, 1_010_000, JITTER);
        assert_eq!(
            (early, late),
            (Duration::from_secs(55), Duration::from_secs(65))
        );
        // Past due: at once.
        assert_eq!(renew_in(0, 100, 1_000, 0.0), Duration::ZERO);
    }
}
