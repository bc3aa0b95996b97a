//! The snapshot image: one self-describing, checksummed byte string that is at once
//! the file a node keeps beside its database, what InstallSnapshot carries, and a
//! backup (`waymark snapshot save`).
//!
//! Layout (integers big-endian):
//! ```text
//! "WAYMARK-SNAPSHOT" (16 bytes) | version u32 | meta length u32 | meta (SnapshotMeta, `codec`)
//! then per record kind:  name length u16 | name (Record::SNAPSHOT_FIELD) | row count u64
//!                        then per row: length u32 | row (the mirror's `codec` encoding)
//! SHA-256 of everything above (32 bytes)
//! ```
//! Rows are copied as the storage mirror holds them, so building a snapshot encodes
//! nothing; a kind a snapshot lacks (written before the kind existed) is empty.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::codec;
use crate::model::Tables;
use crate::raft_types::SnapshotMeta;

const MAGIC: &[u8; 16] = b"WAYMARK-SNAPSHOT";
/// 1: meta and rows in JSON; 2: in `codec` (MessagePack).
const VERSION: u32 = 2;
const CHECKSUM_LEN: usize = 32;
const FILE_NAME: &str = "current.snap";
/// Files snapshots are received into (`SnapshotDir::receiving`).
const RECEIVING_PREFIX: &str = "receiving-";

/// Why bytes are not a usable snapshot; the message names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Waymark snapshot (it does not start with {:?})", std::str::from_utf8(MAGIC).unwrap_or_default())]
    NotASnapshot,
    #[error("snapshot format version {0} is not supported (this build reads version {VERSION})")]
    Version(u32),
    #[error(
        "snapshot is truncated or corrupted: its SHA-256 checksum does not match its contents"
    )]
    Checksum,
    #[error("snapshot is malformed: {0}")]
    Malformed(String),
    #[error("snapshot has records of unknown kind {0:?} (written by a newer Waymark?)")]
    UnknownKind(String),
    #[error("snapshot record of kind {kind} does not decode: {error}")]
    Record { kind: String, error: String },
}

/// Builds an image from rows already in their mirror encoding.
pub struct ImageWriter {
    out: Vec<u8>,
}

