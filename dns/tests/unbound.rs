//! A real strict resolver in front of the DNS server: Unbound (Debian's) with a stub
//! zone `waymark.` pointing at it, `qname-minimisation-strict` (it walks down the
//! names label by label and gives up on a wrong NXDOMAIN) and `use-caps-for-id` (it
//! randomises the case of every name it sends and checks the echo; its log names
//! every mismatch). Every name form must resolve through it to what the server answers
//! directly, with Unbound's own cache off so each lookup reaches the server, and the
//! server's answer cache in use.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{catalog, dig, TestServer};

/// A port free for both UDP and TCP on 127.0.0.1 (Unbound binds both).
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// An Unbound process, killed on drop.
struct Unbound {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Unbound {
    fn start(upstream: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = format!(
            r#"server:
    interface: 127.0.0.1
    port: {port}
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    use-syslog: no
    logfile: "{log}"
    verbosity: 2
    do-daemonize: no
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "iterator"
    qname-minimisation: yes
    qname-minimisation-strict: yes
    use-caps-for-id: yes
    cache-max-ttl: 0
    cache-max-negative-ttl: 0
stub-zone:
    name: "waymark."
    stub-addr: {ip}@{upstream_port}
remote-control:
    control-enable: no
"#,
            dir = dir.path().display(),
            log = dir.path().join("unbound.log").display(),
            ip = upstream.ip(),
            upstream_port = upstream.port(),
        );
        let conf = dir.path().join("unbound.conf");
        std::fs::write(&conf, config).expect("write unbound.conf");
        let child = Command::new(unbound_binary())
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `unbound` ({e}); install Debian's unbound \
                     (scripts/test.sh does it via scripts/install-deps.sh test)"
                )
            });
        let unbound = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        unbound.wait_until_answering();
        unbound
    }

    /// Unbound's log so far (verbosity 2 names every reply whose 0x20 spelling did not
    /// match the query: it then falls back to asking several times and comparing, which
    /// would hide a server that does not echo case).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("unbound.log")).unwrap_or_default()
    }

    fn wait_until_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = dig(self.addr, &["+time=1", "+tries=1", "waymark.", "SOA"]);
            if d.status == "NOERROR" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "unbound did not answer within 30 s:\n{}",
                d.raw
            );
        }
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `unbound` lives in /usr/sbin, which a non-root PATH may lack.
fn unbound_binary() -> &'static str {
    if Command::new("unbound")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        "unbound"
    } else {
        "/usr/sbin/unbound"
    }
}

#[test]
fn a_strict_resolver_resolves_every_name_form() {
    let s = TestServer::default_with(catalog());
    let unbound = Unbound::start(s.addr);
    let forms: &[(&str, &str, &str)] = &[
        ("web.service.waymark.", "A", "NOERROR"),
        ("web.service.waymark.", "AAAA", "NOERROR"),
        ("web.service.waymark.", "SRV", "NOERROR"),
        ("v1.web.service.waymark.", "A", "NOERROR"),
        ("v1.eu.web.service.waymark.", "SRV", "NOERROR"),
        ("_web._tcp.service.waymark.", "SRV", "NOERROR"),
        ("_web._v1.service.waymark.", "SRV", "NOERROR"),
        ("ext.service.waymark.", "SRV", "NOERROR"),
        ("web-1.web.instance.waymark.", "A", "NOERROR"),
        ("web-1.web.instance.waymark.", "TXT", "NOERROR"),
        ("web-3.web.instance.waymark.", "AAAA", "NOERROR"),
        ("node-1.node.waymark.", "A", "NOERROR"),
        ("2.node.waymark.", "AAAA", "NOERROR"),
        ("waymark.", "NS", "NOERROR"),
        ("web.instance.waymark.", "A", "NODATA"),
        ("service.waymark.", "A", "NODATA"),
        ("db.service.waymark.", "A", "NXDOMAIN"),
        ("nope.service.waymark.", "SRV", "NXDOMAIN"),
    ];
    for round in 0..3 {
        for &(name, rtype, expected) in forms {
            // NODATA is NOERROR with no answer.
            let status = if expected == "NODATA" {
                "NOERROR"
            } else {
                expected
            };
            let direct = dig(s.addr, &["+nocookie", name, rtype]);
            let resolved = dig(unbound.addr, &[name, rtype]);
            assert_eq!(
                direct.status, status,
                "direct {name} {rtype}:\n{}",
                direct.raw
            );
            assert_eq!(
                resolved.status, status,
                "round {round}, through unbound {name} {rtype}:\n{}",
                resolved.raw
            );
            assert_eq!(
                resolved.data(rtype),
                direct.data(rtype),
                "round {round}, {name} {rtype}:\n{}\n{}",
                resolved.raw,
                direct.raw
            );
            assert_eq!(
                resolved.answer.is_empty(),
                expected != "NOERROR",
                "{name} {rtype}:\n{}",
                resolved.raw
            );
        }
    }
    // Unbound's queries are plain (EDNS without options), so repeats came from the
    // answer cache, and every reply echoed Unbound's 0x20 spelling.
    let log = unbound.log();
    assert!(
        log.contains("use stub waymark."),
        "unbound logs at verbosity 2:\n{log}"
    );
    let mismatches: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("wrong 0x20-ID"))
        .collect();
    assert!(
        mismatches.is_empty(),
        "replies with the wrong case: {mismatches:#?}"
    );
    assert!(
        s.stats.udp_cached.get() > 0,
        "no answer came from the cache: {} full-path answers",
        s.stats.udp_full_path.get()
    );
}
