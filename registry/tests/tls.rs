//! TLS on both ports. In-process: a cluster whose nodes talk mutual TLS elects a
//! leader and takes writes through a follower (forwarded over mTLS); a client with
//! the CA reads and writes, a plaintext client and one trusting another CA are
//! refused and counted; a peer with no certificate, or one from a foreign CA, cannot
//! append entries or forward a write, while one with a cluster certificate can.
//! Real processes: the `waymark` CLI with `--ca-file` / `WAYMARK_CACERT`, the clear
//! error of a plaintext CLI on a TLS port, and the refusal in the node's log.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::process::Procs;
use common::*;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use waymark_client::{ClientTls, ConnectOptions};
use waymark_proto::pb;
use waymark_registry::tls::generate::LocalCa;
use waymark_registry::tls::TlsConfig;

/// A JSON `Register` as a follower forwards it: valid, so only the transport decides.
const FORWARDED_REGISTER: &str = r#"{"Register":{"service":"web","id":"web-9",
    "address":"10.0.0.9","port":8080,"tags":[],"meta":{},"weight_passing":1,
    "weight_warning":1,"lease_id":null,"on_lease_expiry":"Remove",
    "deregister_critical_after_ms":0}}"#;

/// One certificate every node of a test cluster can use: all listen on 127.0.0.1.
fn cluster_files(dir: &Path) -> (LocalCa, TlsConfig) {
    let ca = LocalCa::new("test cluster CA").unwrap();
    let files = ca.write_node(dir, "server", &["127.0.0.1"]).unwrap();
    (ca, files)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn options(ca_file: &Path) -> ConnectOptions {
    ConnectOptions {
        tls: Some(ClientTls::from_ca_file(ca_file).unwrap()),
        ..Default::default()
    }
}

/// A Raft client dialling `raft_addr` with `tls` (None: plaintext).
fn raft_client(
    raft_addr: &str,
    tls: Option<ClientTlsConfig>,
) -> pb::raft_client::RaftClient<tonic::transport::Channel> {
    let endpoint = match tls {
        Some(tls) => Endpoint::from_shared(format!("https://{raft_addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap(),
        None => Endpoint::from_shared(format!("http://{raft_addr}")).unwrap(),
    };
    pb::raft_client::RaftClient::new(
        endpoint
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy(),
    )
}

/// The node's count of refused TLS handshakes on `port`.
fn refused(node: &waymark_registry::node::Node, port: &str) -> u64 {
    let mut text = String::new();
    node.metrics.render(&mut text);
    let series = format!("waymark_tls_handshakes_refused_total{{port=\"{port}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

async fn service_names(addr: &str, ca_file: &Path) -> Vec<String> {
    let channel = options(ca_file).connect(addr).await.unwrap();
    waymark_client::catalog(channel)
        .list_services(pb::ListServicesRequest { read: consistent() })
        .await
        .unwrap()
        .into_inner()
        .services
        .into_iter()
        .map(|s| s.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_need_the_ca_and_peers_need_a_cluster_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (_ca, files) = cluster_files(certs.path());
    let cluster = TestCluster::start(3, |c| c.tls = Some(files.clone())).await;
    // A leader at all means the nodes' Raft traffic passed mutual TLS.
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .running_ids()
        .into_iter()
        .find(|&id| id != leader)
        .unwrap();
    let follower_addr = cluster.node(follower).config.api_addr.clone();

    // A write through a follower is forwarded to the leader over mutual TLS.
    let channel = options(&files.ca_file)
        .connect(&follower_addr)
        .await
        .unwrap();
    let written = waymark_client::catalog(channel)
        .register(registration("api", "api-1", 9090))
        .await
        .expect("register over TLS through a follower")
        .into_inner();
    assert!(written.index > 0);
    assert_eq!(service_names(&follower_addr, &files.ca_file).await, ["api"]);

    // Plaintext to the TLS API port: refused, and counted.
    let node = &cluster.node(follower).node;
    let before = refused(node, "api");
    let plain = catalog_client(&follower_addr)
        .await
        .list_services(pb::ListServicesRequest { read: consistent() })
        .await
        .expect_err("plaintext gRPC to a TLS port");
    // Made by this side's transport (hung up on, or a TLS alert misread as h2): the
    // server never answered.
    assert!(std::error::Error::source(&plain).is_some(), "{plain:?}");
    wait_for("the plaintext attempt counted", || async {
        (refused(node, "api") > before).then_some(())
    })
    .await;
    // A client that trusts another CA does not accept the node's certificate.
    let stranger = tempfile::tempdir().unwrap();
    let (_, foreign) = cluster_files(stranger.path());
    let err = options(&foreign.ca_file)
        .connect(&follower_addr)
        .await
        .expect_err("a node certificate from a CA the client does not trust");
    assert!(err.to_string().contains("could not reach"), "{err}");

    // The Raft port: a peer with no certificate, or one the cluster CA did not sign,
    // can neither append entries nor forward a write.
    let leader_node = &cluster.node(leader).node;
    let raft_addr = cluster.node(leader).config.raft_addr.clone();
    let cluster_roots = Certificate::from_pem(read(&files.ca_file));
    let attempts = [
        ("plaintext", None),
        (
            "TLS without a client certificate",
            Some(ClientTlsConfig::new().ca_certificate(cluster_roots.clone())),
        ),
        (
            "a client certificate from a foreign CA",
            Some(
                ClientTlsConfig::new()
                    .ca_certificate(cluster_roots.clone())
                    .identity(Identity::from_pem(
                        read(&foreign.cert_file),
                        read(&foreign.key_file),
                    )),
            ),
        ),
    ];
    let before = refused(leader_node, "raft");
    for (what, tls) in &attempts {
        let mut raft = raft_client(&raft_addr, tls.clone());
        let forwarded = forward_one(&mut raft, FORWARDED_REGISTER).await;
        assert!(forwarded.is_err(), "{what}: a forwarded write was answered");
        let appended = raft
            .append_entries(pb::RaftPayload {
                data: b"{}".to_vec(),
            })
            .await;
        assert!(appended.is_err(), "{what}: AppendEntries was answered");
    }
    wait_for("every refused attempt counted", || async {
        (refused(leader_node, "raft") >= before + attempts.len() as u64).then_some(())
    })
    .await;
    assert_eq!(
        service_names(&follower_addr, &files.ca_file).await,
        ["api"],
        "nothing written by the refused peers"
    );

    // The control: the same forwarded write with a cluster certificate is taken.
    let member = ClientTlsConfig::new()
        .ca_certificate(cluster_roots)
        .identity(Identity::from_pem(
            read(&files.cert_file),
            read(&files.key_file),
        ));
    forward_one(
        &mut raft_client(&raft_addr, Some(member)),
        FORWARDED_REGISTER,
    )
    .await
    .expect("a forwarded write from a cluster member");
    assert_eq!(
        service_names(&follower_addr, &files.ca_file).await,
        ["api", "web"]
    );
    cluster.shutdown().await;
}

/// Runs the `waymark` CLI with `env` set (and the TLS variables cleared otherwise).
async fn waymark(args: Vec<String>, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_waymark"));
    cmd.args(args)
        .env_remove("WAYMARK_CACERT")
        .env_remove("WAYMARK_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("running waymark"))
        .await
        .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_over_tls_and_a_refused_peer_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, files) = cluster_files(&dir.path().join("tls"));
    let path = |p: &PathBuf| p.display().to_string();
    let procs = Procs::start(
        dir.path(),
        3,
        &[
            "--tls-ca-file",
            &path(&files.ca_file),
            "--tls-cert-file",
            &path(&files.cert_file),
            "--tls-key-file",
            &path(&files.key_file),
        ],
    );
    let addrs = procs.apis().join(",");
    let ca = files.ca_file.as_path();

    // Register once a leader is up (the CLI fails over between the nodes).
    let register = args(&[
        "register",
        "--service",
        "web",
        "--id",
        "web-1",
        "--address",
        "10.0.0.1",
        "--port",
        "8080",
        "--addr",
        &addrs,
        "--ca-file",
        &path(&files.ca_file),
    ]);
    wait_for("a registration over TLS", || {
        let register = register.clone();
        async move { waymark(register, &[]).await.status.success().then_some(()) }
    })
    .await;
    // The CA from the environment, as an operator would export it.
    let listed = waymark(
        args(&["instances", "web", "--json", "--addr", &procs.apis()[2]]),
        &[("WAYMARK_CACERT", ca)],
    )
    .await;
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(text(&listed).contains("web-1"), "{}", text(&listed));

    // Plaintext to a TLS port fails, and says what to do.
    let plain = waymark(args(&["instances", "web", "--addr", &procs.apis()[0]]), &[]).await;
    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain));
    let message = text(&plain);
    assert!(
        message.contains("failed") && message.contains("if the cluster uses TLS, pass --ca-file"),
        "{message}"
    );
    // A CA file that is not one is named before anything is sent.
    let bad = waymark(
        args(&[
            "instances",
            "web",
            "--addr",
            &procs.apis()[0],
            "--ca-file",
            &path(&files.key_file),
        ]),
        &[],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("key.pem"), "{}", text(&bad));

    // The plaintext attempt is in the node's log with the peer's address.
    let log = dir.path().join("node-1.log");
    wait_for("the refusal in node 1's log", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .any(|l| {
                l.contains("refused a TLS connection")
                    && l.contains("127.0.0.1:")
                    && l.contains("plaintext")
            })
            .then_some(())
    })
    .await;
    drop(procs);
}
