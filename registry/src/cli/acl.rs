//! `waymark acl bootstrap|whoami|token …|policy …|auth-method …|binding-rule …|login`:
//! the first management token, tokens (secrets shown once, at creation), the policies
//! they carry, JWT auth methods (the CLI reads the key files and sends their content,
//! so every node verifies with the same keys), binding rules, and exchanging a JWT
//! for a short-lived token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use waymark_client::{acl as acl_client, duration_to_ms, parse_duration};
use waymark_proto::pb;

use super::acl_rule::{parse_rule, rule_text};
use super::client::{read, read_options, write};
use super::output::{self, emit, key_values, Table};
use super::{ClientOpts, ReadArgs, UsageError};

#[derive(Debug, Subcommand)]
pub(super) enum AclCommand {
    /// Create the first management token (once per cluster). Keep its secret: it is
    /// shown only now.
    Bootstrap(Plain),
    /// Show the token this command presents (WAYMARK_TOKEN / --token), as the server
    /// sees it.
    Whoami(Plain),
    /// Create, list, read or delete tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create or replace, list, read or delete policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Create or replace, list, read or delete auth methods (JWT issuers whose
    /// tokens `acl login` exchanges).
    #[command(subcommand)]
    AuthMethod(AuthMethodCommand),
    /// Create, list or delete binding rules (which JWT claims get which policies).
    #[command(subcommand)]
    BindingRule(BindingRuleCommand),
    /// Exchange a JWT for a short-lived token carrying the policies the method's
    /// binding rules grant; its secret is printed once. Needs no token.
    Login(LoginArgs),
}

#[derive(Debug, Subcommand)]
pub(super) enum AuthMethodCommand {
    /// Create an auth method, or replace the one of that name.
    #[command(visible_alias = "put")]
    Create(AuthMethodCreateArgs),
    /// List auth methods.
    List(ListArgs),
    /// Show one auth method, with its keys.
    Read(PolicyNameArgs),
    /// Delete an auth method and its binding rules (tokens it issued live on until
    /// they expire).
    Delete(PolicyNameArgs),
}

#[derive(Debug, Subcommand)]
pub(super) enum BindingRuleCommand {
    /// Create a binding rule; the server picks its id.
    Create(BindingRuleCreateArgs),
    /// List binding rules.
    List(BindingRuleListArgs),
    /// Delete a binding rule by id.
    Delete(BindingRuleIdArgs),
}

