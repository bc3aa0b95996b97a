//! How client commands show responses: aligned tables and key/value lists for people,
//! one `serde_json` document per command for scripts. No I/O except `emit` and
//! `print_line`.

use std::io::Write;

use serde_json::{json, Value};
use waymark_proto::pb;

/// Prints exactly one JSON document, or the human form, to stdout.
pub fn emit(as_json: bool, to_json: impl FnOnce() -> Value, to_text: impl FnOnce() -> String) {
    if as_json {
        // Pretty enough to read, still one document that `jq` takes as a whole.
        println!("{:#}", to_json());
    } else {
        let text = to_text();
        print!("{text}");
        if !text.ends_with('\n') {
            println!();
        }
    }
}

/// Prints text (a newline is added if missing) and flushes at once, so a pipe sees
/// it immediately. Unlike `println!` it reports a closed pipe instead of panicking.
pub fn print_line(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Columns separated by two spaces, each as wide as its widest cell; the last column
/// is not padded so lines carry no trailing spaces.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key  value` lines with the values aligned; multi-line values stay indented.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        out.push_str(format!("{key:<width$}  {first}").trim_end());
        out.push('\n');
        for more in lines {
            out.push_str(format!("{:<width$}  {more}", "").trim_end());
            out.push('\n');
        }
    }
    out
}

fn dash_if_empty(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

fn none_if_empty(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_string())
    }
}

pub fn consistency_name(raw: i32) -> String {
    match pb::Consistency::try_from(raw) {
        Ok(pb::Consistency::Consistent) => "consistent".into(),
        Ok(pb::Consistency::Stale) => "stale".into(),
        Ok(pb::Consistency::Unspecified) => "unspecified".into(),
        Err(_) => format!("unknown({raw})"),
    }
}

pub fn health_name(raw: i32) -> String {
    match pb::HealthStatus::try_from(raw) {
        Ok(pb::HealthStatus::Passing) => "passing".into(),
        Ok(pb::HealthStatus::Warning) => "warning".into(),
        Ok(pb::HealthStatus::Critical) => "critical".into(),
        Ok(pb::HealthStatus::Unspecified) => "unspecified".into(),
        Err(_) => format!("unknown({raw})"),
    }
}

/// `on_lease_expiry` in JSON (`remove`, `mark_critical`).
pub fn lease_expiry_name(raw: i32) -> String {
    match pb::LeaseExpiryAction::try_from(raw) {
        Ok(pb::LeaseExpiryAction::Remove) => "remove".into(),
        Ok(pb::LeaseExpiryAction::MarkCritical) => "mark_critical".into(),
        Ok(pb::LeaseExpiryAction::Unspecified) => "unspecified".into(),
        Err(_) => format!("unknown({raw})"),
    }
}

/// A millisecond count the way `--ttl` and friends take it: `30s` when whole
/// seconds, else `1500ms`.
/// When a unix-ms deadline falls: "never" (0), "expired (…)" or "in 3h 2m (…)".
pub fn expires_text(unix_ms: u64) -> String {
    if unix_ms == 0 {
        return "never".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, waymark_client::duration_to_ms);
    if unix_ms <= now {
        format!("expired ({unix_ms} unix ms)")
    } else {
        format!("in {} ({unix_ms} unix ms)", rough_text(unix_ms - now))
    }
}

/// A duration for people, to its two largest units: `3650d0h`, `23h59m`, `59m59s`, `12s`.
fn rough_text(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match s {
        86_400.. => format!("{d}d{h}h"),
        3600.. => format!("{}h{m}m", s / 3600),
        60.. => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{s}s"),
    }
}

pub fn ms_text(ms: u64) -> String {
    let (secs, rest) = (ms / 1000, ms % 1000);
    if secs > 0 && rest == 0 {
        format!("{secs}s")
    } else {
        format!("{ms}ms")
    }
}

/// 0 means "none" on the wire; JSON says null.
fn none_if_zero(n: u64) -> Value {
    if n == 0 {
        Value::Null
    } else {
        Value::from(n)
    }
}

