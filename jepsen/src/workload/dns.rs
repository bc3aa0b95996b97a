//! DNS reads for the `stale` workload: one reader per node asks that node's DNS server
//! for the zone's SOA with `dig`, a real DNS client, as users would. The SOA serial
//! is the catalog index the node's replica reflects, so [`crate::checks::dns`] can
//! check that DNS answers never go back in index either, cached ones included.

use std::time::Duration;

use tokio::process::Command;

use super::{record, ClientEnv, Process};
use crate::cluster::DNS_PORT;
use crate::history::{Op, Outcome};

/// The zone the servers serve (their default `--dns-domain`).
const ZONE: &str = "waymark.";

/// Stops with a clear error when `dig` is missing: every DNS read would fail, and the
/// DNS check would have nothing to judge.
pub fn require_dig() -> anyhow::Result<()> {
    let found = std::process::Command::new("dig")
        .arg("-v")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    anyhow::ensure!(
        found,
        "`dig` not found: the stale workload reads DNS with it (install dnsutils; \
         scripts/install-deps.sh test does)"
    );
    Ok(())
}

/// Runs one DNS reader per node until the stop token fires.
pub async fn run(env: ClientEnv, node_ips: Vec<(u32, String)>) {
    let tasks: Vec<_> = node_ips
        .into_iter()
        .enumerate()
        .map(|(slot, (_, ip))| {
            let env = env.clone();
            tokio::spawn(async move { reader(env, slot, ip).await })
        })
        .collect();
    futures::future::join_all(tasks).await;
}

async fn reader(env: ClientEnv, slot: usize, ip: String) {
    let Ok(process) = Process::new(&env, slot) else {
        return;
    };
    while !env.stop.is_cancelled() {
        let start = env.recorder.now();
        let (op, outcome, error) = match soa(&ip).await {
            Ok((rcode, serial)) => {
                let outcome = if rcode == "NOERROR" {
                    Outcome::Ok
                } else {
                    // SERVFAIL past the staleness bound is the server refusing, by design.
                    Outcome::Fail
                };
                let error = (outcome == Outcome::Fail).then(|| rcode.clone());
                (
                    Op::DnsSoa {
                        serial,
                        rcode: Some(rcode),
                    },
                    outcome,
                    error,
                )
            }
            Err(e) => (
                Op::DnsSoa {
                    serial: None,
                    rcode: None,
                },
                Outcome::Fail,
                Some(e),
            ),
        };
        record(&env, &process, op, start, outcome, error);
        tokio::select! {
            _ = env.stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Asks `ip`'s DNS server for the SOA; returns the status and, if answered, the serial.
async fn soa(ip: &str) -> Result<(String, Option<u64>), String> {
    let out = Command::new("dig")
        .args([
            &format!("@{ip}"),
            "-p",
            &DNS_PORT.to_string(),
            "+time=1",
            "+tries=1",
            "+norecurse",
            // No EDNS cookie: a plain query, which the server's UDP answer cache serves
            // (the first query at each new index fills it through the full path), so the
            // checks cover the cached answers that ordinary resolvers get.
            "+nocookie",
            "+noall",
            "+comments",
            "+answer",
            ZONE,
            "SOA",
        ])
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running dig (is dnsutils installed?): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_dig(&text).ok_or_else(|| {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        format!("no DNS answer: {}", first.trim())
    })
}

/// Reads `status: X` from dig's header and the serial from the SOA answer line
/// (`waymark. 5 IN SOA mname rname SERIAL refresh retry expire minimum`).
fn parse_dig(text: &str) -> Option<(String, Option<u64>)> {
    let status = text
        .split("status: ")
        .nth(1)?
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()?
        .to_string();
    let serial = text.lines().filter(|l| !l.starts_with(';')).find_map(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == "SOA")?;
        fields.get(at + 3)?.parse().ok()
    });
    Some((status, serial))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dig_output_gives_status_and_serial() {
        let text = ";; Got answer:\n\
            ;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242\n\
            ;; flags: qr aa; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1\n\n\
            waymark.\t\t5\tIN\tSOA\tn1.node.waymark. hostmaster.waymark. 1234 3600 600 86400 5\n";
        assert_eq!(parse_dig(text), Some(("NOERROR".into(), Some(1234))));
        let servfail = ";; ->>HEADER<<- opcode: QUERY, status: SERVFAIL, id: 1\n";
        assert_eq!(parse_dig(servfail), Some(("SERVFAIL".into(), None)));
        assert_eq!(
            parse_dig(";; connection timed out; no servers could be reached\n"),
            None
        );
    }
}
