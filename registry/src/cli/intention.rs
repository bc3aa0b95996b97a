//! `waymark intention create|delete|list|check`: which service may call which (the
//! Intentions service).

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use waymark_client::intentions as intentions_client;
use waymark_proto::intention::Action;
use waymark_proto::pb;

use super::client::{read, read_options, write};
use super::output::{self, emit, Table};
use super::{ClientOpts, ReadArgs, UsageError};

#[derive(Debug, Subcommand)]
pub(super) enum IntentionCommand {
    /// Allow or deny SRC calling DST (service names, or '*' for any); replaces an
    /// existing intention for the pair.
    Create(CreateArgs),
    /// Delete the intention for SRC → DST (idempotent).
    Delete(PairArgs),
    /// List intentions, sorted by destination then source.
    List(ListArgs),
    /// Whether SRC may call DST: the deciding intention, or the default.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    src: String,
    dst: String,
    /// allow or deny.
    #[arg(long, value_parser = parse_action)]
    action: Action,
    #[arg(long, default_value = "")]
    description: String,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct PairArgs {
    src: String,
    dst: String,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// Only intentions to this service (and to '*').
    #[arg(long)]
    destination: Option<String>,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    src: String,
    dst: String,
    /// What applies when no intention matches (the proxies' [mesh] default_intention).
    #[arg(long = "default", value_parser = parse_action, default_value = "allow")]
    default_action: Action,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

fn parse_action(s: &str) -> Result<Action, String> {
    s.parse()
}

fn action_name(wire: i32) -> &'static str {
    Action::from_wire("action", wire).map_or("unknown", Action::name)
}

pub(super) async fn run(cmd: IntentionCommand) -> anyhow::Result<()> {
    match cmd {
        IntentionCommand::Create(a) => {
            let request = pb::PutIntentionRequest {
                source: a.src.clone(),
                destination: a.dst.clone(),
                action: a.action.to_wire() as i32,
                description: a.description,
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { intentions_client(ch).put(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "intention": resp.intention.as_ref().map(intention_json), "index": resp.index }),
                || {
                    format!(
                        "{} {} → {} (index {})",
                        a.action.name(),
                        a.src,
                        a.dst,
                        resp.index
                    )
                },
            );
        }
        IntentionCommand::Delete(a) => {
            let request = pb::DeleteIntentionRequest {
                source: a.src.clone(),
                destination: a.dst.clone(),
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { intentions_client(ch).delete(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "removed": resp.removed, "index": resp.index }),
                || match resp.removed {
                    true => format!("deleted {} → {} (index {})", a.src, a.dst, resp.index),
                    false => format!(
                        "no intention {} → {}; nothing removed (index {})",
                        a.src, a.dst, resp.index
                    ),
                },
            );
        }
        IntentionCommand::List(a) => {
            let request = pb::ListIntentionsRequest {
                destination: a.destination.unwrap_or_default(),
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| {
                let request = request.clone();
                async move { intentions_client(ch).list(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "intentions": resp.intentions.iter().map(intention_json).collect::<Vec<_>>(),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || list_text(&resp),
            );
        }
        IntentionCommand::Check(a) => {
            let request = pb::CheckIntentionRequest {
                source: a.src.clone(),
                destination: a.dst.clone(),
                default_action: a.default_action.to_wire() as i32,
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| {
                let request = request.clone();
                async move { intentions_client(ch).check(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "allowed": resp.allowed,
                        "matched": resp.matched.as_ref().map(intention_json),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || check_text(&a.src, &a.dst, &resp),
            );
        }
    }
    Ok(())
}

fn intention_json(i: &pb::Intention) -> Value {
    json!({
        "source": i.source,
        "destination": i.destination,
        "action": action_name(i.action),
        "description": i.description,
        "create_index": i.create_index,
        "modify_index": i.modify_index,
    })
}

fn list_text(resp: &pb::ListIntentionsResponse) -> String {
    let mut text = if resp.intentions.is_empty() {
        "no intentions\n".to_string()
    } else {
        let mut table = Table::new(&[
            "SOURCE",
            "DESTINATION",
            "ACTION",
            "MODIFY INDEX",
            "DESCRIPTION",
        ]);
        for i in &resp.intentions {
            table.row(vec![
                i.source.clone(),
                i.destination.clone(),
                action_name(i.action).to_string(),
                i.modify_index.to_string(),
                i.description.clone(),
            ]);
        }
        table.render()
    };
    text.push('\n');
    text.push_str(&output::footer(resp.meta.as_ref()));
    text.push('\n');
    text
}

fn check_text(src: &str, dst: &str, resp: &pb::CheckIntentionResponse) -> String {
    let verdict = if resp.allowed { "allowed" } else { "denied" };
    let why = match &resp.matched {
        Some(i) => format!(
            "by intention {} → {} ({})",
            i.source,
            i.destination,
            action_name(i.action)
        ),
        None => "by the default (no intention matches)".to_string(),
    };
    format!("{src} → {dst}: {verdict} {why}")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: IntentionCommand,
    }

    fn parse(argv: &[&str]) -> Result<IntentionCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("intention").chain(argv.iter().copied())).map(|c| c.cmd)
    }

    #[test]
    fn parses_and_refuses_bad_actions() {
        let Ok(IntentionCommand::Create(c)) = parse(&["create", "web", "api", "--action", "deny"])
        else {
            panic!("create should parse");
        };
        assert_eq!(
            (c.src.as_str(), c.dst.as_str(), c.action),
            ("web", "api", Action::Deny)
        );
        let Ok(IntentionCommand::Check(c)) = parse(&["check", "web", "api", "--default", "deny"])
        else {
            panic!("check should parse");
        };
        assert_eq!(c.default_action, Action::Deny);
        assert!(parse(&["create", "web", "api", "--action", "maybe"]).is_err());
        assert!(
            parse(&["create", "web", "api"]).is_err(),
            "--action is required"
        );
    }

    #[test]
    fn check_says_what_decided() {
        let by_default = pb::CheckIntentionResponse {
            allowed: false,
            matched: None,
            meta: None,
        };
        assert_eq!(
            check_text("web", "api", &by_default),
            "web → api: denied by the default (no intention matches)"
        );
    }
}
