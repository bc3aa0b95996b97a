//! `waymark-proxy` refuses a bad configuration before binding anything: exit status 2
//! and one line naming the file, the key and the rule. `--check` validates and exits.
//! (Every rule is covered by the unit tests in `src/config/tests.rs`.)

use std::process::Command;

const GOOD: &str = r#"
[registry]
addrs = ["127.0.0.1:8500"]

[service]
name = "web"
port = 8080

[inbound]
listen = "127.0.0.1:21000"

[[upstreams]]
service = "api"
listen = "127.0.0.1:9001"
protocol = "http"
"#;

fn run(config: &str, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_waymark-proxy"))
        .arg("--config")
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_a_good_config() {
    let (code, stdout, stderr) = run(GOOD, &["--check"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("proxy.toml: ok"), "{stdout}");
    assert!(
        stdout.contains("PeakEwma"),
        "the default HTTP policy is shown: {stdout}"
    );
}

#[test]
fn each_bad_config_names_its_key() {
    for (config, key) in [
        (
            GOOD.replace("protocol = \"http\"", "protocol = \"udp\""),
            "protocol",
        ),
        (
            GOOD.replace("port = 8080", "port = 8080\ncolour = \"blue\""),
            "colour",
        ),
        (
            GOOD.replace("127.0.0.1:9001", "127.0.0.1:21000"),
            "inbound.listen",
        ),
        (format!("{GOOD}policy = \"fastest\"\n"), "policy"),
        (
            format!("{GOOD}request_timeout = \"soon\"\n"),
            "upstreams[0].request_timeout",
        ),
        (
            GOOD.replace("name = \"web\"", "name = \"web service\""),
            "service.name",
        ),
        (GOOD.replace("[\"127.0.0.1:8500\"]", "[]"), "registry.addrs"),
    ] {
        let (code, _, stderr) = run(&config, &["--check"]);
        assert_eq!(code, 2, "{key}: {stderr}");
        assert!(stderr.contains(key), "expected {key:?} in: {stderr}");
        assert!(stderr.contains("proxy.toml"), "{stderr}");
    }
}

#[test]
fn a_flag_overrides_the_file_and_is_validated_the_same_way() {
    let (code, _, stderr) = run(GOOD, &["--check", "--admin-listen", "nowhere"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("admin.listen"), "{stderr}");
}

#[test]
fn a_listen_address_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = GOOD.replace("127.0.0.1:9001", &format!("127.0.0.1:{port}"));
    let (code, _, stderr) = run(&config, &["--admin-listen", "127.0.0.1:0"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("upstreams[0].listen"), "{stderr}");
}