#[derive(Debug, Args)]
pub(super) struct AuthMethodCreateArgs {
    /// Auth method name (DNS label).
    name: String,
    /// The method's type; "jwt" is the one there is.
    #[arg(long = "type", default_value = "jwt", value_name = "TYPE")]
    method_type: String,
    /// The `iss` every JWT must carry.
    #[arg(long, value_name = "ISSUER")]
    issuer: String,
    /// An accepted `aud`; repeat for more (a JWT must name at least one).
    #[arg(long = "audience", value_name = "AUD", required = true)]
    audiences: Vec<String>,
    /// A JSON Web Key Set file with the issuer's public keys (its content is sent).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["public_key_files", "jwks_url"]
    )]
    jwks_file: Option<PathBuf>,
    /// A PEM public key file (EC P-256/P-384, Ed25519 or RSA); repeat for more.
    #[arg(long = "public-key-file", value_name = "FILE")]
    public_key_files: Vec<PathBuf>,
    /// An http(s) URL serving the issuer's JWKS (its `jwks_uri`): the node serving a
    /// login fetches it, caches the keys and refreshes them (every 5m, and on an
    /// unknown kid), keeping the last good keys while the URL is unreachable.
    #[arg(long, value_name = "URL")]
    jwks_url: Option<String>,
    /// A PEM file of the CA certificate(s) to trust for an https --jwks-url (its
    /// content is sent) [default: the system's trusted roots].
    #[arg(long, value_name = "FILE", requires = "jwks_url")]
    jwks_ca_cert: Option<PathBuf>,
    /// Longest life of a token a login creates (never past the JWT's exp) [default:
    /// 1h; at most 24h].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    max_token_ttl: Option<Duration>,
    /// Clock skew allowed on the JWT's exp and nbf [default: 10s; at most 5m].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    clock_skew: Option<Duration>,
    #[arg(long, default_value = "")]
    description: String,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct BindingRuleCreateArgs {
    /// The auth method the rule belongs to.
    #[arg(long, value_name = "METHOD")]
    method: String,
    /// Which verified JWTs it matches: terms `CLAIM=VALUE`, `CLAIM!=VALUE` or
    /// `CLAIM contains VALUE` joined by `and` (e.g. 'service=web',
    /// 'groups contains ops and env=prod'); empty matches every verified JWT.
    #[arg(long, default_value = "", value_name = "SELECTOR")]
    selector: String,
    /// A policy the matching logins get; repeat for more.
    #[arg(long = "policy", value_name = "NAME", required = true)]
    policies: Vec<String>,
    #[arg(long, default_value = "")]
    description: String,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct BindingRuleListArgs {
    /// Only this auth method's rules.
    #[arg(long, value_name = "METHOD")]
    method: Option<String>,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct BindingRuleIdArgs {
    /// Binding rule id (32 hex digits), as `acl binding-rule list` shows it.
    id: String,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct LoginArgs {
    /// The auth method to log in with.
    #[arg(long, value_name = "METHOD")]
    method: String,
    /// File holding the JWT ("-": standard input).
    #[arg(long, value_name = "FILE")]
    jwt: PathBuf,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Create a token carrying policies; its secret is printed once.
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    List(ListArgs),
    /// Show one token by accessor id.
    Read(TokenIdArgs),
    /// Delete a token by accessor id: requests and watches using it stop at once.
    Delete(TokenIdArgs),
}

#[derive(Debug, Subcommand)]
pub(super) enum PolicyCommand {
    /// Create a policy, or replace the one of that name.
    #[command(visible_alias = "put")]
    Create(PolicyCreateArgs),
    /// List policies with their rules.
    List(ListArgs),
    /// Show one policy.
    Read(PolicyNameArgs),
    /// Delete a policy; tokens that name it lose its rules.
    Delete(PolicyNameArgs),
}

#[derive(Debug, Args)]
pub(super) struct Plain {
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct TokenCreateArgs {
    /// What the token is for.
    #[arg(long, default_value = "")]
    description: String,
    /// A policy name the token carries; repeat for more ("global-management" for
    /// every right).
    #[arg(long = "policy", value_name = "NAME", required = true)]
    policies: Vec<String>,
    /// The token stops working this long after creation (at least 1s) [default:
    /// never].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    ttl: Option<Duration>,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct TokenIdArgs {
    /// Accessor id (32 hex digits), as `acl token list` shows it.
    accessor_id: String,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct PolicyCreateArgs {
    /// Policy name (DNS label).
    name: String,
    /// A rule, KIND[:NAME]:ACCESS, e.g. service:web:write, service-prefix::read,
    /// config-prefix:proxy/web:read, operator:write; repeat for more.
    #[arg(long = "rule", value_name = "RULE", value_parser = parse_rule, required = true)]
    rules: Vec<pb::AclRule>,
    #[arg(long, default_value = "")]
    description: String,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct PolicyNameArgs {
    name: String,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

pub(super) async fn run(cmd: AclCommand) -> anyhow::Result<()> {
    match cmd {
        AclCommand::Bootstrap(a) => {
            let resp = write(&a.client, |ch| async move {
                acl_client(ch).bootstrap(pb::BootstrapAclRequest {}).await
            })
            .await?;
            emit(
                a.client.json,
                || created_json(resp.token.as_ref(), &resp.secret, resp.index),
                || created_text(resp.token.as_ref(), &resp.secret, resp.index),
            );
        }
        AclCommand::Whoami(a) => {
            let resp = read(&a.client, |ch| async move {
                acl_client(ch).who_am_i(pb::WhoAmIRequest {}).await
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "token": resp.token.as_ref().map(token_json),
                        "enabled": resp.enabled,
                        "default_policy": resp.default_policy,
                    })
                },
                || whoami_text(&resp),
            );
        }
        AclCommand::Token(cmd) => token(cmd).await?,
        AclCommand::Policy(cmd) => policy(cmd).await?,
        AclCommand::AuthMethod(cmd) => auth_method(cmd).await?,
        AclCommand::BindingRule(cmd) => binding_rule(cmd).await?,
        AclCommand::Login(a) => login(a).await?,
    }
    Ok(())
}

fn read_text(flag: &str, path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .with_context(|| format!("reading {flag} from standard input"))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {flag} {}", path.display()))
}

async fn auth_method(cmd: AuthMethodCommand) -> anyhow::Result<()> {
    match cmd {
        AuthMethodCommand::Create(a) => {
            let jwks = match &a.jwks_file {
                Some(path) => read_text("--jwks-file", path)?,
                None => String::new(),
            };
            let public_keys = a
                .public_key_files
                .iter()
                .map(|p| read_text("--public-key-file", p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let jwks_ca_cert = match &a.jwks_ca_cert {
                Some(path) => read_text("--jwks-ca-cert", path)?,
                None => String::new(),
            };
            let request = pb::PutAuthMethodRequest {
                method: Some(pb::AclAuthMethod {
                    name: a.name,
                    r#type: a.method_type,
                    description: a.description,
                    issuer: a.issuer,
                    audiences: a.audiences,
                    jwks,
                    public_keys,
                    jwks_url: a.jwks_url.unwrap_or_default(),
                    jwks_ca_cert,
                    max_token_ttl_ms: a.max_token_ttl.map_or(0, duration_to_ms),
                    clock_skew_ms: a.clock_skew.map_or(0, duration_to_ms),
                    create_index: 0,
                    modify_index: 0,
                }),
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).put_auth_method(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "method": resp.method.as_ref().map(method_json), "index": resp.index }),
                || {
                    let name = resp.method.as_ref().map_or("", |m| m.name.as_str());
                    format!("wrote auth method {name} (index {})", resp.index)
                },
            );
        }
        AuthMethodCommand::List(a) => {
            let request = pb::ListAuthMethodsRequest {
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| async move {
                acl_client(ch).list_auth_methods(request).await
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "methods": resp.methods.iter().map(method_json).collect::<Vec<_>>(),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || {
                    let mut table =
                        Table::new(&["NAME", "TYPE", "ISSUER", "AUDIENCES", "MAX TOKEN TTL"]);
                    for m in &resp.methods {
                        table.row(vec![
                            m.name.clone(),
                            m.r#type.clone(),
                            m.issuer.clone(),
                            m.audiences.join(","),
                            output::ms_text(m.max_token_ttl_ms),
                        ]);
                    }
                    format!(
                        "{}\n{}\n",
                        table.render(),
                        output::footer(resp.meta.as_ref())
                    )
                },
            );
        }
        AuthMethodCommand::Read(a) => {
            let request = pb::ReadAuthMethodRequest {
                name: a.name,
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).read_auth_method(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "method": resp.method.as_ref().map(method_json),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || {
                    let body = resp
                        .method
                        .as_ref()
                        .map_or_else(|| "(the server sent no auth method)\n".into(), method_text);
                    format!("{body}\n{}\n", output::footer(resp.meta.as_ref()))
                },
            );
        }
        AuthMethodCommand::Delete(a) => {
            let request = pb::DeleteAuthMethodRequest {
                name: a.name.clone(),
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).delete_auth_method(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "removed": resp.removed,
                        "binding_rules_removed": resp.binding_rules_removed,
                        "index": resp.index,
                    })
                },
                || {
                    let mut text = removed_text("auth method", &a.name, resp.removed, resp.index);
                    if resp.binding_rules_removed > 0 {
                        text.push_str(&format!(
                            "; {} binding rule(s) deleted with it",
                            resp.binding_rules_removed
                        ));
                    }
                    text
                },
            );
        }
    }
    Ok(())
}

async fn binding_rule(cmd: BindingRuleCommand) -> anyhow::Result<()> {
    match cmd {
        BindingRuleCommand::Create(a) => {
            let request = pb::CreateBindingRuleRequest {
                method: a.method,
                selector: a.selector,
                policies: a.policies,
                description: a.description,
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).create_binding_rule(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "rule": resp.rule.as_ref().map(rule_json), "index": resp.index }),
                || {
                    let id = resp.rule.as_ref().map_or("", |r| r.id.as_str());
                    format!("created binding rule {id} (index {})", resp.index)
                },
            );
        }
        BindingRuleCommand::List(a) => {
            let request = pb::ListBindingRulesRequest {
                method: a.method.unwrap_or_default(),
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).list_binding_rules(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "rules": resp.rules.iter().map(rule_json).collect::<Vec<_>>(),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || {
                    let mut table = Table::new(&["ID", "METHOD", "SELECTOR", "POLICIES"]);
                    for r in &resp.rules {
                        table.row(vec![
                            r.id.clone(),
                            r.method.clone(),
                            r.selector.clone(),
                            r.policies.join(","),
                        ]);
                    }
                    format!(
                        "{}\n{}\n",
                        table.render(),
                        output::footer(resp.meta.as_ref())
                    )
                },
            );
        }
        BindingRuleCommand::Delete(a) => {
            let request = pb::DeleteBindingRuleRequest { id: a.id.clone() };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).delete_binding_rule(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "removed": resp.removed, "index": resp.index }),
                || removed_text("binding rule", &a.id, resp.removed, resp.index),
            );
        }
    }
    Ok(())
}

