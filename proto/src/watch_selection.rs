//! Validation of a watch request's selection: the topics it names (or the legacy
//! instance fields), as a value the server can serve from.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config_key::check_config_prefix;
use crate::pb;
use crate::validate::{check_dns_label, ValidationError};

/// Most topics one watch may name.
pub const MAX_WATCH_TOPICS: usize = 64;

/// Shortest progress interval a watch may ask for.
pub const MIN_PROGRESS_INTERVAL_MS: u64 = 100;

/// A watch's `progress_interval_ms`: `None` for 0 (the server's default).
pub fn progress_interval(ms: u64) -> Result<Option<Duration>, ValidationError> {
    match ms {
        0 => Ok(None),
        ms if ms < MIN_PROGRESS_INTERVAL_MS => Err(ValidationError::new(
            "progress_interval_ms",
            format!("must be 0 (default) or at least {MIN_PROGRESS_INTERVAL_MS} (got {ms})"),
        )),
        ms => Ok(Some(Duration::from_millis(ms))),
    }
}

/// Instances of some services (or all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSelection {
    /// `None` = every service.
    pub services: Option<BTreeSet<String>>,
    pub passing_only: bool,
}

/// What one watch stream follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchSelection {
    pub instances: Vec<InstanceSelection>,
    /// Config key prefixes ("" = every entry).
    pub config_prefixes: Vec<String>,
    /// The mesh's CA roots.
    pub ca_roots: bool,
    /// Intentions by destination ("" = every intention; a named service also selects
    /// the intentions whose destination is "*").
    pub intention_destinations: Vec<String>,
}

impl WatchSelection {
    /// Whether an intention to `destination` is selected.
    pub fn wants_intention(&self, destination: &str) -> bool {
        self.intention_destinations
            .iter()
            .any(|d| d.is_empty() || d == destination || destination == crate::intention::WILDCARD)
    }
}

fn instance_selection(
    field: &str,
    services: &[String],
    all: bool,
    passing_only: bool,
) -> Result<InstanceSelection, ValidationError> {
    if all && !services.is_empty() {
        return Err(ValidationError::new(
            format!("{field}services"),
            "must be empty when all is set",
        ));
    }
    if !all && services.is_empty() {
        return Err(ValidationError::new(
            format!("{field}services"),
            "name at least one service, or set all",
        ));
    }
    for (i, s) in services.iter().enumerate() {
        check_dns_label(&format!("{field}services[{i}]"), s)?;
    }
    Ok(InstanceSelection {
        services: (!all).then(|| services.iter().cloned().collect()),
        passing_only,
    })
}

impl TryFrom<&pb::WatchRequest> for WatchSelection {
    type Error = ValidationError;

    fn try_from(req: &pb::WatchRequest) -> Result<Self, ValidationError> {
        if req.topics.is_empty() {
            // An instance-only request, as before topics existed.
            let sel = instance_selection("", &req.services, req.all, req.passing_only)?;
            return Ok(WatchSelection {
                instances: vec![sel],
                ..Default::default()
            });
        }
        if !req.services.is_empty() || req.all || req.passing_only {
            return Err(ValidationError::new(
                "topics",
                "use either topics or services/all/passing_only, not both",
            ));
        }
        if req.topics.len() > MAX_WATCH_TOPICS {
            return Err(ValidationError::new(
                "topics",
                format!(
                    "at most {MAX_WATCH_TOPICS} topics (got {})",
                    req.topics.len()
                ),
            ));
        }
        let mut sel = WatchSelection::default();
        for (i, topic) in req.topics.iter().enumerate() {
            match &topic.topic {
                Some(pb::watch_topic::Topic::Instances(t)) => {
                    sel.instances.push(instance_selection(
                        &format!("topics[{i}].instances."),
                        &t.services,
                        t.all,
                        t.passing_only,
                    )?)
                }
                Some(pb::watch_topic::Topic::Config(t)) => {
                    check_config_prefix(&format!("topics[{i}].config.prefix"), &t.prefix)?;
                    sel.config_prefixes.push(t.prefix.clone());
                }
                Some(pb::watch_topic::Topic::CaRoots(_)) => sel.ca_roots = true,
                Some(pb::watch_topic::Topic::Intentions(t)) => {
                    if !t.destination.is_empty() {
                        crate::intention::check_intention_service(
                            &format!("topics[{i}].intentions.destination"),
                            &t.destination,
                        )?;
                    }
                    sel.intention_destinations.push(t.destination.clone());
                }
                None => {
                    return Err(ValidationError::new(
                        format!("topics[{i}]"),
                        "must name instances, config, ca_roots or intentions",
                    ))
                }
            }
        }
        Ok(sel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(t: pb::watch_topic::Topic) -> pb::WatchTopic {
        pb::WatchTopic { topic: Some(t) }
    }

    #[test]
    fn legacy_fields_make_one_instance_topic() {
        let req = pb::WatchRequest {
            services: vec!["web".into()],
            passing_only: true,
            ..Default::default()
        };
        let sel = WatchSelection::try_from(&req).unwrap();
        assert_eq!(sel.instances.len(), 1);
        assert!(sel.instances[0].passing_only);
        assert!(sel.config_prefixes.is_empty());
        let e = WatchSelection::try_from(&pb::WatchRequest::default()).unwrap_err();
        assert_eq!(e.field, "services");
    }

    #[test]
    fn topics_are_checked_and_not_mixed_with_legacy_fields() {
        let req = pb::WatchRequest {
            topics: vec![
                topic(pb::watch_topic::Topic::Instances(pb::InstancesTopic {
                    all: true,
                    ..Default::default()
                })),
                topic(pb::watch_topic::Topic::Config(pb::ConfigTopic {
                    prefix: "proxy".into(),
                })),
            ],
            ..Default::default()
        };
        let sel = WatchSelection::try_from(&req).unwrap();
        assert_eq!(sel.instances[0].services, None);
        assert_eq!(sel.config_prefixes, ["proxy"]);
        assert!(!sel.ca_roots);

        let mut mixed = req.clone();
        mixed.services = vec!["web".into()];
        assert_eq!(
            WatchSelection::try_from(&mixed).unwrap_err().field,
            "topics"
        );

        let bad = pb::WatchRequest {
            topics: vec![topic(pb::watch_topic::Topic::Config(pb::ConfigTopic {
                prefix: "Bad/".into(),
            }))],
            ..Default::default()
        };
        assert_eq!(
            WatchSelection::try_from(&bad).unwrap_err().field,
            "topics[0].config.prefix"
        );
    }

    #[test]
    fn mesh_topics_select_roots_and_intentions_by_destination() {
        let req = pb::WatchRequest {
            topics: vec![
                topic(pb::watch_topic::Topic::CaRoots(pb::CaRootsTopic {})),
                topic(pb::watch_topic::Topic::Intentions(pb::IntentionsTopic {
                    destination: "api".into(),
                })),
            ],
            ..Default::default()
        };
        let sel = WatchSelection::try_from(&req).unwrap();
        assert!(sel.ca_roots);
        assert!(sel.wants_intention("api"));
        assert!(
            sel.wants_intention("*"),
            "a wildcard destination applies to api too"
        );
        assert!(!sel.wants_intention("web"));

        let bad = pb::WatchRequest {
            topics: vec![topic(pb::watch_topic::Topic::Intentions(
                pb::IntentionsTopic {
                    destination: "API".into(),
                },
            ))],
            ..Default::default()
        };
        assert_eq!(
            WatchSelection::try_from(&bad).unwrap_err().field,
            "topics[0].intentions.destination"
        );
    }
}