pub fn role_name(raw: i32) -> String {
    match pb::MemberRole::try_from(raw) {
        Ok(pb::MemberRole::Voter) => "voter".into(),
        Ok(pb::MemberRole::Learner) => "learner".into(),
        Ok(pb::MemberRole::Unspecified) => "unspecified".into(),
        Err(_) => format!("unknown({raw})"),
    }
}

/// Meta sorted by key: the wire map has no order, output should be stable.
fn sorted_meta(instance: &pb::Instance) -> Vec<(&String, &String)> {
    let mut meta: Vec<_> = instance.meta.iter().collect();
    meta.sort();
    meta
}

fn weights_pair(instance: &pb::Instance) -> (u32, u32) {
    instance
        .weights
        .as_ref()
        .map_or((0, 0), |w| (w.passing, w.warning))
}

// ----- JSON -----

pub fn instance_json(i: &pb::Instance) -> Value {
    let meta: serde_json::Map<String, Value> = sorted_meta(i)
        .into_iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let (passing, warning) = weights_pair(i);
    json!({
        "service": i.service,
        "id": i.id,
        "address": i.address,
        "port": i.port,
        "tags": i.tags,
        "meta": meta,
        "weights": { "passing": passing, "warning": warning },
        "status": health_name(i.status),
        "status_output": i.status_output,
        "create_index": i.create_index,
        "modify_index": i.modify_index,
        "lease_id": none_if_zero(i.lease_id),
        "on_lease_expiry": lease_expiry_name(i.on_lease_expiry),
        "deregister_critical_after_ms": none_if_zero(i.deregister_critical_after_ms),
    })
}

pub fn meta_json(meta: Option<&pb::ResponseMeta>) -> Value {
    match meta {
        None => Value::Null,
        Some(m) => json!({
            "index": m.index,
            "node_id": m.node_id,
            "leader_id": m.leader_id,
            "leader_api_addr": none_if_empty(&m.leader_api_addr),
            "last_contact_ms": m.last_contact_ms,
            "consistency": consistency_name(m.consistency),
        }),
    }
}

pub fn member_json(m: &pb::Member) -> Value {
    json!({
        "node_id": m.node_id,
        "api_addr": m.api_addr,
        "raft_addr": m.raft_addr,
        "role": role_name(m.role),
    })
}

pub fn members_json(members: &[pb::Member]) -> Value {
    Value::Array(members.iter().map(member_json).collect())
}

pub fn service_json(s: &pb::ServiceSummary) -> Value {
    json!({ "name": s.name, "instance_count": s.instance_count, "tags": s.tags })
}

pub fn status_json(s: &pb::StatusResponse) -> Value {
    json!({
        "node_id": s.node_id,
        "role": s.role,
        "term": s.term,
        "leader_id": s.leader_id,
        "leader_api_addr": none_if_empty(&s.leader_api_addr),
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "last_log_index": s.last_log_index,
        "snapshot_index": s.snapshot_index,
        "purged_index": s.purged_index,
        "last_contact_ms": s.last_contact_ms,
        "members": members_json(&s.members),
        "state_digest": s.state_digest,
        "digest_index": s.digest_index,
    })
}

// ----- text -----

/// The read footer: which state the answer reflects and how fresh it is, e.g.
/// `index 42 · served by node 2 · leader 1 · stale, last contact 35 ms ago`.
pub fn footer(meta: Option<&pb::ResponseMeta>) -> String {
    let Some(m) = meta else {
        return "(the server sent no response metadata)".into();
    };
    let leader = m.leader_id.map_or_else(
        || "no known leader".to_string(),
        |id| format!("leader {id}"),
    );
    let freshness = match pb::Consistency::try_from(m.consistency) {
        Ok(pb::Consistency::Stale) => match m.last_contact_ms {
            Some(ms) => format!("stale, last contact {ms} ms ago"),
            None => "stale, never heard from a leader".into(),
        },
        _ => consistency_name(m.consistency),
    };
    format!(
        "index {} · served by node {} · {leader} · {freshness}",
        m.index, m.node_id
    )
}

