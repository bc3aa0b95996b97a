//! `waymark snapshot save|inspect|restore`: backups of the replicated state, as etcd
//! and Consul operators take them. `save` asks any node for a point-in-time image
//! (with its index and checksum); `inspect` reads one offline; `restore` writes a new
//! member's data dir from one (see `store/restore.rs`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::json;
use sha2::{Digest, Sha256};
use waymark_client::cluster;
use waymark_proto::pb;

use super::client::{read, read_options};
use super::output::{emit, key_values};
use super::{ClientOpts, ReadArgs, UsageError};
use crate::config::ServerArgs;
use crate::model::Kind;
use crate::store::restore::restore;
use crate::store::snapshot_file::{self, write_atomically};

#[derive(Debug, Subcommand)]
pub(super) enum SnapshotCommand {
    /// Save a point-in-time snapshot of the whole replicated state to FILE (from any
    /// node; by default it holds every write acknowledged before the command ran).
    Save(SaveArgs),
    /// Show a snapshot file's index, members, record counts per kind and size, after
    /// checking its checksum.
    Inspect(InspectArgs),
    /// Write a new member's data dir from a snapshot file. Run it once per member of
    /// the new cluster, each with its own --node-id and --data-dir and the same file
    /// and --initial-cluster; then start the members with `waymark server`.
    Restore(Box<RestoreArgs>),
}

#[derive(Debug, Args)]
pub(super) struct SaveArgs {
    /// Where to write the snapshot (replaced atomically).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(super) struct RestoreArgs {
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The new member, as `waymark server` would be started (at least --node-id,
    /// --data-dir and --initial-cluster, or --config).
    #[command(flatten)]
    server: ServerArgs,
}

pub(super) fn run(cmd: SnapshotCommand) -> anyhow::Result<()> {
    match cmd {
        SnapshotCommand::Save(a) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?
            .block_on(save(a)),
        SnapshotCommand::Inspect(a) => inspect(a),
        SnapshotCommand::Restore(a) => {
            let image = read_file(&a.file)?;
            let config = a.server.into_config()?;
            let restored = restore(&config, &image)?;
            println!(
                "restored {} at index {} into {} ({}); start it with `waymark server`",
                a.file.display(),
                restored.index,
                config.data_dir.display(),
                counts_text(&restored.counts),
            );
            Ok(())
        }
    }
}

async fn save(a: SaveArgs) -> anyhow::Result<()> {
    let options = read_options(&a.read).map_err(UsageError)?;
    let request = pb::SaveSnapshotRequest {
        read: Some(options),
    };
    let mut stream = read(&a.client, |ch| async move {
        cluster(ch).save_snapshot(request).await
    })
    .await?;
    let mut image = Vec::new();
    let mut index = 0;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))
        .context("receiving the snapshot")?
    {
        image.extend_from_slice(&chunk.data);
        index = chunk.index;
        if image.len() as u64 > chunk.total_bytes {
            bail!(
                "the node sent more than the {} bytes it announced",
                chunk.total_bytes
            );
        }
    }
    // The image checks itself: a stream cut short fails here, not at restore time.
    snapshot_file::read_meta(&image).context("the received snapshot is not whole")?;
    let (dir, name) = split_path(&a.file)?;
    write_atomically(dir, name, &image).with_context(|| format!("writing {}", a.file.display()))?;
    let sha = hex::encode(Sha256::digest(&image));
    emit(
        a.client.json,
        || json!({"file": a.file, "index": index, "bytes": image.len(), "sha256": sha}),
        || {
            format!(
                "saved snapshot at index {index} to {} ({} bytes, sha256 {sha})",
                a.file.display(),
                image.len()
            )
        },
    );
    Ok(())
}

fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let image = read_file(&a.file)?;
    let (meta, counts) = snapshot_file::counts(&image)
        .with_context(|| format!("{} is not a usable snapshot", a.file.display()))?;
    let (index, term) = meta
        .last_log_id
        .map_or((0, 0), |l| (l.index, l.leader_id.term));
    let members: Vec<u64> = meta
        .last_membership
        .membership()
        .nodes()
        .map(|(id, _)| *id)
        .collect();
    let sha = hex::encode(Sha256::digest(&image));
    emit(
        a.json,
        || {
            let records: serde_json::Map<String, serde_json::Value> = counts
                .iter()
                .map(|(section, n)| (kind_name(section).to_string(), json!(n)))
                .collect();
            json!({
                "file": a.file, "index": index, "term": term, "members": members,
                "records": records, "bytes": image.len(), "sha256": sha,
            })
        },
        || {
            key_values(&[
                ("file", a.file.display().to_string()),
                ("index", format!("{index} (term {term})")),
                ("members", format!("{members:?}")),
                ("records", counts_text(&counts)),
                ("size", format!("{} bytes", image.len())),
                ("sha256", format!("{sha} (checksum verified)")),
            ])
        },
    );
    Ok(())
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn split_path(path: &Path) -> anyhow::Result<(&Path, &str)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} does not name a file", path.display()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    Ok((dir.unwrap_or(Path::new(".")), name))
}

/// The kind a snapshot section holds, as users name it.
fn kind_name(section: &str) -> &str {
    Kind::ALL
        .iter()
        .find(|k| k.snapshot_field() == section)
        .map_or(section, |k| k.name())
}

fn counts_text(counts: &[(String, u64)]) -> String {
    counts
        .iter()
        .map(|(section, n)| format!("{}: {n}", kind_name(section)))
        .collect::<Vec<_>>()
        .join(", ")
}
