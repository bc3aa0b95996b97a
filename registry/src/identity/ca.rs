//! The CA's cryptography, outside apply (keys and serials come from the OS RNG): new
//! roots, imported roots and intermediates, cross-signing a new root by the previous
//! one, and leaves signed from CSRs as SPIFFE X.509-SVIDs. All with rcgen (ECDSA
//! P-256); no hand-written ASN.1.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use waymark_proto::mesh::spiffe;

use crate::model::{CaRoot, NewRoot};

/// How long a generated root is valid.
const ROOT_DAYS: i64 = 10 * 365;

/// Leaves start this long before they were signed, for peers whose clocks are a
/// little behind.
const BACKDATE: Duration = Duration::minutes(1);

/// Why a CA operation failed; each names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("csr_pem: {0}")]
    BadCsr(String),
    #[error("{field}: {reason}")]
    BadImport { field: &'static str, reason: String },
    #[error("the CA has no active root yet (the leader creates one at bootstrap)")]
    NotInitialized,
    #[error("signing failed: {0}")]
    Signing(String),
}

fn signing(e: rcgen::Error) -> CaError {
    CaError::Signing(e.to_string())
}

/// A root's id: the first 16 hex characters of SHA-256 over its certificate's DER.
pub fn root_id(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))[..16].to_string()
}

fn unix_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // A positive INTEGER of 16 bytes (RFC 5280 allows up to 20; the top bit set would
    // make it negative).
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn root_params(trust_domain: &str, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Waymark");
    params.distinguished_name.push(
        DnType::CommonName,
        format!("Waymark CA {} {}", trust_domain, now.unix_timestamp()),
    );
    // One level below: a rotation's cross-signed root sits between the old root and
    // the new root's leaves.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // The trust domain, as the root's URI SAN (as Consul's and SPIRE's roots carry).
    if let Ok(uri) = format!("spiffe://{trust_domain}").try_into() {
        params.subject_alt_names = vec![SanType::URI(uri)];
    }
    params.serial_number = Some(random_serial());
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(ROOT_DAYS);
    params
}

/// A new self-signed ECDSA P-256 root for `trust_domain`.
pub fn generate_root(trust_domain: &str) -> Result<NewRoot, CaError> {
    let now = OffsetDateTime::now_utc();
    let key = KeyPair::generate().map_err(signing)?;
    let params = root_params(trust_domain, now);
    let not_after = params.not_after;
    let cert = params.self_signed(&key).map_err(signing)?;
    Ok(NewRoot {
        id: root_id(cert.der()),
        signing_cert_pem: cert.pem(),
        signing_key_pem: key.serialize_pem(),
        trust_anchor_pem: cert.pem(),
        chain_pem: Vec::new(),
        trust_domain: trust_domain.to_string(),
        not_after_ms: unix_ms(not_after),
        imported: false,
    })
}

/// The issuer `root` signs as: its parameters read back from its certificate, and
/// its key.
fn issuer(cert_pem: &str, key_pem: &str) -> Result<(rcgen::Certificate, KeyPair), CaError> {
    let key = KeyPair::from_pem(key_pem).map_err(signing)?;
    let params = CertificateParams::from_ca_cert_pem(cert_pem).map_err(signing)?;
    // Re-signed only to hold the name and key identifier leaves are issued under;
    // this copy is never sent anywhere.
    let cert = params.self_signed(&key).map_err(signing)?;
    Ok((cert, key))
}

/// `new` cross-signed by `previous`: the same subject and key, issued by the previous
/// root, so a peer that trusts only `previous` accepts leaves `new` signs. Added to
/// `new`'s chain.
pub fn cross_sign(new: &mut NewRoot, previous: &CaRoot) -> Result<(), CaError> {
    let (prev_cert, prev_key) = issuer(&previous.signing_cert_pem, &previous.signing_key_pem)?;
    let new_key = KeyPair::from_pem(&new.signing_key_pem).map_err(signing)?;
    let mut params = CertificateParams::from_ca_cert_pem(&new.signing_cert_pem).map_err(signing)?;
    params.serial_number = Some(random_serial());
    let cross = params
        .signed_by(&new_key, &prev_cert, &prev_key)
        .map_err(signing)?;
    new.chain_pem.push(cross.pem());
    Ok(())
}

