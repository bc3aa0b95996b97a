//! Pure rendering of watch stream messages: the human form (one line per message or
//! change; a snapshot adds an indented table) and the `--json` form (exactly one
//! compact JSON object per message).

use serde_json::{json, Value};
use waymark_proto::pb;
use waymark_proto::pb::record_change::Change;
use waymark_proto::pb::watch_response::Event;

use super::output::{health_name, instance_json, Table};

/// `reason` in JSON reset lines.
pub fn reset_reason_name(raw: i32) -> String {
    match pb::ResetReason::try_from(raw) {
        Ok(pb::ResetReason::Compacted) => "compacted".into(),
        Ok(pb::ResetReason::SlowConsumer) => "slow_consumer".into(),
        Ok(pb::ResetReason::SnapshotInstalled) => "snapshot_installed".into(),
        Ok(pb::ResetReason::Unspecified) => "unspecified".into(),
        Err(_) => format!("unknown({raw})"),
    }
}

fn reset_reason_text(raw: i32) -> String {
    match pb::ResetReason::try_from(raw) {
        Ok(pb::ResetReason::Compacted) => "history compacted".into(),
        Ok(pb::ResetReason::SlowConsumer) => "slow consumer".into(),
        Ok(pb::ResetReason::SnapshotInstalled) => "node installed a snapshot".into(),
        Ok(pb::ResetReason::Unspecified) => "unspecified".into(),
        Err(_) => format!("unknown reason {raw}"),
    }
}

/// `host:port`, with an IPv6 address in brackets so the port stays readable.
pub fn host_port(address: &str, port: u32) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// The human form of one message, ending in a newline; `None` for an event this
/// version does not know (a newer server).
pub fn text(msg: &pb::WatchResponse) -> Option<String> {
    let index = msg.index;
    Some(match msg.event.as_ref()? {
        Event::Snapshot(s) => snapshot_text(index, &s.instances) + &snapshot_records(s),
        Event::Changes(c) => c
            .changes
            .iter()
            .filter_map(|c| c.change.as_ref())
            .map(|c| match c {
                Change::Upsert(i) => format!(
                    "@{index} upsert {}/{} {} {}{}\n",
                    i.service,
                    i.id,
                    host_port(&i.address, i.port),
                    health_name(i.status),
                    brief_output(&i.status_output)
                ),
                Change::Remove(k) => format!("@{index} remove {}/{}\n", k.service, k.id),
                Change::ConfigUpsert(e) => {
                    format!("@{index} config put {} ({} bytes)\n", e.key, e.value.len())
                }
                Change::ConfigRemove(key) => format!("@{index} config delete {key}\n"),
                Change::CaRootUpsert(r) => format!(
                    "@{index} ca root {}{}\n",
                    r.id,
                    if r.active { " (active)" } else { "" }
                ),
                Change::CaRootRemove(id) => format!("@{index} ca root {id} retired\n"),
                Change::IntentionUpsert(i) => format!(
                    "@{index} intention {} -> {} {}\n",
                    i.source,
                    i.destination,
                    intention_action(i.action)
                ),
                Change::IntentionRemove(k) => format!(
                    "@{index} intention {} -> {} deleted\n",
                    k.source, k.destination
                ),
            })
            .collect(),
        Event::Progress(p) => {
            let contact = p.last_contact_ms.map_or_else(
                || "never heard from a leader".to_string(),
                |ms| format!("last contact {ms} ms"),
            );
            let warning = if p.leader_lost {
                " !! leader lost: this node is cut off, try another --addr"
            } else {
                ""
            };
            format!("progress @{index} ({contact}){warning}\n")
        }
        Event::Reset(r) => format!("reset @{index} ({})\n", reset_reason_text(r.reason)),
    })
}

/// Longest check output shown on an upsert line.
const BRIEF_OUTPUT_CHARS: usize = 60;

/// ` (check output)`: its first line, shortened; empty when there is none.
fn brief_output(output: &str) -> String {
    let first = output.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        return String::new();
    }
    let mut brief: String = first.chars().take(BRIEF_OUTPUT_CHARS).collect();
    if brief.len() < first.len() || output.trim_end().contains('\n') {
        brief.push('…');
    }
    format!(" ({brief})")
}

/// The snapshot's records of other kinds, a line each (after the instances).
fn snapshot_records(s: &pb::WatchSnapshot) -> String {
    let mut out = String::new();
    for e in &s.config_entries {
        out.push_str(&format!("  config {} ({} bytes)\n", e.key, e.value.len()));
    }
    for r in &s.ca_roots {
        let active = if r.active { " (active)" } else { "" };
        out.push_str(&format!("  ca root {}{active} {}\n", r.id, r.trust_domain));
    }
    for i in &s.intentions {
        out.push_str(&format!(
            "  intention {} -> {} {}\n",
            i.source,
            i.destination,
            intention_action(i.action)
        ));
    }
    out
}

