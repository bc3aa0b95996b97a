//! The test network: one Linux network namespace per node, each joined to a bridge on
//! the host by a veth pair, so nodes talk over real (and breakable) IP links while the
//! clients run on the host side of the bridge.
//!
//! Names carry the harness's pid (`wmj<pid>n1`, `wmj<pid>br`), which keeps concurrent
//! runs apart and lets a later run remove what a killed run left behind: anything
//! named after a pid that no longer exists.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// Prefix of every namespace and link the harness creates.
const NAME_PREFIX: &str = "wmj";

/// The namespaces, veths and bridge of one run. Removed on [`Network::destroy`] (and on
/// drop, so a failed or interrupted run cleans up too).
#[derive(Debug)]
pub struct Network {
    tag: String,
    subnet: [u8; 3],
    nodes: u32,
    destroyed: bool,
}

impl Network {
    /// Creates the bridge (`<subnet>.1/24` on the host) and `nodes` namespaces with
    /// node `i` at `<subnet>.<10 + i>`. Needs root.
    pub fn create(subnet: &str, nodes: u32) -> anyhow::Result<Self> {
        require_root()?;
        let subnet = parse_subnet(subnet)?;
        if !(1..=9).contains(&nodes) {
            bail!("--nodes must be between 1 and 9 (got {nodes})");
        }
        remove_orphans();
        let mut net = Self {
            tag: format!("{NAME_PREFIX}{}", std::process::id()),
            subnet,
            nodes,
            destroyed: false,
        };
        // On error, `net` is dropped here and removes whatever was made so far.
        net.build().context("creating the test network")?;
        Ok(net)
    }

    fn build(&mut self) -> anyhow::Result<()> {
        let br = self.bridge();
        let host = format!("{}/24", self.host_ip());
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &host, "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for node in 1..=self.nodes {
            let ns = self.namespace(node);
            let veth = self.veth(node);
            // An earlier run of this same process may have left the link behind for a
            // moment (the kernel frees a namespace asynchronously); it is ours.
            let _ = ip(&["link", "del", &veth]);
            let addr = format!("{}/24", self.node_ip(node));
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &br])?;
            ip(&["link", "set", &veth, "up"])?;
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// The namespace node `node` (1-based) lives in.
    pub fn namespace(&self, node: u32) -> String {
        format!("{}n{node}", self.tag)
    }

    /// The host end of node `node`'s veth pair.
    fn veth(&self, node: u32) -> String {
        format!("{}v{node}", self.tag)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    /// The host's address on the bridge, where clients connect from.
    pub fn host_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    pub fn node_ip(&self, node: u32) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 10 + node as u8)
    }

    /// Loads an nftables ruleset inside `node`'s namespace (replacing none: callers
    /// flush first with [`Network::flush_rules`]).
    pub fn apply_rules(&self, node: u32, ruleset: &str) -> anyhow::Result<()> {
        let ns = self.namespace(node);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running nft (is the nftables package installed?)")?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(ruleset.as_bytes())
                .context("writing the nft ruleset")?;
        }
        let out = child.wait_with_output().context("waiting for nft")?;
        if !out.status.success() {
            bail!(
                "nft in {ns} failed: {}\nruleset:\n{ruleset}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Removes every nftables rule inside `node`'s namespace: heals its partitions and
    /// packet loss.
    pub fn flush_rules(&self, node: u32) -> anyhow::Result<()> {
        let ns = self.namespace(node);
        run("ip", &["netns", "exec", &ns, "nft", "flush", "ruleset"])
    }

    /// Kills whatever still runs in the namespaces and removes them and the bridge.
    /// Best effort and idempotent: every step runs even if an earlier one failed.
    pub fn destroy(&mut self) {
        if self.destroyed {
            return;
        }
        self.destroyed = true;
        for node in 1..=self.nodes {
            // Deleting the host end removes the pair at once; leaving it to the
            // namespace's teardown would free the name only some time later.
            let _ = ip(&["link", "del", &self.veth(node)]);
            remove_namespace(&self.namespace(node));
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Stops with a clear error unless we are root with `ip` and `nft` at hand.
pub fn require_root() -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!(
            "waymark-jepsen needs root: it creates network namespaces, veth links and \
             nftables rules (run it with sudo, or as root in a container/VM)"
        );
    }
    for tool in ["ip", "nft"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            bail!(
                "`{tool}` not found: install iproute2 and nftables \
                 (scripts/install-deps.sh test does)"
            );
        }
    }
    Ok(())
}

/// `a.b.c` (a /24) or `a.b.c.0/24`.
fn parse_subnet(s: &str) -> anyhow::Result<[u8; 3]> {
    let base = s.strip_suffix(".0/24").unwrap_or(s);
    let parts: Vec<&str> = base.split('.').collect();
    let octets: Option<Vec<u8>> = parts.iter().map(|p| p.parse().ok()).collect();
    match octets.as_deref() {
        Some(&[a, b, c]) => Ok([a, b, c]),
        _ => {
            bail!("invalid --subnet {s:?}: expected the first three octets of a /24, like 10.213.0")
        }
    }
}

/// Removes namespaces and bridges named after harness processes that are gone (a run
/// killed with SIGKILL cannot clean up after itself).
fn remove_orphans() {
    let alive = |tag: &str| -> bool {
        tag.parse::<i32>()
            .map(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
            .unwrap_or(true)
    };
    let owner = |name: &str| -> Option<String> {
        let rest = name.strip_prefix(NAME_PREFIX)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (!digits.is_empty()).then_some(digits)
    };
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if owner(name).is_some_and(|pid| !alive(&pid)) {
                remove_namespace(name);
            }
        }
    }
    if let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "7: wmj123br: <...>" or "8: wmj123v1@if2: <...>"
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            if owner(name).is_some_and(|pid| !alive(&pid)) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

fn remove_namespace(ns: &str) {
    // Processes keep a namespace's network alive after `ip netns del`, so kill them.
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_bad_ones_are_named() {
        assert_eq!(parse_subnet("10.213.0").unwrap(), [10, 213, 0]);
        assert_eq!(parse_subnet("10.9.8.0/24").unwrap(), [10, 9, 8]);
        let err = parse_subnet("10.300.0").unwrap_err().to_string();
        assert!(err.contains("10.300.0"), "{err}");
        assert!(parse_subnet("10.0").is_err());
    }
}
