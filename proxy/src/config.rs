//! `proxy.toml`: parsed strictly (an unknown key is refused by name) into raw tables,
//! then validated into [`Config`] before any port is bound. Every error names the key
//! it is about, as `upstreams[1].policy: ...`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use waymark_client::{parse_duration, ClientTls, Endpoints};
use waymark_proto::{pb, Registration};

use crate::scheduling::Scheduling;

pub use waymark_proto::mesh::{MESH_PORT_META, PROXY_ADMIN_META};

/// A configuration error: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub registry: RegistryConfig,
    pub service: ServiceConfig,
    pub inbound: InboundConfig,
    pub upstreams: Vec<UpstreamConfig>,
    pub admin: AdminConfig,
    pub drain: DrainConfig,
    pub mesh: MeshConfig,
    pub log: LogFormat,
    /// Threads that run the proxy; 1 (the default, as Linkerd's proxy) is a
    /// single-threaded runtime, 0 one thread per CPU the process may use.
    pub worker_threads: usize,
    /// The CPU scheduling policy of the proxy's threads.
    pub scheduling: Scheduling,
}

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub addrs: Endpoints,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// ACL token secret for the registry: `registry.token`, else `WAYMARK_TOKEN`.
    pub token: Option<String>,
    /// TLS to the registry, verified with `registry.ca_file` (else `WAYMARK_CACERT`).
    pub tls: Option<ClientTls>,
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub name: String,
    pub id: String,
    /// Where the proxy reaches the local app.
    pub app: String,
    /// What the registry records (DNS answers and peers use it).
    pub advertise_address: String,
    /// The app's port: registered as the instance's port, so DNS clients outside the
    /// mesh reach the app directly.
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub weight_passing: u32,
    pub weight_warning: u32,
    pub lease_ttl: Duration,
    pub checks: Vec<CheckConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckTarget {
    /// GET this URL; 2xx passes, 429 warns, anything else fails.
    Http { url: http::Uri },
    /// A TCP connect to `host:port` passes.
    Tcp { addr: String },
    /// grpc.health.v1 Check of `service` at `host:port`; SERVING passes.
    Grpc { addr: String, service: String },
}

#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// `checks[i]` or the configured name: shown with the status output.
    pub name: String,
    pub target: CheckTarget,
    pub interval: Duration,
    pub timeout: Duration,
    /// Up to this much random delay is added to each interval.
    pub jitter: Duration,
    pub success_before_passing: u32,
    pub failures_before_warning: u32,
    pub failures_before_critical: u32,
    pub deregister_critical_after: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct InboundConfig {
    pub listen: SocketAddr,
    /// The port peers dial (recorded as [`MESH_PORT_META`]); defaults to the listen port.
    pub advertise_port: u16,
    pub connect_timeout: Duration,
    /// `tcp`: connections carried as bytes; `http`: request by request (intentions
    /// decided per request).
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    RoundRobin,
    Random,
    Weighted,
    LeastRequest,
    PeakEwma,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round_robin",
            Policy::Random => "random",
            Policy::Weighted => "weighted",
            Policy::LeastRequest => "least_request",
            Policy::PeakEwma => "peak_ewma",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub service: String,
    pub listen: SocketAddr,
    pub protocol: Protocol,
    pub policy: Policy,
    pub connect_timeout: Duration,
    /// HTTP only: time to the response's headers; `None` for no limit.
    pub request_timeout: Option<Duration>,
    /// Endpoints tried for one connection or request whose connect fails.
    pub connect_attempts: u32,
    pub outlier: OutlierConfig,
    /// A new endpoint's share ramps up over this long (zero: at once).
    pub slow_start: Duration,
}