impl ImageWriter {
    pub fn new(meta: &SnapshotMeta) -> Self {
        let meta = codec::to_vec(meta).expect("snapshot meta always serializes");
        let mut out = Vec::with_capacity(64 + meta.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
        out.extend_from_slice(&meta);
        Self { out }
    }

    /// Adds one kind's section with its rows.
    pub fn section<'a>(&mut self, name: &str, rows: impl ExactSizeIterator<Item = &'a [u8]>) {
        self.out
            .extend_from_slice(&(name.len() as u16).to_be_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out
            .extend_from_slice(&(rows.len() as u64).to_be_bytes());
        for row in rows {
            self.out
                .extend_from_slice(&(row.len() as u32).to_be_bytes());
            self.out.extend_from_slice(row);
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        let sum = Sha256::digest(&self.out);
        self.out.extend_from_slice(&sum);
        self.out
    }
}

/// An image from in-memory tables (tests, tools).
pub fn encode(meta: &SnapshotMeta, tables: &Tables) -> Vec<u8> {
    let mut w = ImageWriter::new(meta);
    for (_, table) in tables.each() {
        let rows: Vec<Vec<u8>> = table
            .rows()
            .map(|r| r.expect("records always serialize").1)
            .collect();
        w.section(table.snapshot_field(), rows.iter().map(Vec::as_slice));
    }
    w.finish()
}

/// Checks the image's framing and checksum and returns its meta, without decoding
/// records.
pub fn read_meta(image: &[u8]) -> Result<SnapshotMeta, SnapshotError> {
    Ok(Reader::open(image)?.meta)
}

/// Decodes a whole image.
pub fn decode(image: &[u8]) -> Result<(SnapshotMeta, Tables), SnapshotError> {
    let mut r = Reader::open(image)?;
    let mut tables = Tables::default();
    while !r.body.is_empty() {
        let name_len = r.u16()? as usize;
        let name = std::str::from_utf8(r.take(name_len)?)
            .map_err(|_| SnapshotError::Malformed("a kind name is not UTF-8".into()))?
            .to_string();
        let count = r.u64()?;
        let table = tables
            .each_mut()
            .into_iter()
            .map(|(_, t)| t)
            .find(|t| t.snapshot_field() == name)
            .ok_or_else(|| SnapshotError::UnknownKind(name.clone()))?;
        for _ in 0..count {
            let len = r.u32()? as usize;
            table
                .load_row(r.take(len)?)
                .map_err(|e| SnapshotError::Record {
                    kind: name.clone(),
                    error: e.to_string(),
                })?;
        }
    }
    Ok((r.meta, tables))
}

/// Record counts per kind, for `waymark snapshot inspect`.
pub fn counts(image: &[u8]) -> Result<(SnapshotMeta, Vec<(String, u64)>), SnapshotError> {
    let mut r = Reader::open(image)?;
    let mut counts = Vec::new();
    while !r.body.is_empty() {
        let name_len = r.u16()? as usize;
        let name = String::from_utf8_lossy(r.take(name_len)?).into_owned();
        let count = r.u64()?;
        for _ in 0..count {
            let len = r.u32()? as usize;
            r.take(len)?;
        }
        counts.push((name, count));
    }
    Ok((r.meta, counts))
}

struct Reader<'a> {
    meta: SnapshotMeta,
    body: &'a [u8],
}

impl<'a> Reader<'a> {
    fn open(image: &'a [u8]) -> Result<Self, SnapshotError> {
        if image.len() < MAGIC.len() || &image[..MAGIC.len()] != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        if image.len() < MAGIC.len() + 8 + CHECKSUM_LEN {
            return Err(SnapshotError::Checksum);
        }
        let version = u32::from_be_bytes(image[16..20].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(SnapshotError::Version(version));
        }
        let (content, sum) = image.split_at(image.len() - CHECKSUM_LEN);
        if Sha256::digest(content).as_slice() != sum {
            return Err(SnapshotError::Checksum);
        }
        let mut r = Reader {
            meta: SnapshotMeta::default(),
            body: &content[20..],
        };
        let meta_len = r.u32()? as usize;
        r.meta = codec::from_slice(r.take(meta_len)?)
            .map_err(|e| SnapshotError::Malformed(format!("its meta does not decode: {e}")))?;
        Ok(r)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.body.len() < n {
            return Err(SnapshotError::Malformed(format!(
                "a field of {n} bytes runs past the end"
            )));
        }
        let (head, rest) = self.body.split_at(n);
        self.body = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, SnapshotError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Where a node keeps its current snapshot: a file in `dir`, outside the database
/// (so a snapshot never passes through the Raft log's write-ahead log).
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn current(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The current image, if there is one.
    pub fn load(&self) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.open()?.map(|(_, image)| image))
    }

    /// Replaces the current image durably: written to a temporary file, fsynced,
    /// renamed over the old one, and the directory fsynced, so a crash leaves either
    /// the old image or the new one, whole. Returns the stored image opened for
    /// reading: that file stays this image even if a later store replaces it.
    pub fn store(&self, image: &[u8]) -> std::io::Result<std::fs::File> {
        write_atomically(&self.dir, FILE_NAME, image)
    }

    /// The current image opened for reading, with its bytes (read through that same
    /// handle, so they are the image the handle reads).
    pub fn open(&self) -> std::io::Result<Option<(std::fs::File, Vec<u8>)>> {
        use std::io::{Read, Seek};
        let mut file = match std::fs::File::open(self.current()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut image = Vec::new();
        file.read_to_end(&mut image)?;
        file.rewind()?;
        Ok(Some((file, image)))
    }

    /// A new, empty file to receive a leader's snapshot into, chunk by chunk, so a
    /// snapshot being received is on disk, not in memory. Named by `seq`; removed by
    /// `remove_received` once installed (or at the next start).
    pub fn receiving(&self, seq: u64) -> std::io::Result<std::fs::File> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(format!("{RECEIVING_PREFIX}{seq}.snap")))
    }

