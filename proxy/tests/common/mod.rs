//! Shared pieces of the proxy's end-to-end tests, all real processes on loopback: a
//! three-node registry (`waymark server`), sample apps (`waymark-sample-app`), and
//! proxies (`waymark-proxy`) with configs written to a temporary directory; HTTP
//! clients over one kept-alive HTTP/1.1 or h2 connection; and waiting on conditions
//! with deadlines.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use waymark_client::{catalog, CallPolicy, Client, ConnectOptions, Endpoints};
use waymark_proto::pb;

pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` until it returns `Some`, failing the test with `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A loopback port free for TCP and UDP, below the kernel's ephemeral range (a port
/// from `bind(":0")` could be taken by an outgoing connection before the process
/// binds it). A pid-dependent start keeps test binaries apart.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 10_000 + (std::process::id() % 400) as u16 * 25;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 32_768, "no free port below the ephemeral range");
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
}

/// The `waymark` server binary: built by `cargo test --workspace` next to this
/// test's own binary (`target/<profile>/deps/..`).
pub fn waymark_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("waymark");
    assert!(
        bin.exists(),
        "{} not found: run the tests with `cargo test --workspace` (it builds the registry's \
         `waymark` binary too)",
        bin.display()
    );
    bin
}

/// A child process whose output goes to a log file, killed on drop; the log is
/// printed if the test is failing.
pub struct Proc {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub fn new(name: &str, program: PathBuf, args: Vec<String>, dir: &Path) -> Self {
        Self {
            name: name.to_string(),
            program,
            args,
            log: dir.join(format!("{name}.log")),
            child: None,
        }
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// Waits (polling, within the deadline) for the process to exit; its status.
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let name = self.name.clone();
        let child = self.child.as_mut().expect("running");
        let status = wait_for(&format!("{name} to exit"), || {
            let s = child.try_wait().unwrap();
            async move { s }
        })
        .await;
        self.child = None;
        status
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "===== {} log ({}) =====\n{}",
                self.name,
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// A three-node registry cluster of real `waymark server` processes.
pub struct Registry {
    pub nodes: Vec<Proc>,
    pub apis: Vec<String>,
    pub dns: Vec<String>,
}

impl Registry {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, "").await
    }

