//! Waymark's Jepsen-style harness — not built yet. It will hold cluster control in
//! network namespaces, nemeses (kill, pause, partition), workloads, history checkers
//! (a Porcupine-style linearizability checker) and run reports. It treats the cluster
//! as a black box: real processes and the public gRPC/DNS APIs only.
