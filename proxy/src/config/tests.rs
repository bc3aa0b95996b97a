//! Unit tests of the configuration: defaults, overrides, and each rule's error naming
//! its key.

use super::*;

const MINIMAL: &str = r#"
[registry]
addrs = ["127.0.0.1:8500", "127.0.0.1:8501"]

[service]
name = "web"
port = 8080

[inbound]
listen = "127.0.0.1:21000"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, &Overrides::default())
}

/// The key of the error `text` gives.
fn error_key(text: &str) -> String {
    parse(text).unwrap_err().key
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.registry.addrs.len(), 2);
    assert_eq!(c.service.id, "web");
    assert_eq!(c.service.app, "127.0.0.1:8080");
    assert_eq!(c.service.advertise_address, "127.0.0.1");
    assert_eq!(c.service.lease_ttl, Duration::from_secs(10));
    assert_eq!(c.inbound.advertise_port, 21000);
    assert_eq!(c.admin.listen.to_string(), DEFAULT_ADMIN_LISTEN);
    assert_eq!(c.drain.grace, Duration::from_secs(5));
    assert_eq!(c.log, LogFormat::Json);
    assert_eq!(c.worker_threads, 1);
    assert_eq!(c.scheduling, Scheduling::Batch);
    assert_eq!(c.inbound.protocol, Protocol::Tcp);
    assert!(!c.mesh.mtls, "mTLS is opt-in");
    let r = c.registration();
    assert_eq!((r.port, r.address.as_str()), (8080, "127.0.0.1"));
    assert_eq!(r.meta[MESH_PORT_META], "21000");
    assert_eq!(r.meta[PROXY_ADMIN_META], DEFAULT_ADMIN_LISTEN);
}

#[test]
fn upstreams_and_checks_parse_with_defaults_by_protocol() {
    let text = format!(
        r#"{MINIMAL}
[[service.checks]]
kind = "http"
interval = "2s"
failures_before_critical = 3

[[service.checks]]
kind = "grpc"
target = "127.0.0.1:9090"
deregister_critical_after = "1m"

[[upstreams]]
service = "api"
listen = "127.0.0.1:9001"
protocol = "http"

[[upstreams]]
service = "db"
listen = "127.0.0.1:9002"
"#
    );
    let c = parse(&text).unwrap();
    let http = &c.service.checks[0];
    assert_eq!(
        http.target,
        CheckTarget::Http {
            url: "http://127.0.0.1:8080/".parse().unwrap()
        }
    );
    assert_eq!(
        (http.failures_before_warning, http.failures_before_critical),
        (3, 3),
        "no warning stage unless asked for"
    );
    assert_eq!(c.upstreams[0].policy, Policy::PeakEwma);
    assert_eq!(c.upstreams[1].policy, Policy::LeastRequest);
    assert_eq!(c.upstreams[1].protocol, Protocol::Tcp);
    assert_eq!(c.registration().deregister_critical_after_ms, 60_000);
}

#[test]
fn flags_override_the_file() {
    let o = Overrides {
        registry_addrs: Some(vec!["10.0.0.9:8500".into()]),
        service_id: Some("web-7".into()),
        admin_listen: Some("127.0.0.1:0".into()),
        inbound_listen: Some("10.0.0.5:22000".into()),
        log_format: Some(LogFormat::Text),
    };
    let c = Config::parse(MINIMAL, &o).unwrap();
    assert_eq!(c.registry.addrs.len(), 1);
    assert_eq!(c.service.id, "web-7");
    assert_eq!(c.inbound.advertise_port, 22000);
    assert_eq!(
        c.service.advertise_address, "10.0.0.5",
        "the inbound IP is advertised"
    );
    assert_eq!(c.log, LogFormat::Text);
}

#[test]
fn an_admin_listener_on_every_interface_is_advertised_at_the_service_address() {
    let text = format!("{MINIMAL}\n[admin]\nlisten = \"0.0.0.0:19100\"\n").replace(
        "port = 8080",
        "port = 8080\nadvertise_address = \"10.1.2.3\"",
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.registration().meta[PROXY_ADMIN_META], "10.1.2.3:19100");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let e = parse(&format!("{MINIMAL}\nlisten_port = 3\n")).unwrap_err();
    assert!(e.message.contains("listen_port"), "{e}");
    let e = parse(&MINIMAL.replace("port = 8080", "port = 8080\nprot = 1")).unwrap_err();
    assert!(e.message.contains("prot"), "{e}");
    let e = parse(&format!(
        "{MINIMAL}\n[[upstreams]]\nservice = \"api\"\nlisten = \"127.0.0.1:1\"\npolcy = \"random\"\n"
    ))
    .unwrap_err();
    assert!(e.message.contains("polcy"), "{e}");
}