    /// With `settings` (TOML tables, e.g. `[mesh]`) in every node's config file.
    pub async fn start_with(dir: &Path, settings: &str) -> Self {
        let ports: Vec<[u16; 4]> = (0..3)
            .map(|_| [free_port(), free_port(), free_port(), free_port()])
            .collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, [api, raft, _, _])| format!("{}=127.0.0.1:{raft}/127.0.0.1:{api}", i + 1))
            .collect();
        let mut nodes = Vec::new();
        for (i, [api, raft, admin, dns]) in ports.iter().enumerate() {
            let id = i + 1;
            let args = vec![
                "server".into(),
                "--node-id".into(),
                id.to_string(),
                "--data-dir".into(),
                dir.join(format!("node-{id}")).display().to_string(),
                "--api-addr".into(),
                format!("127.0.0.1:{api}"),
                "--raft-addr".into(),
                format!("127.0.0.1:{raft}"),
                "--admin-addr".into(),
                format!("127.0.0.1:{admin}"),
                "--dns-addr".into(),
                format!("127.0.0.1:{dns}"),
                "--initial-cluster".into(),
                initial.join(","),
            ];
            let mut args = args;
            if !settings.is_empty() {
                let path = dir.join(format!("node-{id}.toml"));
                let data_dir = dir.join(format!("node-{id}"));
                std::fs::write(
                    &path,
                    format!(
                        "node_id = {id}\ndata_dir = {:?}\n{settings}\n",
                        data_dir.display().to_string()
                    ),
                )
                .unwrap();
                args.extend(["--config".into(), path.display().to_string()]);
            }
            let mut p = Proc::new(&format!("registry-{id}"), waymark_bin(), args, dir);
            p.spawn();
            nodes.push(p);
        }
        let registry = Self {
            nodes,
            apis: ports
                .iter()
                .map(|p| format!("127.0.0.1:{}", p[0]))
                .collect(),
            dns: ports
                .iter()
                .map(|p| format!("127.0.0.1:{}", p[3]))
                .collect(),
        };
        registry.wait_leader().await;
        registry
    }

    /// Registers `instance` (acknowledged, or the test fails).
    pub async fn register(&self, instance: pb::RegisterRequest) {
        self.client()
            .call(CallPolicy::write(3), |ch| {
                let r = instance.clone();
                async move { catalog(ch).register(r).await }
            })
            .await
            .unwrap();
    }

    pub fn client(&self) -> Client {
        Client::new(
            Endpoints::new(&self.apis).unwrap(),
            ConnectOptions {
                connect_timeout: Duration::from_secs(1),
                request_timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            },
        )
    }

    /// The leader's node number (1-based), once every running node agrees.
    pub async fn wait_leader(&self) -> usize {
        let running: Vec<(usize, String)> = self
            .nodes
            .iter()
            .zip(&self.apis)
            .enumerate()
            .filter(|(_, (p, _))| p.running())
            .map(|(i, (_, a))| (i, a.clone()))
            .collect();
        wait_for("a leader known to every running node", || {
            let running = running.clone();
            async move {
                let mut leaders = Vec::new();
                for (_, api) in &running {
                    leaders.push(status(api).await?.leader_id?);
                }
                leaders.dedup();
                (leaders.len() == 1).then(|| leaders[0] as usize)
            }
        })
        .await
    }

    /// Ids of the passing instances of `service`, sorted (consistent read).
    pub async fn passing_ids(&self, service: &str) -> Vec<String> {
        self.passing(service)
            .await
            .into_iter()
            .map(|i| i.id)
            .collect()
    }

    /// Passing instances of `service` as the registry has them (consistent read).
    pub async fn passing(&self, service: &str) -> Vec<pb::Instance> {
        let client = self.client();
        let request = pb::ListInstancesRequest {
            service: service.into(),
            passing_only: true,
            ..Default::default()
        };
        client
            .call(CallPolicy::read(3), |ch| {
                let request = request.clone();
                async move { catalog(ch).list_instances(request).await }
            })
            .await
            .map(|r| r.instances)
            .unwrap_or_default()
    }
}