#[derive(Debug, Clone)]
pub struct OutlierConfig {
    /// Consecutive failures (connect errors, 5xx, gRPC UNAVAILABLE) that eject.
    pub consecutive_failures: u32,
    /// First ejection; doubled for each ejection in a row, up to `max_ejection`.
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    /// Below this percentage of endpoints not ejected, ejection is ignored (all used).
    pub panic_threshold_percent: u32,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct DrainConfig {
    /// After the instance is marked critical: how long listeners stay open so peers
    /// see the change before new connections are refused.
    pub grace: Duration,
    /// Then: how long open connections get to finish.
    pub timeout: Duration,
}

/// `[mesh]`: identity and mutual TLS between proxies.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Mutual TLS on the inbound port and to every upstream, with a leaf the
    /// registry's CA signs for this service (SPIFFE X.509-SVID).
    pub mtls: bool,
    /// With mTLS: what applies to a caller no intention matches.
    pub default_intention: waymark_proto::intention::Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// Values given on the command line, applied over the file before validation.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub registry_addrs: Option<Vec<String>>,
    pub service_id: Option<String>,
    pub inbound_listen: Option<String>,
    pub admin_listen: Option<String>,
    pub log_format: Option<LogFormat>,
}

// ---- raw tables, as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    registry: RawRegistry,
    service: RawService,
    inbound: RawInbound,
    #[serde(default)]
    upstreams: Vec<RawUpstream>,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    drain: RawDrain,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default)]
    mesh: RawMesh,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMesh {
    mtls: Option<bool>,
    default_intention: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    addrs: Vec<String>,
    connect_timeout: Option<String>,
    request_timeout: Option<String>,
    token: Option<String>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    id: Option<String>,
    address: Option<String>,
    port: u32,
    advertise_address: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    weights: Option<RawWeights>,
    lease_ttl: Option<String>,
    #[serde(default)]
    checks: Vec<RawCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeights {
    passing: Option<u32>,
    warning: Option<u32>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawCheckKind {
    Http,
    Tcp,
    Grpc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    kind: RawCheckKind,
    name: Option<String>,
    target: Option<String>,
    grpc_service: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    jitter: Option<String>,
    success_before_passing: Option<u32>,
    failures_before_warning: Option<u32>,
    failures_before_critical: Option<u32>,
    deregister_critical_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInbound {
    listen: String,
    advertise_port: Option<u32>,
    connect_timeout: Option<String>,
    protocol: Option<Protocol>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    service: String,
    listen: String,
    #[serde(default = "default_protocol")]
    protocol: Protocol,
    policy: Option<Policy>,
    connect_timeout: Option<String>,
    request_timeout: Option<String>,
    connect_attempts: Option<u32>,
    eject_after_failures: Option<u32>,
    ejection_base: Option<String>,
    ejection_max: Option<String>,
    panic_threshold_percent: Option<u32>,
    slow_start: Option<String>,
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDrain {
    grace: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    worker_threads: Option<usize>,
    scheduling: Option<Scheduling>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<LogFormat>,
}

// ---- defaults ----

pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:19000";
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_CONNECT_ATTEMPTS: u32 = 3;
const DEFAULT_EJECT_AFTER: u32 = 5;
const DEFAULT_EJECTION_BASE: Duration = Duration::from_secs(10);
const DEFAULT_EJECTION_MAX: Duration = Duration::from_secs(300);
const DEFAULT_PANIC_THRESHOLD: u32 = 50;
const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(5);
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_WORKER_THREADS: usize = 256;
/// A lease shorter than this cannot be renewed reliably across a leader change.
const MIN_LEASE_TTL: Duration = Duration::from_secs(1);

impl Config {
    /// Parses and validates `text` (the contents of `proxy.toml`) with `overrides`.
    pub fn parse(text: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's message names the key and shows the line; keep it whole.
            ConfigError::new("proxy.toml", e.to_string().trim_end().to_string())
        })?;
        validate(raw, overrides)
    }

    /// The Register request for this proxy's instance (lease and status set later).
    pub fn registration(&self) -> pb::RegisterRequest {
        registration_request(
            &self.service,
            self.inbound.advertise_port,
            self.admin.listen,
        )
    }
}

fn registration_request(
    s: &ServiceConfig,
    mesh_port: u16,
    admin: SocketAddr,
) -> pb::RegisterRequest {
    let mut meta: std::collections::HashMap<String, String> =
        s.meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    meta.insert(MESH_PORT_META.into(), mesh_port.to_string());
    // An admin listener on every interface is reached at the advertised address.
    let admin = if admin.ip().is_unspecified() {
        format!("{}:{}", bracket_v6(&s.advertise_address), admin.port())
    } else {
        admin.to_string()
    };
    meta.insert(PROXY_ADMIN_META.into(), admin);
    pb::RegisterRequest {
        service: s.name.clone(),
        id: s.id.clone(),
        address: s.advertise_address.clone(),
        port: u32::from(s.port),
        tags: s.tags.clone(),
        meta,
        weights: Some(pb::Weights {
            passing: s.weight_passing,
            warning: s.weight_warning,
        }),
        deregister_critical_after_ms: s
            .checks
            .iter()
            .filter_map(|c| c.deregister_critical_after)
            .min()
            .map_or(0, waymark_client::duration_to_ms),
        ..Default::default()
    }
}

fn duration(key: &str, value: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => parse_duration(v).map_err(|e| ConfigError::new(key, e)),
    }
}

fn positive_duration(
    key: &str,
    value: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let d = duration(key, value, default)?;
    if d.is_zero() {
        return Err(ConfigError::new(key, "must be greater than zero"));
    }
    Ok(d)
}

fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::new(
            key,
            format!("{value:?} is not an IP address and port (e.g. 127.0.0.1:9000)"),
        )
    })
}