    /// Removes every file `receiving` made (installed, or left by an install a
    /// crash or a newer snapshot interrupted).
    pub fn remove_received(&self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(RECEIVING_PREFIX))
            {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

/// Writes `dir/name` so that after a crash it holds either its old contents or
/// `bytes`, and makes that durable before returning. Returns the written file opened
/// for reading (opened before the rename, so it is these bytes even if another write
/// replaces `dir/name` at once).
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    let written = std::fs::File::open(&tmp)?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::model::{
        AclCommand, AuthMethodConfig, AuthMethodSpec, CaCommand, Command, ConfigCommand,
        IntentionAction, IntentionCommand, JwtMethod, NewBindingRule, NewInstance, NewRoot,
        NewToken, TokenOrigin,
    };

    fn some_tables() -> Tables {
        let mut c = Catalog::default();
        c.apply(1, &Command::CreateLease { ttl_ms: 5000 });
        c.apply(
            2,
            &Command::Register(NewInstance {
                lease_id: Some(1),
                ..NewInstance::example("web", "a", 80)
            }),
        );
        c.apply(
            3,
            &Command::Config(ConfigCommand::Put {
                key: "proxy/web".into(),
                value: b"x".to_vec(),
                if_modify_index: None,
            }),
        );
        c.apply(
            4,
            &Command::Acl(AclCommand::PutPolicy {
                name: "p".into(),
                description: String::new(),
                rules: Vec::new(),
            }),
        );
        c.apply(
            5,
            &Command::Acl(AclCommand::Bootstrap(NewToken {
                accessor_id: "a".repeat(32),
                secret_hash: "0".repeat(64),
                description: String::new(),
                policies: vec!["p".into()],
                expires_at_unix_ms: None,
                origin: TokenOrigin::Bootstrap,
            })),
        );
        c.apply(
            6,
            &Command::Acl(AclCommand::PutAuthMethod(AuthMethodSpec {
                name: "ci".into(),
                description: String::new(),
                config: AuthMethodConfig::Jwt(JwtMethod {
                    issuer: "https://ci.example".into(),
                    audiences: vec!["waymark".into()],
                    jwks: r#"{"keys":[]}"#.into(),
                    public_keys: Vec::new(),
                    jwks_url: String::new(),
                    jwks_ca_cert: String::new(),
                    max_token_ttl_ms: 60_000,
                    clock_skew_ms: 10_000,
                }),
            })),
        );
        c.apply(
            7,
            &Command::Acl(AclCommand::CreateBindingRule(NewBindingRule {
                id: "b".repeat(32),
                description: String::new(),
                method: "ci".into(),
                selector: "service=web".into(),
                policies: vec!["p".into()],
            })),
        );
        c.apply(
            8,
            &Command::Ca(CaCommand::Initialize(NewRoot {
                id: "0123456789abcdef".into(),
                signing_cert_pem: "cert".into(),
                signing_key_pem: "key".into(),
                trust_anchor_pem: "cert".into(),
                chain_pem: Vec::new(),
                trust_domain: "c1.waymark".into(),
                not_after_ms: 1,
                imported: false,
            })),
        );
        c.apply(
            9,
            &Command::Intention(IntentionCommand::Put {
                source: "web".into(),
                destination: "api".into(),
                action: IntentionAction::Allow,
                description: String::new(),
            }),
        );
        c.tables().clone()
    }

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(crate::raft_types::log_id(1, 3, 0)),
            ..Default::default()
        }
    }

    #[test]
    fn an_image_round_trips_every_kind() {
        let tables = some_tables();
        let image = encode(&meta(), &tables);
        let (m, back) = decode(&image).unwrap();
        assert_eq!(m, meta());
        assert_eq!(back, tables);
        let (_, counts) = counts(&image).unwrap();
        for (_, t) in tables.each() {
            assert!(!t.is_empty(), "{} has a record", t.kind());
            assert!(counts.contains(&(t.snapshot_field().to_string(), t.len() as u64)));
        }
    }

    #[test]
    fn a_damaged_image_is_refused_with_the_reason() {
        let image = encode(&meta(), &some_tables());
        let mut flipped = image.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 1;
        assert!(matches!(decode(&flipped), Err(SnapshotError::Checksum)));
        let truncated = &image[..image.len() - 10];
        assert!(matches!(decode(truncated), Err(SnapshotError::Checksum)));
        assert!(matches!(
            decode(b"{\"records\":[]}"),
            Err(SnapshotError::NotASnapshot)
        ));
        let mut future = image.clone();
        future[19] = 9;
        assert!(matches!(decode(&future), Err(SnapshotError::Version(9))));
        assert!(decode(&flipped)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
    }

    #[test]
    fn a_kind_this_build_does_not_know_is_named() {
        let mut w = ImageWriter::new(&meta());
        w.section("widgets", [b"{}".as_slice()].into_iter());
        let err = decode(&w.finish()).unwrap_err();
        assert!(err.to_string().contains("\"widgets\""), "{err}");
    }

    #[test]
    fn the_stored_image_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let snaps = SnapshotDir::new(dir.path().join("snapshots"));
        assert!(snaps.load().unwrap().is_none());
        snaps.store(b"one").unwrap();
        snaps.store(b"two").unwrap();
        assert_eq!(snaps.load().unwrap().unwrap(), b"two");
    }
}