async fn status(api: &str) -> Option<pb::StatusResponse> {
    let channel = ConnectOptions::default().connect(api).await.ok()?;
    waymark_client::cluster(channel)
        .status(pb::StatusRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// A `waymark-sample-app` process.
pub fn sample_app(name: &str, port: u16, dir: &Path) -> Proc {
    let mut p = Proc::new(
        &format!("app-{name}"),
        env!("CARGO_BIN_EXE_waymark-sample-app").into(),
        vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--name".into(),
            name.into(),
        ],
        dir,
    );
    p.spawn();
    p
}

/// A `waymark-proxy` process running `config` (written to `<dir>/<name>.toml`).
pub fn proxy(name: &str, config: &str, dir: &Path) -> Proc {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let mut p = Proc::new(
        &format!("proxy-{name}"),
        env!("CARGO_BIN_EXE_waymark-proxy").into(),
        vec![
            "--config".into(),
            path.display().to_string(),
            "--log-format".into(),
            "text".into(),
        ],
        dir,
    );
    p.spawn();
    p
}

/// The `[registry]` table for `registry`.
pub fn registry_table(registry: &Registry) -> String {
    let addrs: Vec<String> = registry.apis.iter().map(|a| format!("{a:?}")).collect();
    format!("[registry]\naddrs = [{}]\n", addrs.join(", "))
}

/// A server-side proxy config for instance `id` of `service`, its app on `app_port`,
/// an HTTP check of `/health` every 100 ms, a 3 s lease and a 500 ms drain grace
/// unless `extra_service` (more `[service]` keys) or `drain` say otherwise.
pub fn server_proxy_config(
    registry: &Registry,
    service: &str,
    id: &str,
    app_port: u16,
    inbound: u16,
    admin: u16,
    extra_service: &str,
) -> String {
    let lease = if extra_service.contains("lease_ttl") {
        ""
    } else {
        "lease_ttl = \"3s\""
    };
    format!(
        r#"{}
[service]
name = "{service}"
id = "{id}"
port = {app_port}
{lease}
{extra_service}

[[service.checks]]
kind = "http"
target = "http://127.0.0.1:{app_port}/health"
interval = "100ms"
timeout = "100ms"

[inbound]
listen = "127.0.0.1:{inbound}"

[admin]
listen = "127.0.0.1:{admin}"

[drain]
grace = "500ms"
"#,
        registry_table(registry)
    )
}

/// One instance of a service: its app and its proxy.
/// An instance of `service` at 127.0.0.1:`port`, no proxy in front.
pub fn registration_of(service: &str, id: &str, port: u16) -> pb::RegisterRequest {
    pb::RegisterRequest {
        service: service.into(),
        id: id.into(),
        address: "127.0.0.1".into(),
        port: u32::from(port),
        ..Default::default()
    }
}

pub struct Instance {
    pub name: String,
    pub app_port: u16,
    pub inbound: u16,
    pub admin: u16,
    pub app: Proc,
    pub proxy: Proc,
}

impl Instance {
    pub fn start(registry: &Registry, service: &str, name: &str, dir: &Path, extra: &str) -> Self {
        let (app_port, inbound, admin) = (free_port(), free_port(), free_port());
        let app = sample_app(name, app_port, dir);
        let proxy = proxy(
            name,
            &server_proxy_config(registry, service, name, app_port, inbound, admin, extra),
            dir,
        );
        Self {
            name: name.into(),
            app_port,
            inbound,
            admin,
            app,
            proxy,
        }
    }
}

/// GETs `http://addr{path}` on a fresh connection; (status, body) or an error text.
pub async fn get_once(addr: &str, path: &str) -> Result<(u16, String), String> {
    let mut c = H1::connect(addr).await?;
    c.get(path).await.map(|r| (r.status, r.body))
}

/// POSTs to `http://addr{path}`, expecting 200.
pub async fn post(addr: &str, path: &str) {
    let mut c = H1::connect(addr).await.unwrap();
    let r = c.request(http::Method::POST, path).await.unwrap();
    assert_eq!(r.status, 200, "POST {path}: {}", r.body);
}

pub struct Reply {
    pub status: u16,
    pub served_by: Option<String>,
    pub body: String,
}

/// One kept-alive HTTP/1.1 connection.
pub struct H1 {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: String,
}

impl H1 {
    pub async fn connect(addr: &str) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        self.request(http::Method::GET, path).await
    }

    pub async fn request(&mut self, method: http::Method, path: &str) -> Result<Reply, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .body(Empty::new())
            .unwrap();
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        reply(resp).await
    }
}

/// One h2 connection (prior knowledge), shared by concurrent requests.
#[derive(Clone)]
pub struct H2 {
    sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    addr: String,
}

