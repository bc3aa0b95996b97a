//! The CA's certificates, read back with x509-parser: what a leaf holds whatever the
//! CSR asked for, cross-signing, imports, and refusals.

use std::collections::HashSet;
use std::time::Duration;

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::*;

use super::*;

fn csr(key: &KeyPair) -> String {
    // Asks for things the CA must not grant: another name, a DNS SAN, a CA flag.
    let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "admin");
    params
        .subject_alt_names
        .push(SanType::URI("spiffe://other/svc/api".try_into().unwrap()));
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn root_record(new: NewRoot) -> CaRoot {
    new.into_record(1, true)
}

fn der_of(pem_text: &str) -> Vec<u8> {
    ::pem::parse(pem_text).unwrap().contents().to_vec()
}

#[test]
fn a_leaf_holds_what_the_ca_writes_not_what_the_csr_asks() {
    let root = root_record(generate_root("c1.waymark").unwrap());
    let key = KeyPair::generate().unwrap();
    let leaf = sign_leaf(&root, "web", &csr(&key), Duration::from_secs(600)).unwrap();
    assert_eq!(leaf.spiffe_id, "spiffe://c1.waymark/svc/web");

    let der = der_of(&leaf.cert_pem);
    let (_, cert) = parse_x509_certificate(&der).unwrap();
    let mut uris = Vec::new();
    let mut saw = HashSet::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                saw.insert("san");
                for name in &san.general_names {
                    match name {
                        GeneralName::URI(u) => uris.push(u.to_string()),
                        other => panic!("unexpected SAN {other:?}"),
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) => {
                saw.insert("bc");
                assert!(!bc.ca, "a leaf is not a CA");
            }
            ParsedExtension::KeyUsage(ku) => {
                saw.insert("ku");
                assert!(ext.critical, "key usage is critical");
                assert!(ku.digital_signature());
                assert!(!ku.key_cert_sign() && !ku.crl_sign());
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                saw.insert("eku");
                assert!(eku.server_auth && eku.client_auth);
            }
            _ => {}
        }
    }
    assert_eq!(uris, ["spiffe://c1.waymark/svc/web"], "exactly one URI SAN");
    assert_eq!(
        saw.len(),
        4,
        "SAN, basic constraints, key usage and EKU: {saw:?}"
    );
    assert_eq!(cert.public_key().raw, key.public_key_der(), "the CSR's key");
    assert!(cert.validity().time_to_expiration().unwrap() <= ::time::Duration::seconds(600));

    let root_der = der_of(&root.signing_cert_pem);
    let (_, root_cert) = parse_x509_certificate(&root_der).unwrap();
    assert_eq!(cert.issuer(), root_cert.subject());
    cert.verify_signature(Some(root_cert.public_key()))
        .expect("signed by the root's key");
}

#[test]
fn serials_are_unique() {
    let root = root_record(generate_root("c1.waymark").unwrap());
    let key = KeyPair::generate().unwrap();
    let req = csr(&key);
    let serials: HashSet<String> = (0..50)
        .map(|_| {
            sign_leaf(&root, "web", &req, Duration::from_secs(60))
                .unwrap()
                .serial
        })
        .collect();
    assert_eq!(serials.len(), 50);
}

#[test]
fn a_bad_or_tampered_csr_is_refused() {
    let root = root_record(generate_root("c1.waymark").unwrap());
    let e = sign_leaf(
        &root,
        "web",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        Duration::from_secs(60),
    )
    .unwrap_err();
    assert!(matches!(e, CaError::BadCsr(_)), "{e}");

    // Flip a byte of the signature (the DER's tail): possession is no longer proven.
    let key = KeyPair::generate().unwrap();
    let mut der = der_of(&csr(&key));
    let last = der.len() - 2;
    der[last] ^= 0x01;
    let tampered = ::pem::encode(&::pem::Pem::new("CERTIFICATE REQUEST", der));
    let e = sign_leaf(&root, "web", &tampered, Duration::from_secs(60)).unwrap_err();
    assert!(matches!(e, CaError::BadCsr(_)), "{e}");
}

#[test]
fn a_cross_signed_root_chains_to_the_previous_one() {
    let old = root_record(generate_root("c1.waymark").unwrap());
    let mut new = generate_root("c1.waymark").unwrap();
    cross_sign(&mut new, &old).unwrap();
    assert_eq!(new.chain_pem.len(), 1);
    let cross_der = der_of(&new.chain_pem[0]);
    let (_, cross) = parse_x509_certificate(&cross_der).unwrap();
    let new_der = der_of(&new.signing_cert_pem);
    let (_, new_cert) = parse_x509_certificate(&new_der).unwrap();
    let old_der = der_of(&old.signing_cert_pem);
    let (_, old_cert) = parse_x509_certificate(&old_der).unwrap();
    assert_eq!(cross.subject(), new_cert.subject(), "same name");
    assert_eq!(
        cross.public_key().raw,
        new_cert.public_key().raw,
        "same key"
    );
    assert_eq!(cross.issuer(), old_cert.subject());
    cross
        .verify_signature(Some(old_cert.public_key()))
        .expect("signed by the old root");
    assert!(cross.is_ca());
    assert_ne!(new.id, old.id);
}

#[test]
fn an_imported_intermediate_signs_leaves_and_bad_imports_are_named() {
    // An external root and an intermediate it signed, as an organisation's PKI would.
    let ext_key = KeyPair::generate().unwrap();
    let mut ext = CertificateParams::default();
    ext.distinguished_name.push(DnType::CommonName, "Corp Root");
    ext.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ext_cert = ext.self_signed(&ext_key).unwrap();
    let int_key = KeyPair::generate().unwrap();
    let mut int = CertificateParams::default();
    int.distinguished_name
        .push(DnType::CommonName, "Corp Mesh CA");
    int.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let int_cert = int.signed_by(&int_key, &ext_cert, &ext_key).unwrap();

    let e = import_root(
        "c1.waymark",
        &int_cert.pem(),
        &int_key.serialize_pem(),
        &[],
        "",
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("trust_anchor_pem:"), "{e}");
    let e = import_root(
        "c1.waymark",
        &int_cert.pem(),
        &ext_key.serialize_pem(),
        &[],
        &ext_cert.pem(),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("key_pem:"), "{e}");
    let e = import_root("c1.waymark", "not pem", &int_key.serialize_pem(), &[], "").unwrap_err();
    assert!(e.to_string().starts_with("cert_pem:"), "{e}");

    let imported = import_root(
        "c1.waymark",
        &int_cert.pem(),
        &int_key.serialize_pem(),
        &[],
        &ext_cert.pem(),
    )
    .unwrap();
    assert!(imported.imported);
    assert_eq!(imported.trust_anchor_pem, ext_cert.pem());
    let root = root_record(imported);
    let key = KeyPair::generate().unwrap();
    let leaf = sign_leaf(&root, "api", &csr(&key), Duration::from_secs(60)).unwrap();
    let der = der_of(&leaf.cert_pem);
    let (_, cert) = parse_x509_certificate(&der).unwrap();
    let (_, int_parsed) = parse_x509_certificate(int_cert.der()).unwrap();
    assert_eq!(cert.issuer(), int_parsed.subject());
    cert.verify_signature(Some(int_parsed.public_key()))
        .unwrap();
}
