//! Loading `[tls]` files: generated certificates load, and each kind of bad file is
//! refused with the key and path named.

use super::generate::DevCa;
use super::*;

fn node_files(dir: &Path) -> TlsConfig {
    let ca = DevCa::new("test CA").unwrap();
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