fn port(key: &str, value: u32) -> Result<u16, ConfigError> {
    match u16::try_from(value) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ConfigError::new(
            key,
            format!("must be 1-65535 (got {value})"),
        )),
    }
}

fn at_least_one(key: &str, value: Option<u32>, default: u32) -> Result<u32, ConfigError> {
    let v = value.unwrap_or(default);
    if v == 0 {
        return Err(ConfigError::new(key, "must be at least 1"));
    }
    Ok(v)
}

fn validate(raw: RawConfig, o: &Overrides) -> Result<Config, ConfigError> {
    let addrs = o.registry_addrs.clone().unwrap_or(raw.registry.addrs);
    if addrs.is_empty() {
        return Err(ConfigError::new(
            "registry.addrs",
            "list at least one registry node (e.g. [\"127.0.0.1:8500\"])",
        ));
    }
    let registry = RegistryConfig {
        addrs: Endpoints::new(&addrs)
            .map_err(|e| ConfigError::new("registry.addrs", e.to_string()))?,
        connect_timeout: positive_duration(
            "registry.connect_timeout",
            &raw.registry.connect_timeout,
            Duration::from_secs(3),
        )?,
        request_timeout: positive_duration(
            "registry.request_timeout",
            &raw.registry.request_timeout,
            Duration::from_secs(10),
        )?,
        token: raw
            .registry
            .token
            .clone()
            .or_else(|| std::env::var("WAYMARK_TOKEN").ok())
            .filter(|t| !t.trim().is_empty()),
        tls: raw
            .registry
            .ca_file
            .clone()
            .or_else(|| std::env::var_os("WAYMARK_CACERT").map(PathBuf::from))
            .map(|path| {
                ClientTls::from_ca_file(&path)
                    .map_err(|e| ConfigError::new("registry.ca_file", e.to_string()))
            })
            .transpose()?,
    };

    let inbound_listen = o.inbound_listen.clone().unwrap_or(raw.inbound.listen);
    let listen = socket_addr("inbound.listen", &inbound_listen)?;
    let advertise_port = match raw.inbound.advertise_port {
        Some(p) => port("inbound.advertise_port", p)?,
        None if listen.port() == 0 => {
            return Err(ConfigError::new(
                "inbound.listen",
                "needs a fixed port (peers are told it), or set inbound.advertise_port",
            ))
        }
        None => listen.port(),
    };
    let inbound = InboundConfig {
        listen,
        advertise_port,
        connect_timeout: positive_duration(
            "inbound.connect_timeout",
            &raw.inbound.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        protocol: raw.inbound.protocol.unwrap_or(Protocol::Tcp),
    };

    let service = validate_service(raw.service, o, &inbound)?;

    let mut upstreams: Vec<UpstreamConfig> = Vec::new();
    for (i, u) in raw.upstreams.into_iter().enumerate() {
        let up = validate_upstream(i, u)?;
        if let Some(j) = upstreams.iter().position(|x| x.listen == up.listen) {
            return Err(ConfigError::new(
                format!("upstreams[{i}].listen"),
                format!(
                    "{} is already the listen address of upstreams[{j}]",
                    up.listen
                ),
            ));
        }
        upstreams.push(up);
    }

    let admin_listen = o
        .admin_listen
        .clone()
        .or(raw.admin.listen)
        .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.into());
    let admin = AdminConfig {
        listen: socket_addr("admin.listen", &admin_listen)?,
    };
    // The registry's own rules (names, tags, meta, weights), checked now and reported
    // under this file's keys instead of failing at the first Register.
    if let Err(e) =
        Registration::try_from(registration_request(&service, advertise_port, admin.listen))
    {
        return Err(ConfigError::new(service_key(&e.field), e.rule));
    }
    let mut taken = vec![("inbound.listen".to_string(), inbound.listen)];
    taken.extend(
        upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("upstreams[{i}].listen"), u.listen)),
    );
    for (key, addr) in &taken {
        if *addr == admin.listen && addr.port() != 0 {
            return Err(ConfigError::new(
                "admin.listen",
                format!("{addr} is already {key}"),
            ));
        }
    }
    if upstreams
        .iter()
        .any(|u| u.listen == inbound.listen && u.listen.port() != 0)
    {
        return Err(ConfigError::new(
            "inbound.listen",
            format!("{} is also an upstream's listen address", inbound.listen),
        ));
    }

    let drain = DrainConfig {
        grace: duration("drain.grace", &raw.drain.grace, DEFAULT_DRAIN_GRACE)?,
        timeout: duration("drain.timeout", &raw.drain.timeout, DEFAULT_DRAIN_TIMEOUT)?,
    };
    let mesh = MeshConfig {
        mtls: raw.mesh.mtls.unwrap_or(false),
        default_intention: match &raw.mesh.default_intention {
            None => waymark_proto::intention::Action::Allow,
            Some(v) => v
                .parse()
                .map_err(|e| ConfigError::new("mesh.default_intention", e))?,
        },
    };
    if raw.mesh.default_intention.is_some() && !mesh.mtls {
        return Err(ConfigError::new(
            "mesh.default_intention",
            "intentions are enforced only with mesh.mtls = true (callers are known by \
             their certificates)",
        ));
    }
    let log = o.log_format.or(raw.log.format).unwrap_or(LogFormat::Json);
    let worker_threads = raw.runtime.worker_threads.unwrap_or(1);
    if worker_threads > MAX_WORKER_THREADS {
        return Err(ConfigError::new(
            "runtime.worker_threads",
            format!("must be 0 (one per CPU) to {MAX_WORKER_THREADS} (got {worker_threads})"),
        ));
    }
    Ok(Config {
        worker_threads,
        scheduling: raw.runtime.scheduling.unwrap_or_default(),
        registry,
        service,
        inbound,
        upstreams,
        admin,
        drain,
        mesh,
        log,
    })
}

