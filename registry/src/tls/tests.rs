//! Loading `[tls]` files: generated certificates load, and each kind of bad file is
//! refused with the key and path named.

use super::generate::LocalCa;
use super::*;

fn node_files(dir: &Path) -> TlsConfig {
    let ca = LocalCa::new("test CA").unwrap();
    ca.write_node(dir, "node-1", &["127.0.0.1", "localhost"])
        .unwrap()
}

fn load_error(config: &TlsConfig) -> String {
    match NodeTls::load(config) {
        Ok(_) => panic!("{config:?} loaded"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn generated_certificates_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_files(dir.path());
    NodeTls::load(&config).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config.key_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "private keys are readable by the owner only"
    );
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_files(dir.path());
    config.ca_file = dir.path().join("nope.pem");
    let err = load_error(&config);
    assert!(
        err.contains("tls.ca_file") && err.contains("nope.pem"),
        "{err}"
    );
}

#[test]
fn a_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_files(dir.path());
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    config.cert_file = empty;
    let err = load_error(&config);
    assert!(
        err.contains("tls.cert_file") && err.contains("no certificate"),
        "{err}"
    );
}

#[test]
fn a_key_that_does_not_fit_the_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_files(dir.path());
    let other = node_files(&dir.path().join("other"));
    config.key_file = other.key_file;
    let err = load_error(&config);
    assert!(err.contains("does not fit"), "{err}");
}

#[test]
fn a_certificate_file_is_not_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_files(dir.path());
    config.key_file = config.cert_file.clone();
    let err = load_error(&config);
    assert!(
        err.contains("tls.key_file") && err.contains("no usable private key"),
        "{err}"
    );
}

#[test]
fn an_oversized_file_is_refused_without_reading_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_files(dir.path());
    // A device that never ends: read whole, it would hang and exhaust memory.
    config.ca_file = PathBuf::from("/dev/zero");
    let err = load_error(&config);
    assert!(
        err.contains("tls.ca_file") && err.contains("larger than"),
        "{err}"
    );
}

/// Whether `leaf_pem` chains to the CA in `ca_file` for `name`, as a client would check.
fn verifies_against(ca_file: &Path, leaf_pem: &str, name: &str) -> Result<(), rustls::Error> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    let mut roots = RootCertStore::empty();
    for cert in read_certs("ca", ca_file).unwrap() {
        roots.add(cert).unwrap();
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        crypto_provider(),
    )
    .build()
    .unwrap();
    let leaf = CertificateDer::from_pem_slice(leaf_pem.as_bytes()).unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    verifier
        .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn a_reloaded_ca_issues_certificates_that_verify_against_the_file_nodes_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, key_file) = LocalCa::new("cli CA")
        .unwrap()
        .write_ca(dir.path())
        .unwrap();
    let ca = LocalCa::load(&ca_file, &key_file, 30).unwrap();
    let issued = ca.issue("node-1", &["10.1.2.3", "node-1.example"]).unwrap();
    verifies_against(&ca_file, &issued.cert_pem, "10.1.2.3").unwrap();
    verifies_against(&ca_file, &issued.cert_pem, "node-1.example").unwrap();
    assert!(
        verifies_against(&ca_file, &issued.cert_pem, "10.9.9.9").is_err(),
        "an address the certificate does not name must not verify"
    );
    // And a certificate from another CA does not verify against this one.
    let other = LocalCa::new("other CA").unwrap();
    let foreign = other.issue("node-1", &["10.1.2.3"]).unwrap();
    assert!(verifies_against(&ca_file, &foreign.cert_pem, "10.1.2.3").is_err());
}

#[test]
fn a_ca_is_never_replaced_and_its_key_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, key_file) = LocalCa::new("first").unwrap().write_ca(dir.path()).unwrap();
    let err = LocalCa::new("second")
        .unwrap()
        .write_ca(dir.path())
        .expect_err("a second CA in the same directory");
    assert!(format!("{err:#}").contains("already exists"), "{err:#}");

    let other_dir = dir.path().join("other");
    let (_, other_key) = LocalCa::new("other").unwrap().write_ca(&other_dir).unwrap();
    let err = LocalCa::load(&ca_file, &other_key, 30)
        .err()
        .expect("a foreign key");
    assert!(
        format!("{err:#}").contains("is not the private key"),
        "{err:#}"
    );
    let err = LocalCa::load(&key_file, &key_file, 30)
        .err()
        .expect("a key as the CA");
    assert!(
        format!("{err:#}").contains("not a CA certificate"),
        "{err:#}"
    );
    let leaf = LocalCa::load(&ca_file, &key_file, 30)
        .unwrap()
        .write_leaf(dir.path(), "n1", &["127.0.0.1"])
        .unwrap();
    let err = LocalCa::load(&leaf.cert_file, &leaf.key_file, 30)
        .err()
        .expect("a node certificate as the CA");
    assert!(
        format!("{err:#}").contains("not a CA certificate"),
        "{err:#}"
    );
}
