//! Real HTTP/1.1, h2, gRPC and TCP through a client proxy and three server proxies to
//! three sample apps: every policy spreads requests over every instance (HTTP per
//! request, over one kept-alive connection), `weighted` follows the weights, and the
//! proxy's metrics pass `promtool check metrics`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const POLICIES: [&str; 5] = [
    "round_robin",
    "random",
    "weighted",
    "least_request",
    "peak_ewma",
];

/// Fields drop in order: processes first (printing their logs on failure), the
/// directory holding the logs last.
struct Mesh {
    _client: Proc,
    _instances: Vec<Instance>,
    registry: Registry,
    client_admin: u16,
    /// Listen address per policy, then the TCP upstream's.
    http: BTreeMap<&'static str, String>,
    tcp: String,
    _dir: tempfile::TempDir,
}

/// Three instances of `api` with passing weights 1, 1 and 2, and a client proxy with
/// one HTTP upstream per policy plus a TCP upstream.
async fn mesh() -> Mesh {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let instances: Vec<Instance> = [("a", 1), ("b", 1), ("c", 2)]
        .iter()
        .map(|(name, weight)| {
            Instance::start(
                &registry,
                "api",
                &format!("api-{name}"),
                dir.path(),
                &format!("weights = {{ passing = {weight}, warning = 1 }}"),
            )
        })
        .collect();
    let client_admin = free_port();
    let mut config = format!(
        "{}\n[service]\nname = \"web\"\nport = {}\n\n[inbound]\nlisten = \"127.0.0.1:{}\"\n\n[admin]\nlisten = \"127.0.0.1:{client_admin}\"\n",
        registry_table(&registry),
        free_port(),
        free_port()
    );
    let mut http = BTreeMap::new();
    for policy in POLICIES {
        let listen = format!("127.0.0.1:{}", free_port());
        config.push_str(&format!(
            "\n[[upstreams]]\nservice = \"api\"\nlisten = \"{listen}\"\nprotocol = \"http\"\npolicy = \"{policy}\"\n"
        ));
        http.insert(policy, listen);
    }
    let tcp = format!("127.0.0.1:{}", free_port());
    config.push_str(&format!(
        "\n[[upstreams]]\nservice = \"api\"\nlisten = \"{tcp}\"\nprotocol = \"tcp\"\npolicy = \"round_robin\"\n"
    ));
    let client = proxy("web", &config, dir.path());
    for listen in http.values().chain([&tcp]) {
        wait_for(&format!("three endpoints on {listen}"), || async {
            let ids = endpoint_ids(client_admin, listen).await?;
            (ids.len() == 3).then_some(())
        })
        .await;
    }
    Mesh {
        _dir: dir,
        registry,
        _instances: instances,
        _client: client,
        client_admin,
        http,
        tcp,
    }
}

