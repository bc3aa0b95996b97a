//! An independent validator (the `spiffe` crate's X.509-SVID parser, which applies the
//! SPIFFE X509-SVID rules) accepts every leaf the mesh CA issues, for several services
//! and from a rotated root's chain, and rejects hand-made bad leaves: one with cA=true,
//! one with two URI SANs, one without digitalSignature. So the checks are the
//! validator's, not ours.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use spiffe::X509Svid;
use waymark_registry::identity::ca;
use waymark_registry::model::{CaRoot, NewRoot};

fn record(root: NewRoot) -> CaRoot {
    root.into_record(1, true)
}

fn der(pem_text: &str) -> Vec<u8> {
    ::pem::parse(pem_text).unwrap().into_contents()
}

/// The leaf then its chain, concatenated DER, as the validator takes them.
fn chain_der(leaf_pem: &str, chain: &[String]) -> Vec<u8> {
    let mut out = der(leaf_pem);
    for c in chain {
        out.extend(der(c));
    }
    out
}

fn csr(key: &KeyPair) -> String {
    CertificateParams::default()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

#[test]
fn every_leaf_the_ca_issues_is_a_valid_x509_svid() {
    let root = record(ca::generate_root("c1.waymark").unwrap());
    for service in ["web", "api", "a-very-long-service-name-0123456789"] {
        let key = KeyPair::generate().unwrap();
        let leaf = ca::sign_leaf(&root, service, &csr(&key), Duration::from_secs(3600)).unwrap();
        let svid = X509Svid::parse_from_der(&chain_der(&leaf.cert_pem, &[]), &key.serialize_der())
            .unwrap_or_else(|e| panic!("{service}: the validator refused the leaf: {e}"));
        assert_eq!(svid.spiffe_id().to_string(), leaf.spiffe_id);
    }

    // After a rotation: the new root's leaf with its cross-signed copy in the chain.
    let mut next = ca::generate_root("c1.waymark").unwrap();
    ca::cross_sign(&mut next, &root).unwrap();
    let next = record(next);
    let key = KeyPair::generate().unwrap();
    let leaf = ca::sign_leaf(&next, "web", &csr(&key), Duration::from_secs(60)).unwrap();
    let svid = X509Svid::parse_from_der(
        &chain_der(&leaf.cert_pem, &next.chain_pem),
        &key.serialize_der(),
    )
    .expect("a leaf with the cross-signed intermediate");
    assert_eq!(svid.cert_chain().len(), 2);
}

/// One change to a leaf's parameters.
type Spoil = Box<dyn FnOnce(&mut CertificateParams)>;

/// A leaf for spiffe://c1.waymark/svc/web signed by `root`'s CA, made by hand with
/// one property changed by `spoil`.
fn hand_made(spoil: impl FnOnce(&mut CertificateParams)) -> (Vec<u8>, Vec<u8>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![SanType::URI(
        "spiffe://c1.waymark/svc/web".try_into().unwrap(),
    )];
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    spoil(&mut p);
    let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (cert.der().to_vec(), key.serialize_der())
}

#[test]
fn the_validator_rejects_hand_made_bad_leaves() {
    // The control: the same construction unspoiled is accepted.
    let (cert, key) = hand_made(|_| {});
    X509Svid::parse_from_der(&cert, &key).expect("the unspoiled hand-made leaf");

    let cases: [(&str, Spoil); 3] = [
        (
            "cA=true",
            Box::new(|p| {
                p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                p.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyCertSign,
                ];
            }),
        ),
        (
            "two URI SANs",
            Box::new(|p| {
                p.subject_alt_names.push(SanType::URI(
                    "spiffe://c1.waymark/svc/admin".try_into().unwrap(),
                ))
            }),
        ),
        (
            "no digitalSignature",
            Box::new(|p| p.key_usages = vec![KeyUsagePurpose::KeyAgreement]),
        ),
    ];
    for (what, spoil) in cases {
        let (cert, key) = hand_made(spoil);
        assert!(
            X509Svid::parse_from_der(&cert, &key).is_err(),
            "the validator accepted a leaf with {what}"
        );
    }
}