/// The instances as a table with its header (no footer).
pub fn instances_table(instances: &[pb::Instance]) -> String {
    let mut t = Table::new(&[
        "ID", "ADDRESS", "PORT", "STATUS", "WEIGHTS", "TAGS", "META", "MODIFIED",
    ]);
    for i in instances {
        let (passing, warning) = weights_pair(i);
        let meta = sorted_meta(i)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        t.row(vec![
            i.id.clone(),
            i.address.clone(),
            i.port.to_string(),
            health_name(i.status),
            format!("{passing}/{warning}"),
            dash_if_empty(i.tags.join(",")),
            dash_if_empty(meta),
            i.modify_index.to_string(),
        ]);
    }
    t.render()
}

/// All fields of one instance as a key/value list (without the footer).
pub fn instance_text(i: &pb::Instance) -> String {
    let (passing, warning) = weights_pair(i);
    let meta = sorted_meta(i)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n");
    key_values(&[
        ("service", i.service.clone()),
        ("id", i.id.clone()),
        ("address", i.address.clone()),
        ("port", i.port.to_string()),
        ("tags", dash_if_empty(i.tags.join(", "))),
        ("meta", dash_if_empty(meta)),
        ("weights", format!("passing {passing}, warning {warning}")),
        ("status", health_name(i.status)),
        ("output", dash_if_empty(i.status_output.clone())),
        ("create index", i.create_index.to_string()),
        ("modify index", i.modify_index.to_string()),
        ("lease", lease_text(i)),
        (
            "deregister after",
            match i.deregister_critical_after_ms {
                0 => "-".to_string(),
                ms => format!("critical for {}", ms_text(ms)),
            },
        ),
    ])
}

/// `7 (on expiry: remove)`, or `-` without a lease.
fn lease_text(i: &pb::Instance) -> String {
    if i.lease_id == 0 {
        return "-".into();
    }
    let action = match pb::LeaseExpiryAction::try_from(i.on_lease_expiry) {
        Ok(pb::LeaseExpiryAction::MarkCritical) => "mark critical".to_string(),
        Ok(pb::LeaseExpiryAction::Remove | pb::LeaseExpiryAction::Unspecified) => {
            "remove".to_string()
        }
        Err(_) => format!("unknown({})", i.on_lease_expiry),
    };
    format!("{} (on expiry: {action})", i.lease_id)
}

pub fn services_text(services: &[pb::ServiceSummary], meta: Option<&pb::ResponseMeta>) -> String {
    let body = if services.is_empty() {
        "no services registered\n".to_string()
    } else {
        let mut t = Table::new(&["SERVICE", "INSTANCES", "TAGS"]);
        for s in services {
            t.row(vec![
                s.name.clone(),
                s.instance_count.to_string(),
                dash_if_empty(s.tags.join(",")),
            ]);
        }
        t.render()
    };
    format!("{body}{}\n", footer(meta))
}

pub fn members_table(members: &[pb::Member], leader_id: Option<u64>) -> String {
    let mut t = Table::new(&["NODE", "ROLE", "GRPC", "RAFT"]);
    for m in members {
        let mut role = role_name(m.role);
        if Some(m.node_id) == leader_id {
            role.push_str(" (leader)");
        }
        t.row(vec![
            m.node_id.to_string(),
            role,
            m.api_addr.clone(),
            m.raft_addr.clone(),
        ]);
    }
    t.render()
}

