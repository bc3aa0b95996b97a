//! Failures the client proxy answers for itself: with no endpoint, HTTP gets 503 with
//! a body saying why and a TCP connection is closed at once; an instance that answers
//! 5xx (while its health check still passes) is ejected by outlier detection, the
//! others keep serving, and after the ejection it is back on probation.

mod common;

use common::*;
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_endpoint_is_a_503_saying_why_and_a_closed_tcp_connection() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let (http_listen, tcp_listen) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let admin = free_port();
    let config = format!(
        "{}\n[service]\nname = \"web\"\nport = {}\n\n[inbound]\nlisten = \"127.0.0.1:{}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[[upstreams]]\nservice = \"nothing\"\nlisten = \"{http_listen}\"\nprotocol = \"http\"\n\n[[upstreams]]\nservice = \"nothing\"\nlisten = \"{tcp_listen}\"\n",
        registry_table(&registry),
        free_port(),
        free_port()
    );
    let _client = proxy("web", &config, dir.path());
    wait_ready(admin).await;

    let (status, body) = get_once(&http_listen, "/").await.unwrap();
    assert_eq!(status, 503);
    assert!(
        body.contains("service \"nothing\" has no passing instance"),
        "{body}"
    );

    let mut stream = tokio::net::TcpStream::connect(&tcp_listen).await.unwrap();
    let mut buf = [0u8; 16];
    let read = stream.read(&mut buf).await;
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "the connection is closed at once: {read:?}"
    );
    let refused = metric(
        admin,
        &format!("waymark_proxy_upstream_no_endpoint_total{{upstream=\"nothing\",listen=\"{tcp_listen}\"}}"),
    )
    .await;
    assert_eq!(refused, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_answering_5xx_is_ejected_and_comes_back_on_probation() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let _a = Instance::start(&registry, "api", "api-a", dir.path(), "");
    let _b = Instance::start(&registry, "api", "api-b", dir.path(), "");
    let c = Instance::start(&registry, "api", "api-c", dir.path(), "");
    let (_client, admin, listen) = client_proxy(
        &registry,
        dir.path(),
        "round_robin",
        "eject_after_failures = 3\nejection_base = \"1s\"",
    );
    wait_endpoints(admin, &listen, &["api-a", "api-b", "api-c"]).await;

    post(&format!("127.0.0.1:{}", c.app_port), "/errors/on").await;
    let state_of_c = || async {
        let json = endpoints_json(admin).await?;
        json["upstreams"][0]["endpoints"]
            .as_array()?
            .iter()
            .find(|e| e["id"] == "api-c")
            .map(|e| e["state"].as_str().unwrap_or_default().to_string())
    };
    let mut conn = H1::connect(&listen).await.unwrap();
    let mut errors = 0;
    while state_of_c().await.as_deref() != Some("ejected") {
        let r = conn.get("/").await.unwrap();
        if r.status == 500 {
            errors += 1;
        }
        assert!(errors <= 3, "more 5xx than the ejection threshold");
    }
    assert_eq!(errors, 3, "ejected after exactly three 5xx in a row");
    // While c is out, every request is served by a or b.
    let mut served = Vec::new();
    for _ in 0..60 {
        let r = conn.get("/").await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        served.push(r);
    }
    let counts = tally(&served);
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["api-a", "api-b"],
        "{counts:?}"
    );

    // c recovers; when its ejection ends it is on probation, and one success clears it.
    post(&format!("127.0.0.1:{}", c.app_port), "/errors/off").await;
    wait_for("c back on probation", || async {
        (state_of_c().await.as_deref() == Some("probation")).then_some(())
    })
    .await;
    // Round robin over three: c answers within three requests.
    let mut c_served = false;
    for _ in 0..3 {
        let r = conn.get("/").await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        c_served |= r.served_by.as_deref() == Some("api-c");
    }
    assert!(c_served, "c is back in rotation");
    assert_eq!(state_of_c().await.as_deref(), Some("ready"));
    let ejections = metric(
        admin,
        &format!("waymark_proxy_upstream_ejections_total{{upstream=\"api\",listen=\"{listen}\"}}"),
    )
    .await;
    assert_eq!(ejections, Some(1.0));
}