/// `n` GETs over `conns` kept-alive HTTP/1.1 connections at once.
async fn h1_load(addr: &str, conns: usize, n: usize) -> Vec<Reply> {
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let addr = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = H1::connect(&addr).await.unwrap();
            let mut replies = Vec::new();
            for _ in 0..n / conns {
                replies.push(c.get("/").await.unwrap());
            }
            replies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn share(counts: &BTreeMap<String, usize>, name: &str) -> f64 {
    let total: usize = counts.values().sum();
    *counts.get(name).unwrap_or(&0) as f64 / total as f64
}

/// Every instance got at least `min` of the requests, and every request was answered
/// by an instance with 200.
fn assert_spread(what: &str, replies: &[Reply], min: f64) -> BTreeMap<String, usize> {
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{what}: a request failed"
    );
    let counts = tally(replies);
    for name in ["api-a", "api-b", "api-c"] {
        assert!(
            share(&counts, name) >= min,
            "{what}: {name} got too little: {counts:?}"
        );
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http1_h2_grpc_and_tcp_spread_over_every_instance_by_every_policy() {
    let mesh = mesh().await;

    for policy in POLICIES {
        let addr = &mesh.http[policy];
        // HTTP/1.1: 8 kept-alive connections, balanced per request.
        let replies = h1_load(addr, 8, 800).await;
        let counts = assert_spread(&format!("{policy} over HTTP/1.1"), &replies, 0.10);
        match policy {
            "round_robin" | "random" => {
                for name in ["api-a", "api-b", "api-c"] {
                    let s = share(&counts, name);
                    assert!((0.23..=0.43).contains(&s), "{policy}: {counts:?}");
                }
            }
            "weighted" => {
                // Weights 1:1:2.
                let c = share(&counts, "api-c");
                assert!((0.40..=0.60).contains(&c), "weighted: {counts:?}");
            }
            _ => {}
        }
        // One kept-alive connection is spread too (per request, not per connection).
        // Not for peak_ewma: one request at a time leaves nothing in flight, so it
        // rightly sends them to whichever endpoints answer fastest.
        if policy != "peak_ewma" {
            let replies = h1_load(addr, 1, 90).await;
            assert_spread(&format!("{policy} over one connection"), &replies, 0.05);
        }

        // h2: one connection, 16 requests at a time.
        let h2 = H2::connect(addr).await.unwrap();
        let mut replies = Vec::new();
        for _ in 0..20 {
            let batch: Vec<_> = (0..16)
                .map(|_| {
                    let h2 = h2.clone();
                    tokio::spawn(async move { h2.get("/").await.unwrap() })
                })
                .collect();
            for t in batch {
                replies.push(t.await.unwrap());
            }
        }
        assert_spread(&format!("{policy} over h2"), &replies, 0.05);
    }

    // gRPC: grpc.health.v1 Check over one channel; the instance is in the headers.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", mesh.http["round_robin"]))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut health = HealthClient::new(channel);
    let mut replies = Vec::new();
    for _ in 0..60 {
        let resp = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("gRPC through the proxies");
        let served_by = resp
            .metadata()
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(resp.into_inner().status, 1, "SERVING");
        replies.push(Reply {
            status: 200,
            served_by,
            body: String::new(),
        });
    }
    let counts = assert_spread("gRPC", &replies, 0.30);
    assert!(
        counts.values().all(|n| *n == 20),
        "round robin over gRPC: {counts:?}"
    );

    // TCP: balanced per connection.
    let mut replies = Vec::new();
    for _ in 0..30 {
        let mut c = H1::connect(&mesh.tcp).await.unwrap();
        replies.push(c.get("/").await.unwrap());
    }
    let counts = assert_spread("TCP", &replies, 0.30);
    assert!(
        counts.values().all(|n| *n == 10),
        "round robin over TCP: {counts:?}"
    );

    // `waymark proxies` lists every proxied instance and what each routes to.
    let out = Command::new(waymark_bin())
        .args(["proxies", "--addr", &mesh.registry.apis.join(",")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in ["api/api-a", "api/api-b", "api/api-c", "web/web"] {
        assert!(text.contains(id), "{id} missing:\n{text}");
    }
    let web = text.lines().find(|l| l.starts_with("web/web")).unwrap();
    assert_eq!(web.matches("api: 3 endpoints at index").count(), 6, "{web}");
    assert!(text.contains("passing"), "{text}");

    // The metrics count what happened and pass promtool.
    let rr = format!("upstream=\"api\",listen=\"{}\"", mesh.http["round_robin"]);
    let requests = metric(
        mesh.client_admin,
        &format!("waymark_proxy_upstream_requests_total{{{rr}}}"),
    )
    .await;
    assert!(requests.is_some_and(|n| n > 0.0), "{requests:?}");
    let (status, text) = get_once(&format!("127.0.0.1:{}", mesh.client_admin), "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(text.contains(&format!(
        "waymark_proxy_upstream_responses_total{{{rr},class=\"2xx\"}}"
    )));
    assert!(text.contains(&format!(
        "waymark_proxy_upstream_endpoints{{{rr},state=\"ready\"}} 3"
    )));
    promtool_check(&text);
}