/// Files for an imported root, or an intermediate signed by an external root
/// (then `chain` up to and `anchor` = that root).
pub fn import_root(
    trust_domain: &str,
    cert_pem: &str,
    key_pem: &str,
    chain: &[String],
    anchor: &str,
) -> Result<NewRoot, CaError> {
    let bad = |field, reason: String| CaError::BadImport { field, reason };
    let der =
        pem::parse(cert_pem).map_err(|e| bad("cert_pem", format!("not a PEM certificate: {e}")))?;
    let key = KeyPair::from_pem(key_pem)
        .map_err(|e| bad("key_pem", format!("not a PEM private key: {e}")))?;
    let params = CertificateParams::from_ca_cert_pem(cert_pem)
        .map_err(|e| bad("cert_pem", format!("not a CA certificate: {e}")))?;
    if !matches!(params.is_ca, IsCa::Ca(_)) {
        return Err(bad(
            "cert_pem",
            "is not a CA certificate (basicConstraints cA is not set)".into(),
        ));
    }
    let (_, parsed) = x509_parser::parse_x509_certificate(der.contents())
        .map_err(|e| bad("cert_pem", format!("not an X.509 certificate: {e}")))?;
    if parsed.public_key().raw != key.public_key_der() {
        return Err(bad(
            "key_pem",
            "does not match the certificate's public key".into(),
        ));
    }
    let anchor = if anchor.is_empty() {
        if parsed.subject() != parsed.issuer() {
            return Err(bad(
                "trust_anchor_pem",
                "the certificate is not self-signed: give the root it chains to".into(),
            ));
        }
        cert_pem.to_string()
    } else {
        pem::parse(anchor)
            .map_err(|e| bad("trust_anchor_pem", format!("not a PEM certificate: {e}")))?;
        anchor.to_string()
    };
    for (i, c) in chain.iter().enumerate() {
        pem::parse(c).map_err(|e| {
            bad(
                "chain_pem",
                format!("certificate {i} is not a PEM certificate: {e}"),
            )
        })?;
    }
    let not_after = parsed.validity().not_after.to_datetime();
    Ok(NewRoot {
        id: root_id(der.contents()),
        signing_cert_pem: cert_pem.to_string(),
        signing_key_pem: key.serialize_pem(),
        trust_anchor_pem: anchor,
        chain_pem: chain.to_vec(),
        trust_domain: trust_domain.to_string(),
        not_after_ms: unix_ms(not_after),
        imported: true,
    })
}

/// Checks a proposed root (admission, on the leader): its certificate parses, its id
/// is that certificate's, its key is that certificate's key, its trust domain is
/// valid. A forged or garbled root never enters the log.
pub fn check_new_root(root: &NewRoot) -> Result<(), waymark_proto::ValidationError> {
    use waymark_proto::ValidationError;
    let bad = |field: &str, reason: &str| ValidationError::new(field, reason);
    spiffe::check_trust_domain("root.trust_domain", &root.trust_domain)?;
    let der = pem::parse(&root.signing_cert_pem)
        .map_err(|_| bad("root.signing_cert_pem", "must be a PEM certificate"))?;
    if root.id != root_id(der.contents()) {
        return Err(bad("root.id", "must be the certificate's fingerprint"));
    }
    let (_, cert) = x509_parser::parse_x509_certificate(der.contents())
        .map_err(|_| bad("root.signing_cert_pem", "must be an X.509 certificate"))?;
    if !cert.is_ca() {
        return Err(bad("root.signing_cert_pem", "must be a CA certificate"));
    }
    let key = KeyPair::from_pem(&root.signing_key_pem)
        .map_err(|_| bad("root.signing_key_pem", "must be a PEM private key"))?;
    if cert.public_key().raw != key.public_key_der() {
        return Err(bad(
            "root.signing_key_pem",
            "must be the certificate's private key",
        ));
    }
    for pem_text in std::iter::once(&root.trust_anchor_pem).chain(&root.chain_pem) {
        pem::parse(pem_text).map_err(|_| bad("root.chain_pem", "must be PEM certificates"))?;
    }
    Ok(())
}

/// A signed leaf, as `Identity.Sign` returns it.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub spiffe_id: String,
    pub serial: String,
    pub not_before_ms: u64,
    pub not_after_ms: u64,
}

/// Signs a leaf for `service` with the public key of `csr_pem` (whose signature
/// proves possession of the private key). Nothing else the CSR asks for is used: the
/// subject, the one URI SAN, the usages and the lifetime are the CA's.
pub fn sign_leaf(
    root: &CaRoot,
    service: &str,
    csr_pem: &str,
    ttl: std::time::Duration,
) -> Result<Leaf, CaError> {
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| CaError::BadCsr(format!("not a valid signed PKCS#10 request: {e}")))?;
    let spiffe_id = spiffe::id(&root.trust_domain, service);
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, service);
    params.subject_alt_names =
        vec![SanType::URI(spiffe_id.clone().try_into().map_err(
            |_| CaError::Signing(format!("{spiffe_id} is not an IA5 string")),
        )?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let serial = random_serial();
    params.serial_number = Some(serial.clone());
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::try_from(ttl).unwrap_or(Duration::days(1));
    let (not_before, not_after) = (params.not_before, params.not_after);
    let (issuer_cert, issuer_key) = issuer(&root.signing_cert_pem, &root.signing_key_pem)?;
    let cert = params
        .signed_by(&csr.public_key, &issuer_cert, &issuer_key)
        .map_err(signing)?;
    Ok(Leaf {
        cert_pem: cert.pem(),
        spiffe_id,
        serial: hex::encode(serial.as_ref()),
        not_before_ms: unix_ms(not_before),
        not_after_ms: unix_ms(not_after),
    })
}

#[cfg(test)]
mod tests;