/// The config key for a field of the Register request.
fn service_key(field: &str) -> String {
    match field {
        "service" => "service.name".into(),
        "address" => "service.advertise_address".into(),
        f if f.starts_with("weights.") => format!("service.{f}"),
        f if f.starts_with("meta") => format!("service.{f}"),
        "deregister_critical_after_ms" => "service.checks[].deregister_critical_after".into(),
        f => format!("service.{f}"),
    }
}

fn validate_service(
    s: RawService,
    o: &Overrides,
    inbound: &InboundConfig,
) -> Result<ServiceConfig, ConfigError> {
    let port = port("service.port", s.port)?;
    let address = s.address.unwrap_or_else(|| "127.0.0.1".into());
    let advertise_address = match s.advertise_address {
        Some(a) => a,
        // Peers need a routable address: the inbound's own IP if it names one.
        None if !inbound.listen.ip().is_unspecified() => inbound.listen.ip().to_string(),
        None => address.clone(),
    };
    for (key, from) in [
        (MESH_PORT_META, "inbound.advertise_port"),
        (PROXY_ADMIN_META, "admin.listen"),
    ] {
        if s.meta.contains_key(key) {
            return Err(ConfigError::new(
                format!("service.meta.{key}"),
                format!("is set by the proxy from {from}"),
            ));
        }
    }
    let weights = s.weights.unwrap_or(RawWeights {
        passing: None,
        warning: None,
    });
    let lease_ttl = duration("service.lease_ttl", &s.lease_ttl, DEFAULT_LEASE_TTL)?;
    if lease_ttl < MIN_LEASE_TTL {
        return Err(ConfigError::new(
            "service.lease_ttl",
            format!("must be at least {} s", MIN_LEASE_TTL.as_secs()),
        ));
    }
    let app = format!("{}:{port}", bracket_v6(&address));
    let mut checks = Vec::new();
    for (i, c) in s.checks.into_iter().enumerate() {
        checks.push(validate_check(i, c, &app)?);
    }
    let id = o
        .service_id
        .clone()
        .or(s.id)
        .unwrap_or_else(|| s.name.clone());
    Ok(ServiceConfig {
        name: s.name,
        id,
        app,
        advertise_address,
        port,
        tags: s.tags,
        meta: s.meta,
        weight_passing: weights.passing.unwrap_or(1),
        weight_warning: weights.warning.unwrap_or(1),
        lease_ttl,
        checks,
    })
}

