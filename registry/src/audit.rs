//! The audit trail: one JSON line per accepted or refused write through the client
//! API, with the caller's accessor id (never its secret), its address, the outcome
//! and the index it was written at, appended to `[audit] path`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tonic::{Response, Status};

use crate::acl::Authorizer;

/// The `[audit]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// File the lines are appended to (created with mode 0600). None: no audit.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

/// Where this node's audit lines go.
#[derive(Debug, Default)]
pub struct AuditLog {
    node_id: u64,
    /// `None` when auditing is off. One `write` per line under the lock, so lines
    /// from concurrent requests never interleave.
    file: Option<Mutex<File>>,
}

impl AuditLog {
    /// Opens (or creates) the file `config` names; an error names the path.
    pub fn open(config: &AuditConfig, node_id: u64) -> anyhow::Result<Self> {
        let Some(path) = &config.path else {
            return Ok(Self::default());
        };
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(path)
            .with_context(|| format!("opening the audit log {}", path.display()))?;
        Ok(Self {
            node_id,
            file: Some(Mutex::new(file)),
        })
    }

    /// Starts the entry for one write call of `method` from `peer`.
    pub fn begin(&self, method: &'static str, peer: Option<SocketAddr>) -> AuditEntry<'_> {
        AuditEntry {
            log: self,
            method,
            peer,
            accessor: OnceLock::new(),
        }
    }

    fn append(&self, line: &serde_json::Value) {
        let Some(file) = &self.file else { return };
        let mut text = line.to_string();
        text.push('\n');
        let mut file = file.lock().expect("audit log lock poisoned");
        if let Err(e) = file.write_all(text.as_bytes()) {
            // The write itself has happened (or been refused); losing its audit line
            // is reported, not turned into a failed call.
            tracing::error!(error = %e, "could not append to the audit log");
        }
    }
}

/// One write call being audited: who made it, once authentication has said.
pub struct AuditEntry<'a> {
    log: &'a AuditLog,
    method: &'static str,
    peer: Option<SocketAddr>,
    accessor: OnceLock<Option<String>>,
}

impl AuditEntry<'_> {
    /// Records who the caller is (anonymous callers have no accessor).
    pub fn caller(&self, authorizer: &Authorizer) {
        let _ = self.accessor.set(authorizer.accessor.clone());
    }

    /// Records the token a login created as the line's accessor (a login presents
    /// no token of its own).
    pub fn created(&self, accessor_id: &str) {
        let _ = self.accessor.set(Some(accessor_id.to_string()));
    }

    /// Appends the line for `response` and hands it back. `index` reads the log
    /// index an accepted write was committed at.
    pub fn finish<T>(
        self,
        response: Result<Response<T>, Status>,
        index: impl FnOnce(&T) -> u64,
    ) -> Result<Response<T>, Status> {
        if self.log.file.is_none() {
            return response;
        }
        let accessor = self.accessor.get().cloned().flatten();
        let mut line = json!({
            "ts_unix_ms": crate::acl::now_unix_ms(),
            "node_id": self.log.node_id,
            "method": self.method,
            "accessor": accessor,
            "peer": self.peer.map(|p| p.to_string()),
        });
        match &response {
            Ok(r) => {
                line["outcome"] = json!("accepted");
                line["index"] = json!(index(r.get_ref()));
            }
            Err(status) => {
                line["outcome"] = json!("refused");
                line["code"] = json!(waymark_client::code_name(status.code()));
                line["message"] = json!(status.message());
            }
        }
        self.log.append(&line);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_call_naming_the_accessor_and_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(
            &AuditConfig {
                path: Some(path.clone()),
            },
            3,
        )
        .unwrap();
        let peer = Some("127.0.0.1:4000".parse().unwrap());
        let entry = log.begin("Register", peer);
        entry.caller(&Authorizer::everything());
        let _ = entry.finish(Ok(Response::new(42u64)), |i| *i);
        let entry = log.begin("Deregister", None);
        let _ = entry.finish::<u64>(Err(Status::permission_denied("no rule")), |i| *i);

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["method"], "Register");
        assert_eq!(lines[0]["outcome"], "accepted");
        assert_eq!(lines[0]["index"], 42);
        assert_eq!(lines[0]["node_id"], 3);
        assert_eq!(lines[0]["peer"], "127.0.0.1:4000");
        assert_eq!(lines[1]["outcome"], "refused");
        assert_eq!(lines[1]["code"], "PERMISSION_DENIED");
        assert_eq!(lines[1]["message"], "no rule");
        assert!(lines[1]["accessor"].is_null());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_unopenable_path_is_named() {
        let err = AuditLog::open(
            &AuditConfig {
                path: Some("/nonexistent-dir/audit.log".into()),
            },
            1,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent-dir/audit.log"));
    }
}