async fn login(a: LoginArgs) -> anyhow::Result<()> {
    let request = pb::LoginRequest {
        method: a.method,
        jwt: read_text("--jwt", &a.jwt)?.trim().to_string(),
    };
    let resp = write(&a.client, |ch| {
        let request = request.clone();
        async move { acl_client(ch).login(request).await }
    })
    .await?;
    emit(
        a.client.json,
        || created_json(resp.token.as_ref(), &resp.secret, resp.index),
        || {
            let t = resp.token.as_ref();
            format!(
                "{}\nThe secret is shown only now; only its hash is stored (index {}).",
                key_values(&[
                    ("accessor", t.map_or("", |t| t.accessor_id.as_str()).into()),
                    ("secret", resp.secret.clone()),
                    (
                        "policies",
                        t.map_or(String::new(), |t| t.policies.join(", "))
                    ),
                    (
                        "expires",
                        output::expires_text(t.map_or(0, |t| t.expires_at_unix_ms))
                    ),
                ]),
                resp.index
            )
        },
    );
    Ok(())
}

fn method_json(m: &pb::AclAuthMethod) -> Value {
    json!({
        "name": m.name,
        "type": m.r#type,
        "description": m.description,
        "issuer": m.issuer,
        "audiences": m.audiences,
        "jwks": m.jwks,
        "public_keys": m.public_keys,
        "jwks_url": m.jwks_url,
        "jwks_ca_cert": m.jwks_ca_cert,
        "max_token_ttl_ms": m.max_token_ttl_ms,
        "clock_skew_ms": m.clock_skew_ms,
        "create_index": m.create_index,
        "modify_index": m.modify_index,
    })
}

