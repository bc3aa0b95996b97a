//! `waymark watch`: follows a Watch stream from the `--addr` nodes until Ctrl-C,
//! printing every message as it arrives. A stream lost to a transient failure is
//! resumed (by `waymark-client`'s follower, on the next node) from the last index
//! printed, so the output continues exactly after it (no gap, no repeat).

use std::time::Duration;

use clap::{ArgGroup, Args};
use waymark_client::{duration_to_ms, parse_duration, WatchFollower, WatchItem};
use waymark_proto::pb;

use super::output::print_line;
use super::signals::StopSignals;
use super::{watch_fmt, ClientOpts};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").required(true).multiple(true).args(["services", "all", "config_prefixes", "ca_roots", "intentions"])))]
pub(super) struct WatchArgs {
    /// Services to watch.
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
    /// Watch every service instead.
    #[arg(long, conflicts_with = "services")]
    all: bool,
    /// Also (or only) watch the config entries under this key prefix (whole segments;
    /// "" = every entry); repeat for more.
    #[arg(long = "config-prefix", value_name = "PREFIX")]
    config_prefixes: Vec<String>,
    /// Also (or only) watch the mesh CA's roots.
    #[arg(long)]
    ca_roots: bool,
    /// Also (or only) watch intentions: those to DESTINATION (and to '*'), or every
    /// one without a value.
    #[arg(long, value_name = "DESTINATION", num_args = 0..=1, default_missing_value = "")]
    intentions: Option<String>,
    /// Everything up to this catalog index was already seen: print only the changes
    /// after it (a reset and a snapshot if the node no longer has them).
    /// Default: start with a snapshot of the current instances.
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    from_index: u64,
    /// Only passing instances: one that stops passing shows as removed.
    #[arg(long)]
    passing_only: bool,
    /// How often the node reports progress while nothing changes (at least 100ms)
    /// [default: the server's, 2s].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    progress_interval: Option<Duration>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Runs until Ctrl-C/SIGTERM (success) or until the stream fails for good.
pub(super) async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let mut stop = StopSignals::install()?;
    tokio::select! {
        result = follow(&args) => result,
        _ = stop.recv() => Ok(()),
    }
}

/// The Watch request from the flags. Instance-only watches keep the old request
/// fields, so they work against every server; config prefixes need topics, and then
/// the instances go in a topic too (a request uses one form or the other).
fn build_request(args: &WatchArgs) -> pb::WatchRequest {
    let progress_interval_ms = args.progress_interval.map_or(0, duration_to_ms);
    if args.config_prefixes.is_empty() && !args.ca_roots && args.intentions.is_none() {
        return pb::WatchRequest {
            services: args.services.clone(),
            all: args.all,
            from_index: args.from_index,
            passing_only: args.passing_only,
            progress_interval_ms,
            ..Default::default()
        };
    }
    use pb::watch_topic::Topic;
    let mut topics = Vec::new();
    if args.all || !args.services.is_empty() {
        topics.push(pb::WatchTopic {
            topic: Some(Topic::Instances(pb::InstancesTopic {
                services: args.services.clone(),
                all: args.all,
                passing_only: args.passing_only,
            })),
        });
    }
    topics.extend(args.config_prefixes.iter().map(|prefix| pb::WatchTopic {
        topic: Some(Topic::Config(pb::ConfigTopic {
            prefix: prefix.clone(),
        })),
    }));
    if args.ca_roots {
        topics.push(pb::WatchTopic {
            topic: Some(Topic::CaRoots(pb::CaRootsTopic {})),
        });
    }
    if let Some(destination) = &args.intentions {
        topics.push(pb::WatchTopic {
            topic: Some(Topic::Intentions(pb::IntentionsTopic {
                destination: destination.clone(),
            })),
        });
    }
    pb::WatchRequest {
        from_index: args.from_index,
        progress_interval_ms,
        topics,
        ..Default::default()
    }
}

async fn follow(args: &WatchArgs) -> anyhow::Result<()> {
    let mut follower = WatchFollower::new(args.client.client(), build_request(args));
    loop {
        let msg = match follower.next().await? {
            WatchItem::Message(msg) => msg,
            WatchItem::Reconnecting {
                reason,
                addr,
                delay,
                from_index,
            } => {
                eprintln!(
                    "note: {reason}; reconnecting to {addr} in {} ms, resuming after index {from_index}",
                    delay.as_millis()
                );
                continue;
            }
        };
        let Some(text) = watch_fmt::render(&msg, args.client.json) else {
            continue;
        };
        if let Err(e) = print_line(&text) {
            // Whoever reads stdout went away (e.g. `| head`): stop quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(anyhow::Error::new(e).context("writing to stdout"));
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        watch: WatchArgs,
    }

    fn request(argv: &[&str]) -> pb::WatchRequest {
        let cli = Cli::try_parse_from(std::iter::once("watch").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        build_request(&cli.watch)
    }

    #[test]
    fn instance_watches_keep_the_old_fields() {
        let r = request(&["web", "api", "--passing-only", "--from-index", "42"]);
        assert_eq!(r.services, ["web", "api"]);
        assert!(r.passing_only && !r.all);
        assert_eq!(r.from_index, 42);
        assert!(r.topics.is_empty());
    }

    #[test]
    fn config_prefixes_become_topics() {
        use pb::watch_topic::Topic;
        let r = request(&[
            "web",
            "--config-prefix",
            "proxy/web",
            "--config-prefix",
            "mesh",
        ]);
        assert!(r.services.is_empty() && !r.all, "one form or the other");
        let topics: Vec<_> = r.topics.into_iter().filter_map(|t| t.topic).collect();
        assert_eq!(
            topics,
            [
                Topic::Instances(pb::InstancesTopic {
                    services: vec!["web".into()],
                    all: false,
                    passing_only: false,
                }),
                Topic::Config(pb::ConfigTopic {
                    prefix: "proxy/web".into()
                }),
                Topic::Config(pb::ConfigTopic {
                    prefix: "mesh".into()
                }),
            ]
        );
        let only_config = request(&["--config-prefix", "proxy"]);
        assert_eq!(only_config.topics.len(), 1);
        assert!(
            Cli::try_parse_from(["watch"]).is_err(),
            "something must be watched"
        );
    }

    #[test]
    fn mesh_flags_become_topics() {
        use pb::watch_topic::Topic;
        let topics: Vec<_> = request(&["--ca-roots", "--intentions", "api"])
            .topics
            .into_iter()
            .filter_map(|t| t.topic)
            .collect();
        assert_eq!(
            topics,
            [
                Topic::CaRoots(pb::CaRootsTopic {}),
                Topic::Intentions(pb::IntentionsTopic {
                    destination: "api".into()
                })
            ]
        );
        let every = request(&["--intentions"]);
        assert_eq!(
            every.topics[0].topic,
            Some(Topic::Intentions(pb::IntentionsTopic {
                destination: String::new()
            }))
        );
    }
}