impl H2 {
    pub async fn connect(addr: &str) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Self {
            sender,
            addr: addr.to_string(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        let mut sender = self.sender.clone();
        sender.ready().await.map_err(|e| e.to_string())?;
        let req = http::Request::builder()
            .uri(format!("http://{}{path}", self.addr))
            .body(Empty::new())
            .unwrap();
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        reply(resp).await
    }
}

async fn reply(resp: http::Response<hyper::body::Incoming>) -> Result<Reply, String> {
    let status = resp.status().as_u16();
    let served_by = resp
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        served_by,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The proxy's `/endpoints` JSON.
pub async fn endpoints_json(admin: u16) -> Option<serde_json::Value> {
    let (status, body) = get_once(&format!("127.0.0.1:{admin}"), "/endpoints")
        .await
        .ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

/// Endpoint ids of `upstream` (by listen address) in the proxy's `/endpoints`.
pub async fn endpoint_ids(admin: u16, listen: &str) -> Option<Vec<String>> {
    let json = endpoints_json(admin).await?;
    let upstream = json["upstreams"]
        .as_array()?
        .iter()
        .find(|u| u["listen"] == listen)?
        .clone();
    Some(
        upstream["endpoints"]
            .as_array()?
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_string))
            .collect(),
    )
}

/// One sample from the proxy's `/metrics`: the value of the line starting `series `.
pub async fn metric(admin: u16, series: &str) -> Option<f64> {
    let (_, body) = get_once(&format!("127.0.0.1:{admin}"), "/metrics")
        .await
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Counts by `x-served-by` (missing: "-").
pub fn tally(replies: &[Reply]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in replies {
        *counts
            .entry(r.served_by.clone().unwrap_or_else(|| "-".into()))
            .or_default() += 1;
    }
    counts
}

/// Requests sent in a loop over 4 kept-alive connections until stopped: (ok, failed,
/// first failures seen).
pub struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Traffic {
    pub fn start(addr: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..4)
            .map(|_| {
                let (addr, stop, ok, failed) =
                    (addr.to_string(), stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    let mut errors = Vec::new();
                    let mut conn = None;
                    while !stop.load(Ordering::Relaxed) {
                        if conn.is_none() {
                            conn = H1::connect(&addr).await.ok();
                        }
                        let Some(c) = conn.as_mut() else { continue };
                        match c.get("/").await {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(format!("{}: {}", r.status, r.body.trim()));
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(e);
                                conn = None;
                            }
                        }
                    }
                    errors
                })
            })
            .collect();
        Self {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    /// Waits until `n` more requests have succeeded.
    pub async fn progress(&self, n: u64) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        wait_for("requests to keep succeeding", || async {
            (self.ok.load(Ordering::Relaxed) >= target).then_some(())
        })
        .await;
    }

    pub async fn stop(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for t in self.tasks {
            errors.extend(t.await.unwrap());
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

/// A client proxy with one HTTP upstream (`policy`) to `api`; (proxy, admin, listen).
pub fn client_proxy(
    registry: &Registry,
    dir: &std::path::Path,
    policy: &str,
    extra: &str,
) -> (Proc, u16, String) {
    let admin = free_port();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "{}\n[service]\nname = \"web\"\nport = {}\n\n[inbound]\nlisten = \"127.0.0.1:{}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[[upstreams]]\nservice = \"api\"\nlisten = \"{listen}\"\nprotocol = \"http\"\npolicy = \"{policy}\"\n{extra}\n",
        registry_table(registry),
        free_port(),
        free_port()
    );
    (proxy("web", &config, dir), admin, listen)
}

/// A test's own server at 127.0.0.1:`port` registered as instance `id` of `api` (no
/// proxy in front: the client proxy dials it directly), and a `round_robin` client
/// proxy to it that drains after 100 ms, once it routes there; (proxy, admin, listen).
pub async fn client_proxy_to_own_server(
    registry: &Registry,
    dir: &std::path::Path,
    id: &str,
    port: u16,
) -> (Proc, u16, String) {
    registry.register(registration_of("api", id, port)).await;
    let (proxy, admin, listen) =
        client_proxy(registry, dir, "round_robin", "[drain]\ngrace = \"100ms\"");
    wait_endpoints(admin, &listen, &[id]).await;
    (proxy, admin, listen)
}

pub async fn wait_endpoints(admin: u16, listen: &str, want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    wait_for(&format!("endpoints {want:?}"), || async {
        let ids = endpoint_ids(admin, listen).await?;
        (ids == want).then_some(())
    })
    .await;
}

/// Fails the test unless `promtool check metrics` accepts `text`.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (installed by scripts/install-deps.sh test)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Until the proxy with admin port `admin` answers `/ready` with 200.
pub async fn wait_ready(admin: u16) {
    wait_for(&format!("proxy on admin port {admin} ready"), || async {
        let (status, _) = get_once(&format!("127.0.0.1:{admin}"), "/ready")
            .await
            .ok()?;
        (status == 200).then_some(())
    })
    .await;
}
