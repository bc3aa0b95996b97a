//! A data dir written in another storage format is refused before anything is
//! opened, with a message naming the format and what to do.

mod common;

use common::bind_listeners;
use tokio_util::sync::CancellationToken;
use waymark_registry::server::run_with;
use waymark_registry::ServerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_the_old_format_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    // What a node before format versions left: a RocksDB dir and no FORMAT file.
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    std::fs::write(dir.path().join("db").join("CURRENT"), "MANIFEST-000001\n").unwrap();
    let (listeners, api, raft, admin) = bind_listeners().await;
    let mut config = ServerConfig::new(1, dir.path());
    config.api_addr = api;
    config.raft_addr = raft;
    config.admin_addr = admin;
    config.dns_addr = listeners.dns.local_addr().unwrap().to_string();
    let (started, _never) = tokio::sync::oneshot::channel();
    let outcome = run_with(config, listeners, CancellationToken::new(), started).await;
    let err = format!(
        "{:#}",
        outcome.expect_err("an old data dir must be refused")
    );
    assert!(err.contains("storage format 1"), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    // Nothing was written into it.
    assert!(!dir.path().join("FORMAT").exists());
}
