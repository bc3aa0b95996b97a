//! Meta keys by which an instance registered by `waymark-proxy` describes its proxy:
//! a convention between proxies (and the `waymark proxies` CLI), not a registry rule.

/// The port of the proxy's inbound (mesh) listener at the instance's address. Peers
/// dial `address:<this>`; DNS clients outside the mesh use the instance's own port.
pub const MESH_PORT_META: &str = "waymark-mesh-port";

/// `host:port` of the proxy's admin listener (`/ready`, `/endpoints`, `/metrics`).
pub const PROXY_ADMIN_META: &str = "waymark-proxy-admin";
