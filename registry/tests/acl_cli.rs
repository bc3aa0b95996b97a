//! `waymark acl …` as an operator runs it, against a three-node cluster with
//! `default_policy = "deny"`: bootstrap once, a policy from `--rule` text, a token
//! carrying it used through `WAYMARK_TOKEN`, `whoami`, listing without secrets, and a
//! deleted token refused; and a CI job's JWT login (`acl auth-method create` from a
//! JWKS file, `acl binding-rule create`, `acl login --jwt FILE`; a method with
//! `--jwks-url` and `--jwks-ca-cert`). Every step is the real `waymark` binary.

mod common;

use std::process::{Command, Output};

use common::jwt::{claims, Issuer};
use common::*;
use serde_json::{json, Value};
use waymark_registry::acl::{AclConfig, DefaultPolicy};
use waymark_registry::tls::generate::LocalCa;

/// Runs `waymark ARGS --addr ADDR` with `token` (if any) in `WAYMARK_TOKEN`, off the
/// async runtime.
async fn waymark(addr: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_waymark"));
    cmd.args(args)
        .args(["--addr", addr])
        .env_remove("WAYMARK_TOKEN");
    if let Some(secret) = token {
        cmd.env("WAYMARK_TOKEN", secret);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("running waymark"))
        .await
        .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Insists the command succeeded; its stdout.
async fn ok(addr: &str, token: Option<&str>, args: &[&str]) -> String {
    let out = waymark(addr, token, args).await;
    assert!(
        out.status.success(),
        "waymark {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Insists the command failed with exit code 1; its stderr.
async fn refused(addr: &str, token: Option<&str>, args: &[&str]) -> String {
    let out = waymark(addr, token, args).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "waymark {args:?} should fail: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

async fn json(addr: &str, token: Option<&str>, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let out = ok(addr, token, &with_json).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn register(service: &str, id: &str) -> Vec<String> {
    ["register", "--service", service, "--id", id]
        .into_iter()
        .chain(["--address", "10.0.0.1", "--port", "8080"])
        .map(String::from)
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_bootstraps_and_hands_out_a_scoped_token() {
    let cluster = TestCluster::start(3, |c| {
        c.acl = AclConfig {
            enabled: true,
            default_policy: DefaultPolicy::Deny,
            dns_token: None,
            ..AclConfig::default()
        }
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.running_ids().into_iter().find(|&id| id != leader);
    let addr = cluster.node(follower.unwrap()).config.api_addr.clone();

    // No token: refused, and the error says how to present one.
    let err = refused(&addr, None, &strs(&register("web", "web-1"))).await;
    assert!(err.contains("UNAUTHENTICATED"), "{err}");

    let boot = json(&addr, None, &["acl", "bootstrap"]).await;
    let management = boot["secret"].as_str().expect("a secret").to_string();
    let management_accessor = boot["token"]["accessor_id"].as_str().unwrap().to_string();
    assert_eq!(boot["token"]["policies"][0], "global-management");
    let again = refused(&addr, None, &["acl", "bootstrap"]).await;
    assert!(again.contains("FAILED_PRECONDITION"), "{again}");
    let m = Some(management.as_str());

    let written = ok(
        &addr,
        m,
        &[
            "acl",
            "policy",
            "create",
            "web-writer",
            "--rule",
            "service:web:write",
            "--rule",
            "service-prefix::read",
            "--description",
            "web's sidecar",
        ],
    )
    .await;
    assert!(written.contains("wrote policy web-writer"), "{written}");
    let policy = json(&addr, m, &["acl", "policy", "read", "web-writer"]).await;
    assert_eq!(
        policy["policy"]["rules"],
        serde_json::json!(["service:web:write", "service-prefix::read"])
    );
    // A bad rule is refused before any call, naming the rule and the syntax.
    let bad = waymark(
        &addr,
        m,
        &["acl", "policy", "create", "p", "--rule", "service:web:all"],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("unknown access \"all\""),
        "{}",
        text(&bad.stderr)
    );

    let created = json(
        &addr,
        m,
        &["acl", "token", "create", "--policy", "web-writer"],
    )
    .await;
    let web = created["secret"].as_str().unwrap().to_string();
    let web_accessor = created["token"]["accessor_id"]
        .as_str()
        .unwrap()
        .to_string();
    let w = Some(web.as_str());

    // The web token registers web, reads everything, and cannot touch api.
    let out = ok(&addr, w, &strs(&register("web", "web-1"))).await;
    assert!(out.contains("web/web-1"), "{out}");
    let denied = refused(&addr, w, &strs(&register("api", "api-1"))).await;
    assert!(denied.contains("PERMISSION_DENIED"), "{denied}");
    let services = json(&addr, w, &["services"]).await;
    assert_eq!(services["services"][0]["name"], "web", "{services}");

    let me = json(&addr, w, &["acl", "whoami"]).await;
    assert_eq!(me["token"]["accessor_id"], web_accessor.as_str());
    assert_eq!(me["enabled"], true);
    assert_eq!(me["default_policy"], "deny");
    // Listing tokens needs acl read, which the web token lacks.
    let err = refused(&addr, w, &["acl", "token", "list"]).await;
    assert!(err.contains("PERMISSION_DENIED"), "{err}");

    let listed = ok(&addr, m, &["acl", "token", "list"]).await;
    for accessor in [&management_accessor, &web_accessor] {
        assert!(listed.contains(accessor.as_str()), "{listed}");
    }
    for secret in [&management, &web] {
        assert!(
            !listed.contains(secret.as_str()),
            "a secret listed: {listed}"
        );
    }

    let deleted = ok(&addr, m, &["acl", "token", "delete", &web_accessor]).await;
    assert!(deleted.contains("deleted token"), "{deleted}");
    let err = refused(&addr, w, &strs(&register("web", "web-2"))).await;
    assert!(err.contains("UNAUTHENTICATED"), "{err}");
    let gone = ok(&addr, m, &["acl", "token", "delete", &web_accessor]).await;
    assert!(gone.contains("nothing removed"), "{gone}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ci_job_exchanges_its_jwt_for_a_short_lived_token() {
    let cluster = TestCluster::start(3, |c| {
        c.acl = AclConfig {
            enabled: true,
            default_policy: DefaultPolicy::Deny,
            dns_token: None,
            ..AclConfig::default()
        }
    })
    .await;
    let leader = cluster.wait_for_leader().await;
    let addr = cluster.node(leader).config.api_addr.clone();
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_string()
    };

    let boot = json(&addr, None, &["acl", "bootstrap"]).await;
    let management = boot["secret"].as_str().unwrap().to_string();
    let m = Some(management.as_str());
    ok(
        &addr,
        m,
        &[
            "acl",
            "policy",
            "create",
            "web-writer",
            "--rule",
            "service:web:write",
        ],
    )
    .await;
    let key = Issuer::es256("ci-1");
    let jwks = file("jwks.json", &key.jwks());
    let pem = file("ci.pem", &key.public_pem());
    let written = ok(
        &addr,
        m,
        &[
            "acl",
            "auth-method",
            "create",
            "ci",
            "--issuer",
            "https://ci.example",
            "--audience",
            "waymark",
            "--jwks-file",
            &jwks,
            "--public-key-file",
            &pem,
            "--max-token-ttl",
            "10m",
        ],
    )
    .await;
    assert!(written.contains("wrote auth method ci"), "{written}");
    let method = json(&addr, m, &["acl", "auth-method", "read", "ci"]).await;
    assert_eq!(method["method"]["max_token_ttl_ms"], 600_000);
    assert_eq!(method["method"]["public_keys"].as_array().unwrap().len(), 1);
    let rule = json(
        &addr,
        m,
        &[
            "acl",
            "binding-rule",
            "create",
            "--method",
            "ci",
            "--selector",
            "service=web and groups contains builders",
            "--policy",
            "web-writer",
        ],
    )
    .await;
    let rule_id = rule["rule"]["id"].as_str().unwrap().to_string();
    let listed = ok(&addr, m, &["acl", "binding-rule", "list", "--method", "ci"]).await;
    assert!(
        listed.contains(&rule_id) && listed.contains("groups contains builders"),
        "{listed}"
    );

    // The job's JWT, from a file; no token is needed to log in.
    let good = key.sign(&claims(
        "https://ci.example",
        "waymark",
        600,
        json!({"sub": "pipeline-9", "service": "web", "groups": ["builders"]}),
    ));
    let jwt = file("job.jwt", &format!("{good}\n"));
    let text = ok(
        &addr,
        None,
        &["acl", "login", "--method", "ci", "--jwt", &jwt],
    )
    .await;
    for word in [
        "accessor",
        "secret",
        "policies",
        "web-writer",
        "expires",
        "in ",
    ] {
        assert!(text.contains(word), "{word}: {text}");
    }
    let login = json(
        &addr,
        None,
        &["acl", "login", "--method", "ci", "--jwt", &jwt],
    )
    .await;
    assert_eq!(login["token"]["policies"], json!(["web-writer"]));
    assert_eq!(login["token"]["origin"], "login:ci");
    assert!(login["token"]["expires_at_unix_ms"].as_u64().is_some());
    let secret = login["secret"].as_str().unwrap().to_string();
    let out = ok(
        &addr,
        Some(secret.as_str()),
        &strs(&register("web", "web-1")),
    )
    .await;
    assert!(out.contains("web/web-1"), "{out}");
    let denied = refused(
        &addr,
        Some(secret.as_str()),
        &strs(&register("api", "api-1")),
    )
    .await;
    assert!(denied.contains("PERMISSION_DENIED"), "{denied}");

    // An expired JWT is refused, and the CLI says why.
    let expired = file(
        "old.jwt",
        &key.sign(&claims(
            "https://ci.example",
            "waymark",
            -300,
            json!({"service": "web", "groups": ["builders"]}),
        )),
    );
    let err = refused(
        &addr,
        None,
        &["acl", "login", "--method", "ci", "--jwt", &expired],
    )
    .await;
    assert!(
        err.contains("UNAUTHENTICATED") && err.contains("JWT expired"),
        "{err}"
    );

    // Keys from a URL: the CLI sends the URL and the CA file's content, the server
    // checks both (nothing is fetched until a login).
    let ca = file("idp-ca.pem", &LocalCa::new("idp").unwrap().cert_pem());
    let url = "https://idp.example/.well-known/jwks.json";
    let create = |url: &'static str| {
        vec![
            "acl",
            "auth-method",
            "create",
            "idp",
            "--issuer",
            "https://idp.example",
            "--audience",
            "waymark",
            "--jwks-url",
            url,
        ]
    };
    let mut args = create(url);
    args.extend(["--jwks-ca-cert", ca.as_str()]);
    let written = ok(&addr, m, &args).await;
    assert!(written.contains("wrote auth method idp"), "{written}");
    let method = json(&addr, m, &["acl", "auth-method", "read", "idp"]).await;
    assert_eq!(method["method"]["jwks_url"], url);
    assert!(method["method"]["jwks_ca_cert"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let shown = ok(&addr, m, &["acl", "auth-method", "read", "idp"]).await;
    assert!(
        shown.contains(&format!("{url} (trusting its own CA)")),
        "{shown}"
    );
    let err = refused(&addr, m, &create("ftp://idp.example/jwks")).await;
    assert!(
        err.contains("method.jwks_url") && err.contains("http:// or https://"),
        "{err}"
    );

    let gone = ok(&addr, m, &["acl", "auth-method", "delete", "ci"]).await;
    assert!(gone.contains("1 binding rule(s) deleted"), "{gone}");
    cluster.shutdown().await;
}
