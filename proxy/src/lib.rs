//! Waymark's sidecar proxy — not built yet. It will hold the `waymark-proxy` binary:
//! registration under a lease, health checks of the local app, upstream discovery over
//! gRPC watches, load balancing and mTLS. It talks to the registry only through the
//! public gRPC API in `waymark-proto`.
