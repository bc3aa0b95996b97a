//! The end-of-run reads: once faults are healed and the cluster is quiet, a consistent
//! read of each workload service from every node. The checkers hold the whole run to
//! these (nothing acknowledged lost, nothing invented, every watcher converged).

use super::watch::instance_state;
use super::{consistent_list, read_call, record, ClientEnv, Process};
use crate::checks::{REGISTER_SERVICE, SET_SERVICE};
use crate::history::{Op, Outcome};

/// Reads both services from every node; returns the highest index read (0 if no read
/// succeeded), which the watchers must then reach.
pub async fn run(env: &ClientEnv) -> u64 {
    let mut highest = 0;
    for slot in 0..env.nodes.len() {
        let Ok(mut process) = Process::new(env, slot) else {
            continue;
        };
        for service in [REGISTER_SERVICE, SET_SERVICE] {
            let start = env.recorder.now();
            let request = consistent_list(service);
            let (instances, index, outcome, error) =
                match read_call(env, process.client.list_instances(request)).await {
                    Ok(r) => {
                        let mut list: Vec<_> =
                            r.instances.into_iter().map(instance_state).collect();
                        list.sort();
                        let index = r.meta.map(|m| m.index);
                        highest = highest.max(index.unwrap_or(0));
                        (Some(list), index, Outcome::Ok, None)
                    }
                    Err((_, e)) => (None, None, Outcome::Fail, Some(e)),
                };
            let op = Op::ListAll {
                service: service.into(),
                instances,
                index,
            };
            record(env, &process, op, start, outcome, error);
        }
    }
    highest
}