fn method_text(m: &pb::AclAuthMethod) -> String {
    let jwks_keys = serde_json::from_str::<Value>(&m.jwks)
        .ok()
        .and_then(|v| v["keys"].as_array().map(Vec::len))
        .unwrap_or(0);
    key_values(&[
        ("name", m.name.clone()),
        ("type", m.r#type.clone()),
        ("description", m.description.clone()),
        ("issuer", m.issuer.clone()),
        ("audiences", m.audiences.join(", ")),
        (
            "keys",
            format!(
                "{jwks_keys} in the JWKS, {} PEM public key(s)",
                m.public_keys.len()
            ),
        ),
        (
            "jwks url",
            match (m.jwks_url.as_str(), m.jwks_ca_cert.is_empty()) {
                ("", _) => "-".into(),
                (url, true) => url.to_string(),
                (url, false) => format!("{url} (trusting its own CA)"),
            },
        ),
        ("max token ttl", output::ms_text(m.max_token_ttl_ms)),
        ("clock skew", output::ms_text(m.clock_skew_ms)),
        ("created at index", m.create_index.to_string()),
        ("modified at index", m.modify_index.to_string()),
    ])
}

fn rule_json(r: &pb::AclBindingRule) -> Value {
    json!({
        "id": r.id,
        "description": r.description,
        "method": r.method,
        "selector": r.selector,
        "policies": r.policies,
        "create_index": r.create_index,
    })
}

async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create(a) => {
            let request = pb::CreateTokenRequest {
                description: a.description,
                policies: a.policies,
                ttl_ms: a.ttl.map_or(0, duration_to_ms),
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).create_token(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || created_json(resp.token.as_ref(), &resp.secret, resp.index),
                || created_text(resp.token.as_ref(), &resp.secret, resp.index),
            );
        }
        TokenCommand::List(a) => {
            let request = pb::ListTokensRequest {
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| async move {
                acl_client(ch).list_tokens(request).await
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "tokens": resp.tokens.iter().map(token_json).collect::<Vec<_>>(),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || tokens_text(&resp),
            );
        }
        TokenCommand::Read(a) => {
            let request = pb::ReadTokenRequest {
                accessor_id: a.accessor_id,
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).read_token(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "token": resp.token.as_ref().map(token_json),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || {
                    let body = resp
                        .token
                        .as_ref()
                        .map_or_else(|| "(the server sent no token)\n".into(), token_text);
                    format!("{body}\n{}\n", output::footer(resp.meta.as_ref()))
                },
            );
        }
        TokenCommand::Delete(a) => {
            let request = pb::DeleteTokenRequest {
                accessor_id: a.accessor_id.clone(),
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).delete_token(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "removed": resp.removed, "index": resp.index }),
                || removed_text("token", &a.accessor_id, resp.removed, resp.index),
            );
        }
    }
    Ok(())
}

async fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Create(a) => {
            let request = pb::PutPolicyRequest {
                name: a.name,
                description: a.description,
                rules: a.rules,
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).put_policy(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "policy": resp.policy.as_ref().map(policy_json), "index": resp.index }),
                || {
                    let name = resp.policy.as_ref().map_or("", |p| p.name.as_str());
                    format!("wrote policy {name} (index {})", resp.index)
                },
            );
        }
        PolicyCommand::List(a) => {
            let request = pb::ListPoliciesRequest {
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| async move {
                acl_client(ch).list_policies(request).await
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "policies": resp.policies.iter().map(policy_json).collect::<Vec<_>>(),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || policies_text(&resp),
            );
        }
        PolicyCommand::Read(a) => {
            let request = pb::ReadPolicyRequest {
                name: a.name,
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).read_policy(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "policy": resp.policy.as_ref().map(policy_json),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || {
                    let body = resp
                        .policy
                        .as_ref()
                        .map_or_else(|| "(the server sent no policy)\n".into(), policy_text);
                    format!("{body}\n{}\n", output::footer(resp.meta.as_ref()))
                },
            );
        }
        PolicyCommand::Delete(a) => {
            let request = pb::DeletePolicyRequest {
                name: a.name.clone(),
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { acl_client(ch).delete_policy(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "removed": resp.removed, "index": resp.index }),
                || removed_text("policy", &a.name, resp.removed, resp.index),
            );
        }
    }
    Ok(())
}