pub fn status_text(s: &pb::StatusResponse) -> String {
    let leader = match (s.leader_id, s.leader_api_addr.as_str()) {
        (Some(id), "") => id.to_string(),
        (Some(id), addr) => format!("{id} ({addr})"),
        (None, _) => "unknown".into(),
    };
    let contact = s
        .last_contact_ms
        .map_or_else(|| "never".to_string(), |ms| format!("{ms} ms ago"));
    let digest = if s.state_digest.is_empty() {
        "-".to_string()
    } else {
        format!("{} at index {}", s.state_digest, s.digest_index)
    };
    let kv = key_values(&[
        ("node", s.node_id.to_string()),
        ("role", s.role.clone()),
        ("term", s.term.to_string()),
        ("leader", leader),
        ("last contact", contact),
        ("commit index", s.commit_index.to_string()),
        ("applied index", s.applied_index.to_string()),
        ("last log index", s.last_log_index.to_string()),
        ("snapshot index", s.snapshot_index.to_string()),
        ("purged index", s.purged_index.to_string()),
        ("state digest", digest),
    ]);
    format!("{kv}\n{}", members_table(&s.members, s.leader_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_has_no_trailing_spaces() {
        let mut t = Table::new(&["ID", "ADDRESS", "TAGS"]);
        t.row(vec!["web-1".into(), "10.0.0.1".into(), "".into()]);
        t.row(vec!["w".into(), "10.0.0.22".into(), "a,b".into()]);
        assert_eq!(
            t.render(),
            "ID     ADDRESS    TAGS\nweb-1  10.0.0.1\nw      10.0.0.22  a,b\n"
        );
    }

    #[test]
    fn footer_says_how_fresh() {
        let mut m = pb::ResponseMeta {
            index: 42,
            node_id: 2,
            leader_id: Some(1),
            leader_api_addr: "127.0.0.1:8500".into(),
            last_contact_ms: Some(35),
            consistency: pb::Consistency::Stale as i32,
        };
        assert_eq!(
            footer(Some(&m)),
            "index 42 · served by node 2 · leader 1 · stale, last contact 35 ms ago"
        );
        m.consistency = pb::Consistency::Consistent as i32;
        m.leader_id = None;
        assert_eq!(
            footer(Some(&m)),
            "index 42 · served by node 2 · no known leader · consistent"
        );
    }

    #[test]
    fn instance_json_has_every_field() {
        let i = pb::Instance {
            service: "web".into(),
            id: "web-1".into(),
            address: "10.0.0.1".into(),
            port: 8080,
            tags: vec!["v1".into()],
            meta: [
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "1".to_string()),
            ]
            .into_iter()
            .collect(),
            weights: Some(pb::Weights {
                passing: 10,
                warning: 1,
            }),
            status: pb::HealthStatus::Passing as i32,
            status_output: String::new(),
            create_index: 3,
            modify_index: 7,
            ..Default::default()
        };
        let v = instance_json(&i);
        for key in [
            "service",
            "id",
            "address",
            "port",
            "tags",
            "meta",
            "weights",
            "status",
            "create_index",
            "modify_index",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["weights"]["passing"], 10);
        assert_eq!(v["status"], "passing");
        assert_eq!(v["meta"]["a"], "1");
        assert_eq!(v["lease_id"], Value::Null);
        assert_eq!(v["deregister_critical_after_ms"], Value::Null);
    }

    #[test]
    fn lease_fields_in_json_and_text() {
        let i = pb::Instance {
            service: "web".into(),
            id: "web-1".into(),
            lease_id: 7,
            on_lease_expiry: pb::LeaseExpiryAction::MarkCritical as i32,
            deregister_critical_after_ms: 30_000,
            ..Default::default()
        };
        let v = instance_json(&i);
        assert_eq!(v["lease_id"], 7);
        assert_eq!(v["on_lease_expiry"], "mark_critical");
        assert_eq!(v["deregister_critical_after_ms"], 30_000);
        let text = instance_text(&i);
        assert!(
            text.contains("lease             7 (on expiry: mark critical)\n"),
            "{text}"
        );
        assert!(
            text.contains("deregister after  critical for 30s\n"),
            "{text}"
        );
        let plain = instance_text(&pb::Instance::default());
        assert!(plain.contains("lease             -\n"), "{plain}");
    }

    #[test]
    fn millis_as_flag_values() {
        assert_eq!(ms_text(30_000), "30s");
        assert_eq!(rough_text(3_599_999), "59m59s");
        assert_eq!(rough_text(90_061_000), "1d1h");
        assert_eq!(rough_text(7_260_000), "2h1m");
        assert_eq!(rough_text(12_500), "12s");
        assert_eq!(ms_text(1_500), "1500ms");
        assert_eq!(ms_text(0), "0ms");
    }
}
