//! `waymark config put|get|list|delete`: replicated key → value entries (the Config
//! service), with compare-and-set on writes and the same read flags as `get`.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use waymark_client::config as config_client;
use waymark_proto::pb;

use super::client::{read, read_options, write};
use super::output::{self, emit, Table};
use super::{ClientOpts, ReadArgs, UsageError};

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Write an entry (replacing its value).
    Put(PutArgs),
    /// Show one entry.
    Get(GetArgs),
    /// List the entries under a key prefix (whole segments), sorted by key.
    List(ListArgs),
    /// Delete an entry (idempotent).
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub(super) struct PutArgs {
    /// '/'-separated DNS labels, e.g. proxy/web/timeouts.
    key: String,
    /// The value (at most 64 KiB), stored as given.
    value: String,
    /// Compare-and-set: write only if the entry's current modify index is INDEX;
    /// 0 = only if the key does not exist yet. A mismatch changes nothing.
    #[arg(long, value_name = "INDEX")]
    cas: Option<u64>,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct GetArgs {
    key: String,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// Key prefix, matched by whole segments ("proxy" matches proxy/web, not proxyx)
    /// [default: every entry].
    #[arg(default_value = "", hide_default_value = true)]
    prefix: String,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct DeleteArgs {
    key: String,
    /// Compare-and-set: delete only if the entry's current modify index is INDEX
    /// (at least 1).
    #[arg(long, value_name = "INDEX", value_parser = clap::value_parser!(u64).range(1..))]
    cas: Option<u64>,
    #[command(flatten)]
    client: ClientOpts,
}

pub(super) async fn run(cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Put(a) => {
            let request = pb::PutConfigRequest {
                key: a.key.clone(),
                value: a.value.into_bytes(),
                expected_modify_index: a.cas,
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { config_client(ch).put(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "entry": resp.entry.as_ref().map(entry_json), "index": resp.index }),
                || format!("put {} (index {})", a.key, resp.index),
            );
        }
        ConfigCommand::Get(a) => {
            let request = pb::GetConfigRequest {
                key: a.key,
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| {
                let request = request.clone();
                async move { config_client(ch).get(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "entry": resp.entry.as_ref().map(entry_json),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || get_text(&resp),
            );
        }
        ConfigCommand::List(a) => {
            let request = pb::ListConfigRequest {
                prefix: a.prefix,
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| {
                let request = request.clone();
                async move { config_client(ch).list(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "entries": resp.entries.iter().map(entry_json).collect::<Vec<_>>(),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || list_text(&resp),
            );
        }
        ConfigCommand::Delete(a) => {
            let request = pb::DeleteConfigRequest {
                key: a.key.clone(),
                expected_modify_index: a.cas,
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { config_client(ch).delete(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "removed": resp.removed, "index": resp.index }),
                || delete_text(&a.key, &resp),
            );
        }
    }
    Ok(())
}

/// An entry for scripts: the value as text when it is UTF-8 (the usual case), else as
/// hex under `value_hex`, so no byte is lost either way.
fn entry_json(e: &pb::ConfigEntry) -> Value {
    let mut v = json!({
        "key": e.key,
        "create_index": e.create_index,
        "modify_index": e.modify_index,
    });
    match std::str::from_utf8(&e.value) {
        Ok(text) => v["value"] = json!(text),
        Err(_) => v["value_hex"] = json!(hex(&e.value)),
    }
    v
}

/// The value for people: as text, or `(N bytes, not UTF-8)`.
fn value_text(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => text.to_string(),
        Err(_) => format!("({} bytes, not UTF-8)", value.len()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn get_text(resp: &pb::GetConfigResponse) -> String {
    let body = resp.entry.as_ref().map_or_else(
        || "(the server sent no entry)\n".to_string(),
        |e| {
            format!(
                "{}\n\n{} · created at index {} · modified at index {}\n",
                value_text(&e.value),
                e.key,
                e.create_index,
                e.modify_index
            )
        },
    );
    format!("{body}{}\n", output::footer(resp.meta.as_ref()))
}

fn list_text(resp: &pb::ListConfigResponse) -> String {
    let mut text = if resp.entries.is_empty() {
        "no config entries\n".to_string()
    } else {
        let mut table = Table::new(&["KEY", "MODIFY INDEX", "VALUE"]);
        for e in &resp.entries {
            table.row(vec![
                e.key.clone(),
                e.modify_index.to_string(),
                brief(&value_text(&e.value)),
            ]);
        }
        table.render()
    };
    text.push('\n');
    text.push_str(&output::footer(resp.meta.as_ref()));
    text.push('\n');
    text
}

/// The first line of a value, cut to fit a table cell.
fn brief(value: &str) -> String {
    const MAX: usize = 60;
    let first = value.lines().next().unwrap_or("");
    let cut: String = first.chars().take(MAX).collect();
    if cut.len() < value.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

fn delete_text(key: &str, resp: &pb::DeleteConfigResponse) -> String {
    if resp.removed {
        format!("deleted {key} (index {})", resp.index)
    } else {
        format!(
            "{key} did not exist; nothing removed (index {})",
            resp.index
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        config: ConfigCommand,
    }

    fn parse(argv: &[&str]) -> Result<ConfigCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("config").chain(argv.iter().copied())).map(|c| c.config)
    }

    fn entry(key: &str, value: &[u8], index: u64) -> pb::ConfigEntry {
        pb::ConfigEntry {
            key: key.into(),
            value: value.to_vec(),
            create_index: index,
            modify_index: index,
        }
    }

    #[test]
    fn parses_the_subcommands() {
        let Ok(ConfigCommand::Put(p)) = parse(&["put", "proxy/web", "v=1", "--cas", "0"]) else {
            panic!("put should parse");
        };
        assert_eq!(
            (p.key.as_str(), p.value.as_str(), p.cas),
            ("proxy/web", "v=1", Some(0))
        );
        let Ok(ConfigCommand::Get(g)) = parse(&["get", "proxy/web", "--max-stale", "5s"]) else {
            panic!("get should parse");
        };
        assert_eq!(
            read_options(&g.read).map(|o| o.consistency),
            Ok(pb::Consistency::Stale as i32)
        );
        let Ok(ConfigCommand::List(l)) = parse(&["list"]) else {
            panic!("list should parse");
        };
        assert_eq!(l.prefix, "");
        assert!(parse(&["list", "proxy", "--consistency", "stale", "--json"]).is_ok());
        let Ok(ConfigCommand::Delete(d)) =
            parse(&["delete", "k", "--cas", "7", "--addr", "a:1,b:2"])
        else {
            panic!("delete should parse");
        };
        assert_eq!(d.cas, Some(7));
        assert_eq!(d.client.addr.len(), 2);
        for bad in [
            &["put", "k"][..],
            &["get"],
            &["delete", "k", "--cas", "0"],
            &["put", "k", "v", "--cas", "x"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn entries_as_json_keep_every_byte() {
        let text = entry_json(&entry("a/b", b"hello", 4));
        assert_eq!(
            text,
            json!({ "key": "a/b", "value": "hello", "create_index": 4, "modify_index": 4 })
        );
        let binary = entry_json(&entry("a", &[0xff, 0x00], 5));
        assert_eq!(binary["value_hex"], "ff00");
        assert!(binary.get("value").is_none());
    }

    #[test]
    fn text_output() {
        let list = pb::ListConfigResponse {
            entries: vec![entry("a", b"1", 3), entry("a/b", b"line one\nline two", 9)],
            meta: None,
        };
        let text = list_text(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "KEY  MODIFY INDEX  VALUE");
        assert_eq!(lines[1], "a    3             1");
        assert_eq!(lines[2], "a/b  9             line one…");
        assert!(list_text(&pb::ListConfigResponse::default()).starts_with("no config entries\n"));
        let gone = pb::DeleteConfigResponse {
            removed: false,
            index: 8,
        };
        assert_eq!(
            delete_text("k", &gone),
            "k did not exist; nothing removed (index 8)"
        );
        let get = pb::GetConfigResponse {
            entry: Some(entry("k", &[0xff], 2)),
            meta: None,
        };
        assert!(get_text(&get).starts_with("(1 bytes, not UTF-8)\n\nk · created at index 2"));
    }
}