fn bracket_v6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn validate_check(i: usize, c: RawCheck, app: &str) -> Result<CheckConfig, ConfigError> {
    let key = |k: &str| format!("service.checks[{i}].{k}");
    let target = match c.kind {
        RawCheckKind::Http => {
            let text = c.target.unwrap_or_else(|| format!("http://{app}/"));
            let url: http::Uri = text
                .parse()
                .map_err(|_| ConfigError::new(key("target"), format!("{text:?} is not a URL")))?;
            if url.scheme_str() != Some("http") || url.authority().is_none() {
                return Err(ConfigError::new(
                    key("target"),
                    format!("{text:?}: an http check needs an http://host:port/path URL"),
                ));
            }
            CheckTarget::Http { url }
        }
        RawCheckKind::Tcp | RawCheckKind::Grpc => {
            let addr = c.target.unwrap_or_else(|| app.to_string());
            if !addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
            {
                return Err(ConfigError::new(
                    key("target"),
                    format!("{addr:?} is not host:port"),
                ));
            }
            if c.kind == RawCheckKind::Tcp {
                CheckTarget::Tcp { addr }
            } else {
                CheckTarget::Grpc {
                    addr,
                    service: c.grpc_service.clone().unwrap_or_default(),
                }
            }
        }
    };
    if c.grpc_service.is_some() && c.kind != RawCheckKind::Grpc {
        return Err(ConfigError::new(
            key("grpc_service"),
            "only applies to kind = \"grpc\"",
        ));
    }
    let interval = positive_duration(&key("interval"), &c.interval, DEFAULT_CHECK_INTERVAL)?;
    let timeout = positive_duration(&key("timeout"), &c.timeout, DEFAULT_CHECK_TIMEOUT)?;
    if timeout > interval {
        return Err(ConfigError::new(
            key("timeout"),
            format!("must not exceed the interval ({} ms)", interval.as_millis()),
        ));
    }
    let jitter = duration(&key("jitter"), &c.jitter, Duration::ZERO)?;
    if jitter > interval {
        return Err(ConfigError::new(
            key("jitter"),
            "must not exceed the interval",
        ));
    }
    let success_before_passing =
        at_least_one(&key("success_before_passing"), c.success_before_passing, 1)?;
    let failures_before_critical = at_least_one(
        &key("failures_before_critical"),
        c.failures_before_critical,
        1,
    )?;
    let failures_before_warning = at_least_one(
        &key("failures_before_warning"),
        c.failures_before_warning,
        failures_before_critical,
    )?;
    if failures_before_warning > failures_before_critical {
        return Err(ConfigError::new(
            key("failures_before_warning"),
            format!("must not exceed failures_before_critical ({failures_before_critical})"),
        ));
    }
    let deregister_critical_after = match &c.deregister_critical_after {
        None => None,
        Some(_) => {
            let d = duration(
                &key("deregister_critical_after"),
                &c.deregister_critical_after,
                Duration::ZERO,
            )?;
            if d < Duration::from_secs(1) {
                return Err(ConfigError::new(
                    key("deregister_critical_after"),
                    "must be at least 1s",
                ));
            }
            Some(d)
        }
    };
    Ok(CheckConfig {
        name: c.name.unwrap_or_else(|| format!("checks[{i}]")),
        target,
        interval,
        timeout,
        jitter,
        success_before_passing,
        failures_before_warning,
        failures_before_critical,
        deregister_critical_after,
    })
}

