//! `waymark acl bootstrap|whoami|token …|policy …`: the first management token, tokens
//! (secrets shown once, at creation) and the policies they carry.

use std::time::Duration;

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
    }
    Ok(())
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

fn expires_text(unix_ms: u64) -> String {
    if unix_ms == 0 {
        return "never".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, duration_to_ms);
    if unix_ms <= now {
        format!("expired ({unix_ms} unix ms)")
    } else {
        format!("in {} ({unix_ms} unix ms)", output::ms_text(unix_ms - now))
    }
}

fn token_text(t: &pb::AclToken) -> String {
    key_values(&[
        ("accessor", t.accessor_id.clone()),
        ("description", t.description.clone()),
        ("policies", t.policies.join(", ")),
        ("expires", expires_text(t.expires_at_unix_ms)),
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
            expires_text(t.expires_at_unix_ms),
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