fn token_json(t: &pb::AclToken) -> Value {
    json!({
        "accessor_id": t.accessor_id,
        "description": t.description,
        "policies": t.policies,
        "expires_at_unix_ms": (t.expires_at_unix_ms != 0).then_some(t.expires_at_unix_ms),
        "create_index": t.create_index,
        "origin": t.origin,
    })
}

fn policy_json(p: &pb::AclPolicy) -> Value {
    json!({
        "name": p.name,
        "description": p.description,
        "rules": p.rules.iter().map(rule_text).collect::<Vec<_>>(),
        "create_index": p.create_index,
        "modify_index": p.modify_index,
    })
}

fn created_json(token: Option<&pb::AclToken>, secret: &str, index: u64) -> Value {
    json!({ "token": token.map(token_json), "secret": secret, "index": index })
}

/// The secret on a line of its own, so `| grep -i secret | awk` or a copy works.
fn created_text(token: Option<&pb::AclToken>, secret: &str, index: u64) -> String {
    let accessor = token.map_or("", |t| t.accessor_id.as_str());
    format!(
        "{}\nThe secret is shown only now; only its hash is stored (index {index}).",
        key_values(&[("accessor", accessor.into()), ("secret", secret.into())])
    )
}

fn token_text(t: &pb::AclToken) -> String {
    key_values(&[
        ("accessor", t.accessor_id.clone()),
        ("description", t.description.clone()),
        ("policies", t.policies.join(", ")),
        ("expires", output::expires_text(t.expires_at_unix_ms)),
        ("origin", t.origin.clone()),
        ("created at index", t.create_index.to_string()),
    ])
}

fn tokens_text(resp: &pb::ListTokensResponse) -> String {
    let mut table = Table::new(&["ACCESSOR", "POLICIES", "EXPIRES", "DESCRIPTION"]);
    for t in &resp.tokens {
        table.row(vec![
            t.accessor_id.clone(),
            t.policies.join(","),
            output::expires_text(t.expires_at_unix_ms),
            t.description.clone(),
        ]);
    }
    format!(
        "{}\n{}\n",
        table.render(),
        output::footer(resp.meta.as_ref())
    )
}

fn policy_text(p: &pb::AclPolicy) -> String {
    key_values(&[
        ("name", p.name.clone()),
        ("description", p.description.clone()),
        (
            "rules",
            p.rules.iter().map(rule_text).collect::<Vec<_>>().join("\n"),
        ),
        ("created at index", p.create_index.to_string()),
        ("modified at index", p.modify_index.to_string()),
    ])
}

fn policies_text(resp: &pb::ListPoliciesResponse) -> String {
    let mut table = Table::new(&["NAME", "RULES", "DESCRIPTION"]);
    for p in &resp.policies {
        let rules: Vec<String> = p.rules.iter().map(rule_text).collect();
        table.row(vec![p.name.clone(), rules.join(" "), p.description.clone()]);
    }
    format!(
        "{}\n{}\n",
        table.render(),
        output::footer(resp.meta.as_ref())
    )
}

fn whoami_text(resp: &pb::WhoAmIResponse) -> String {
    let enforcement = if resp.enabled {
        format!("ACLs enforced; default policy {}", resp.default_policy)
    } else {
        "ACLs off on this node: every request is allowed".into()
    };
    let who = resp
        .token
        .as_ref()
        .map_or_else(|| "anonymous (no token)\n".into(), token_text);
    format!("{who}\n{enforcement}\n")
}

fn removed_text(what: &str, name: &str, removed: bool, index: u64) -> String {
    if removed {
        format!("deleted {what} {name} (index {index})")
    } else {
        format!("there was no {what} {name}; nothing removed (index {index})")
    }
}
