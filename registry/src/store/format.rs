//! The storage-format version of a data dir, kept in `<data_dir>/FORMAT`, so a
//! binary never misreads a data dir written in another layout: a dir from an older
//! or newer format is refused with a message saying what to do.
//!
//! Format history:
//! - 1 (no FORMAT file): snapshots inside RocksDB as JSON.
//! - 2: snapshots as checksummed image files beside the database
//!   (`snapshot_file.rs`); group-commit `Command::Batch` log entries.
//! - 3: log entries, Raft metadata, mirror rows and snapshot images in the binary
//!   `codec` (MessagePack) instead of JSON.

use std::path::Path;

use anyhow::{bail, Context};

use super::snapshot_file::write_atomically;

pub const CURRENT: u32 = 3;
const FILE_NAME: &str = "FORMAT";
const PREFIX: &str = "waymark storage format ";

/// Checks that `dir` holds data of the current format, or marks an empty dir as
/// current. Called before the database is opened.
pub fn check_or_init(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let version = text
                .trim()
                .strip_prefix(PREFIX)
                .and_then(|v| v.parse::<u32>().ok())
                .with_context(|| {
                    format!(
                        "{} is not a Waymark format file (it reads {:?})",
                        path.display(),
                        text.trim()
                    )
                })?;
            if version != CURRENT {
                bail!(
                    "data dir {} has storage format {version}, and this build reads only \
                     format {CURRENT}{}",
                    dir.display(),
                    if version > CURRENT {
                        ": it was written by a newer Waymark; run that version"
                    } else {
                        UPGRADE
                    }
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.join("db").exists() {
                bail!(
                    "data dir {} has storage format 1 (written before format versions were \
                     recorded), and this build reads only format {CURRENT}{UPGRADE}",
                    dir.display()
                );
            }
            write_atomically(dir, FILE_NAME, format!("{PREFIX}{CURRENT}\n").as_bytes())
                .map(drop)
                .with_context(|| format!("writing {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

const UPGRADE: &str = ". To move its data over, start this node with an empty data dir and let \
                       it catch up from the other members, or start a new cluster and restore \
                       a backup with `waymark snapshot restore`";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_dir_is_marked_and_then_accepted() {
        let dir = tempfile::tempdir().unwrap();
        check_or_init(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text, format!("waymark storage format {CURRENT}\n"));
        check_or_init(dir.path()).unwrap();
    }

    #[test]
    fn a_dir_from_before_format_versions_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let err = check_or_init(dir.path()).unwrap_err().to_string();
        assert!(err.contains("storage format 1"), "{err}");
        assert!(err.contains("empty data dir"), "{err}");
    }

    #[test]
    fn a_format_2_dir_from_the_json_era_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "waymark storage format 2\n").unwrap();
        let err = check_or_init(dir.path()).unwrap_err().to_string();
        assert!(err.contains("storage format 2"), "{err}");
        assert!(err.contains("reads only format 3"), "{err}");
        assert!(err.contains("waymark snapshot restore"), "{err}");
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(&file, "waymark storage format 7\n").unwrap();
        let err = check_or_init(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format 7") && err.contains("newer"), "{err}");
        std::fs::write(&file, "hello").unwrap();
        let err = check_or_init(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a Waymark format file"), "{err}");
    }
}