#[test]
fn each_rule_names_its_key() {
    let upstream = |extra: &str| {
        format!(
            "{MINIMAL}\n[[upstreams]]\nservice = \"api\"\nlisten = \"127.0.0.1:9001\"\n{extra}\n"
        )
    };
    let check = |extra: &str| format!("{MINIMAL}\n[[service.checks]]\nkind = \"tcp\"\n{extra}\n");
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{MINIMAL}\n[mesh]\nmtls = true\ndefault_intention = \"maybe\"\n"),
            "mesh.default_intention",
        ),
        (
            format!("{MINIMAL}\n[mesh]\ndefault_intention = \"deny\"\n"),
            "mesh.default_intention",
        ),
        (
            MINIMAL.replace(
                r#"addrs = ["127.0.0.1:8500", "127.0.0.1:8501"]"#,
                "addrs = []",
            ),
            "registry.addrs",
        ),
        (
            MINIMAL.replace("127.0.0.1:8501", "not a host"),
            "registry.addrs",
        ),
        (
            MINIMAL.replace("name = \"web\"", "name = \"Web_1\""),
            "service.name",
        ),
        (
            MINIMAL.replace("port = 8080", "port = 70000"),
            "service.port",
        ),
        (
            MINIMAL.replace("port = 8080", "port = 8080\nlease_ttl = \"100ms\""),
            "service.lease_ttl",
        ),
        (
            MINIMAL.replace("port = 8080", "port = 8080\nlease_ttl = \"soon\""),
            "service.lease_ttl",
        ),
        (
            MINIMAL.replace("port = 8080", "port = 8080\ntags = [\"ok\", \"ok\"]"),
            "service.tags[1]",
        ),
        (
            MINIMAL.replace("port = 8080", "port = 8080\nweights = { passing = 0 }"),
            "service.weights.passing",
        ),
        (
            MINIMAL.replace("127.0.0.1:21000", "localhost:21000"),
            "inbound.listen",
        ),
        (
            MINIMAL.replace("127.0.0.1:21000", "127.0.0.1:0"),
            "inbound.listen",
        ),
        (
            format!("{MINIMAL}\n[admin]\nlisten = \"127.0.0.1:21000\"\n"),
            "admin.listen",
        ),
        (
            format!("{MINIMAL}\n[service.meta]\nwaymark-mesh-port = \"1\"\n"),
            "service.meta.waymark-mesh-port",
        ),
        (
            format!("{MINIMAL}\n[service.meta]\nwaymark-proxy-admin = \"x\"\n"),
            "service.meta.waymark-proxy-admin",
        ),
        (
            format!("{MINIMAL}\n[runtime]\nworker_threads = 1000\n"),
            "runtime.worker_threads",
        ),
        (upstream("policy = \"fastest\""), "proxy.toml"),
        (
            upstream("request_timeout = \"5s\""),
            "upstreams[0].request_timeout",
        ),
        (
            upstream("connect_attempts = 0"),
            "upstreams[0].connect_attempts",
        ),
        (
            upstream("panic_threshold_percent = 101"),
            "upstreams[0].panic_threshold_percent",
        ),
        (
            upstream("ejection_base = \"10s\"\nejection_max = \"1s\""),
            "upstreams[0].ejection_max",
        ),
        (
            upstream("connect_timeout = \"0s\""),
            "upstreams[0].connect_timeout",
        ),
        (
            format!(
                "{}\n[[upstreams]]\nservice = \"db\"\nlisten = \"127.0.0.1:9001\"\n",
                upstream("")
            ),
            "upstreams[1].listen",
        ),
        (
            upstream("").replace("service = \"api\"", "service = \"API\""),
            "upstreams[0].service",
        ),
        (check("target = \"nohost\""), "service.checks[0].target"),
        (
            check("interval = \"1s\"\ntimeout = \"2s\""),
            "service.checks[0].timeout",
        ),
        (
            check("failures_before_warning = 3\nfailures_before_critical = 2"),
            "service.checks[0].failures_before_warning",
        ),
        (
            check("success_before_passing = 0"),
            "service.checks[0].success_before_passing",
        ),
        (
            check("deregister_critical_after = \"10ms\""),
            "service.checks[0].deregister_critical_after",
        ),
        (
            check("grpc_service = \"x\""),
            "service.checks[0].grpc_service",
        ),
        (
            MINIMAL.replace(
                "[inbound]",
                "[[service.checks]]\nkind = \"http\"\ntarget = \"https://x:1/\"\n[inbound]",
            ),
            "service.checks[0].target",
        ),
    ];
    for (text, key) in cases {
        let e = parse(&text).unwrap_err();
        assert_eq!(e.key, key, "{e}\n--- config:\n{text}");
        assert!(!e.message.is_empty());
    }
}

#[test]
fn a_missing_required_key_is_named() {
    let e = parse(&MINIMAL.replace("port = 8080\n", "")).unwrap_err();
    assert!(e.message.contains("port"), "{e}");
    assert_eq!(
        error_key("[service]\nname = \"x\"\nport = 1\n"),
        "proxy.toml"
    );
}

#[test]
fn mesh_mtls_and_the_default_intention_parse() {
    let c = parse(&format!(
        "{MINIMAL}\n[mesh]\nmtls = true\ndefault_intention = \"deny\"\n"
    ))
    .unwrap();
    assert!(c.mesh.mtls);
    assert_eq!(
        c.mesh.default_intention,
        waymark_proto::intention::Action::Deny
    );
}

#[test]
fn scheduling_is_batch_or_normal_and_anything_else_is_refused_by_name() {
    let c = parse(&format!("{MINIMAL}\n[runtime]\nscheduling = \"normal\"\n")).unwrap();
    assert_eq!(c.scheduling, Scheduling::Normal);
    let e = parse(&format!("{MINIMAL}\n[runtime]\nscheduling = \"fifo\"\n")).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("scheduling") && text.contains("fifo") && text.contains("batch"),
        "{text}"
    );
}

#[test]
fn the_inbound_carries_http_when_asked_and_names_a_bad_protocol() {
    let http = MINIMAL.replace("[inbound]\n", "[inbound]\nprotocol = \"http\"\n");
    assert_eq!(parse(&http).unwrap().inbound.protocol, Protocol::Http);
    let bad = MINIMAL.replace("[inbound]\n", "[inbound]\nprotocol = \"udp\"\n");
    let text = parse(&bad).unwrap_err().to_string();
    assert!(text.contains("protocol") && text.contains("udp"), "{text}");
}