fn snapshot_text(index: u64, instances: &[pb::Instance]) -> String {
    let noun = if instances.len() == 1 {
        "instance"
    } else {
        "instances"
    };
    let mut out = format!("snapshot @{index}: {} {noun}\n", instances.len());
    if instances.is_empty() {
        return out;
    }
    let mut t = Table::new(&["INSTANCE", "ADDRESS", "STATUS", "TAGS"]);
    for i in instances {
        let tags = if i.tags.is_empty() {
            "-".to_string()
        } else {
            i.tags.join(",")
        };
        t.row(vec![
            format!("{}/{}", i.service, i.id),
            host_port(&i.address, i.port),
            health_name(i.status),
            tags,
        ]);
    }
    for line in t.render().lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The `--json` form of one message; `None` for an event this version does not know.
pub fn json(msg: &pb::WatchResponse) -> Option<Value> {
    let index = msg.index;
    Some(match msg.event.as_ref()? {
        Event::Snapshot(s) => json!({
            "type": "snapshot",
            "index": index,
            "instances": s.instances.iter().map(instance_json).collect::<Vec<_>>(),
        }),
        Event::Changes(c) => {
            let changes: Vec<Value> = c
                .changes
                .iter()
                .filter_map(|c| c.change.as_ref())
                .map(|c| match c {
                    Change::Upsert(i) => json!({ "op": "upsert", "instance": instance_json(i) }),
                    Change::Remove(k) => {
                        json!({ "op": "remove", "service": k.service, "id": k.id })
                    }
                    Change::ConfigUpsert(e) => json!({
                        "op": "config_put",
                        "key": e.key,
                        "value": String::from_utf8_lossy(&e.value),
                        "modify_index": e.modify_index,
                    }),
                    Change::ConfigRemove(key) => json!({ "op": "config_delete", "key": key }),
                    Change::CaRootUpsert(r) => {
                        json!({ "op": "ca_root_put", "id": r.id, "active": r.active })
                    }
                    Change::CaRootRemove(id) => json!({ "op": "ca_root_retire", "id": id }),
                    Change::IntentionUpsert(i) => json!({
                        "op": "intention_put",
                        "source": i.source,
                        "destination": i.destination,
                        "action": intention_action(i.action),
                    }),
                    Change::IntentionRemove(k) => json!({
                        "op": "intention_delete",
                        "source": k.source,
                        "destination": k.destination,
                    }),
                })
                .collect();
            json!({ "type": "changes", "index": index, "changes": changes })
        }
        Event::Progress(p) => json!({
            "type": "progress",
            "index": index,
            "last_contact_ms": p.last_contact_ms,
            "leader_lost": p.leader_lost,
        }),
        Event::Reset(r) => json!({
            "type": "reset",
            "index": index,
            "reason": reset_reason_name(r.reason),
        }),
    })
}

/// One message as printed: a compact JSON line or the human lines.
pub fn render(msg: &pb::WatchResponse, as_json: bool) -> Option<String> {
    if as_json {
        // `Value`'s Display is compact: one object, one line (strings escape newlines).
        json(msg).map(|v| format!("{v}\n"))
    } else {
        text(msg)
    }
}

/// An intention's action by name.
fn intention_action(wire: i32) -> &'static str {
    waymark_proto::intention::Action::from_wire("action", wire)
        .map_or("unknown", waymark_proto::intention::Action::name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, address: &str, status: pb::HealthStatus) -> pb::Instance {
        pb::Instance {
            service: "web".into(),
            id: id.into(),
            address: address.into(),
            port: 8080,
            status: status as i32,
            ..Default::default()
        }
    }

    fn msg(index: u64, event: Event) -> pb::WatchResponse {
        pb::WatchResponse {
            index,
            event: Some(event),
        }
    }

    fn changes() -> pb::WatchResponse {
        msg(
            43,
            Event::Changes(pb::WatchChanges {
                changes: vec![
                    pb::RecordChange {
                        change: Some(Change::Upsert(instance(
                            "web-1",
                            "10.0.0.1",
                            pb::HealthStatus::Passing,
                        ))),
                    },
                    pb::RecordChange {
                        change: Some(Change::Remove(pb::InstanceKey {
                            service: "web".into(),
                            id: "web-2".into(),
                        })),
                    },
                ],
            }),
        )
    }

    #[test]
    fn snapshot_text_lists_instances_indented() {
        let mut tagged = instance("web-2", "::1", pb::HealthStatus::Critical);
        tagged.tags = vec!["a".into(), "b".into()];
        let m = msg(
            42,
            Event::Snapshot(pb::WatchSnapshot {
                instances: vec![
                    instance("web-1", "10.0.0.1", pb::HealthStatus::Passing),
                    tagged,
                ],
                ..Default::default()
            }),
        );
        assert_eq!(
            text(&m).as_deref(),
            Some(
                "snapshot @42: 2 instances\n\
                 \x20 INSTANCE   ADDRESS        STATUS    TAGS\n\
                 \x20 web/web-1  10.0.0.1:8080  passing   -\n\
                 \x20 web/web-2  [::1]:8080     critical  a,b\n"
            )
        );
        let empty = msg(7, Event::Snapshot(pb::WatchSnapshot::default()));
        assert_eq!(text(&empty).as_deref(), Some("snapshot @7: 0 instances\n"));
    }

    #[test]
    fn change_lines() {
        assert_eq!(
            text(&changes()).as_deref(),
            Some("@43 upsert web/web-1 10.0.0.1:8080 passing\n@43 remove web/web-2\n")
        );
    }

    #[test]
    fn upsert_lines_show_check_output_briefly() {
        let mut i = instance("web-1", "10.0.0.1", pb::HealthStatus::Critical);
        i.status_output = "connection refused\nretried 3 times".into();
        let m = msg(
            8,
            Event::Changes(pb::WatchChanges {
                changes: vec![pb::RecordChange {
                    change: Some(Change::Upsert(i)),
                }],
            }),
        );
        assert_eq!(
            text(&m).as_deref(),
            Some("@8 upsert web/web-1 10.0.0.1:8080 critical (connection refused…)\n")
        );
        assert_eq!(brief_output(""), "");
        assert_eq!(brief_output("ok"), " (ok)");
        assert_eq!(
            brief_output(&"x".repeat(61)),
            format!(" ({}…)", "x".repeat(60))
        );
    }

    #[test]
    fn progress_and_reset_lines() {
        let progress = |last_contact_ms, leader_lost| {
            msg(
                45,
                Event::Progress(pb::WatchProgress {
                    last_contact_ms,
                    leader_lost,
                }),
            )
        };
        assert_eq!(
            text(&progress(Some(12), false)).as_deref(),
            Some("progress @45 (last contact 12 ms)\n")
        );
        let lost = text(&progress(None, true)).unwrap_or_default();
        assert!(
            lost.starts_with("progress @45 (never heard from a leader) !! leader lost"),
            "{lost}"
        );
        let reset = msg(
            50,
            Event::Reset(pb::WatchReset {
                reason: pb::ResetReason::SlowConsumer as i32,
            }),
        );
        assert_eq!(text(&reset).as_deref(), Some("reset @50 (slow consumer)\n"));
        let line = |m: &pb::WatchResponse| {
            let text = render(m, true).unwrap_or_default();
            assert_eq!(text.matches('\n').count(), 1, "{text}");
            serde_json::from_str::<Value>(&text).unwrap_or_default()
        };
        assert_eq!(
            line(&reset),
            json!({ "type": "reset", "index": 50, "reason": "slow_consumer" })
        );
        assert_eq!(
            line(&progress(Some(12), false)),
            json!({ "type": "progress", "index": 45, "last_contact_ms": 12, "leader_lost": false })
        );
        assert_eq!(line(&progress(None, true))["last_contact_ms"], Value::Null);
    }

    #[test]
    fn json_changes_are_one_line() {
        let line = render(&changes(), true).unwrap_or_default();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(v["type"], "changes");
        assert_eq!(v["index"], 43);
        assert_eq!(v["changes"][0]["op"], "upsert");
        assert_eq!(v["changes"][0]["instance"]["id"], "web-1");
        assert_eq!(v["changes"][0]["instance"]["status"], "passing");
        assert_eq!(
            v["changes"][1],
            json!({ "op": "remove", "service": "web", "id": "web-2" })
        );
    }

    #[test]
    fn json_snapshot_uses_the_instance_fields() {
        let m = msg(
            42,
            Event::Snapshot(pb::WatchSnapshot {
                instances: vec![instance("web-1", "10.0.0.1", pb::HealthStatus::Passing)],
                ..Default::default()
            }),
        );
        let v = json(&m).unwrap_or_default();
        assert_eq!(v["type"], "snapshot");
        assert_eq!(v["index"], 42);
        assert_eq!(
            v["instances"][0],
            instance_json(&instance("web-1", "10.0.0.1", pb::HealthStatus::Passing))
        );
    }

    #[test]
    fn unknown_events_are_skipped() {
        let m = pb::WatchResponse {
            index: 9,
            event: None,
        };
        assert_eq!(render(&m, false), None);
        assert_eq!(render(&m, true), None);
    }
}