fn validate_upstream(i: usize, u: RawUpstream) -> Result<UpstreamConfig, ConfigError> {
    let key = |k: &str| format!("upstreams[{i}].{k}");
    waymark_proto::validate::check_dns_label("service", &u.service)
        .map_err(|e| ConfigError::new(key("service"), e.rule))?;
    let policy = u.policy.unwrap_or(match u.protocol {
        Protocol::Http => Policy::PeakEwma,
        Protocol::Tcp => Policy::LeastRequest,
    });
    let request_timeout = duration(
        &key("request_timeout"),
        &u.request_timeout,
        DEFAULT_REQUEST_TIMEOUT,
    )?;
    if u.request_timeout.is_some() && u.protocol == Protocol::Tcp {
        return Err(ConfigError::new(
            key("request_timeout"),
            "only applies to protocol = \"http\"",
        ));
    }
    let panic = u.panic_threshold_percent.unwrap_or(DEFAULT_PANIC_THRESHOLD);
    if panic > 100 {
        return Err(ConfigError::new(
            key("panic_threshold_percent"),
            format!("must be 0-100 (got {panic})"),
        ));
    }
    let base_ejection = positive_duration(
        &key("ejection_base"),
        &u.ejection_base,
        DEFAULT_EJECTION_BASE,
    )?;
    let max_ejection =
        positive_duration(&key("ejection_max"), &u.ejection_max, DEFAULT_EJECTION_MAX)?;
    if max_ejection < base_ejection {
        return Err(ConfigError::new(
            key("ejection_max"),
            "must not be shorter than ejection_base",
        ));
    }
    Ok(UpstreamConfig {
        listen: socket_addr(&key("listen"), &u.listen)?,
        protocol: u.protocol,
        policy,
        connect_timeout: positive_duration(
            &key("connect_timeout"),
            &u.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        request_timeout: (!request_timeout.is_zero()).then_some(request_timeout),
        connect_attempts: at_least_one(
            &key("connect_attempts"),
            u.connect_attempts,
            DEFAULT_CONNECT_ATTEMPTS,
        )?,
        outlier: OutlierConfig {
            consecutive_failures: at_least_one(
                &key("eject_after_failures"),
                u.eject_after_failures,
                DEFAULT_EJECT_AFTER,
            )?,
            base_ejection,
            max_ejection,
            panic_threshold_percent: panic,
        },
        slow_start: duration(&key("slow_start"), &u.slow_start, Duration::ZERO)?,
        service: u.service,
    })
}

#[cfg(test)]
mod tests;
