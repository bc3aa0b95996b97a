//! Compiles the waymark.v1 protobuf definitions with a vendored `protoc`, so building
//! needs no system protobuf compiler.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the env.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let protos = [
        "proto/waymark/v1/read.proto",
        "proto/waymark/v1/config.proto",
        "proto/waymark/v1/mesh.proto",
        "proto/waymark/v1/catalog.proto",
        "proto/waymark/v1/cluster.proto",
        "proto/waymark/v1/lease.proto",
        "proto/waymark/v1/raft.proto",
        "proto/waymark/v1/acl.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    // The descriptor set feeds gRPC server reflection (`pb::FILE_DESCRIPTOR_SET`).
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // Messages and clients.
    tonic_prost_build::configure()
        .build_server(false)
        // Smaller per-call buffers (`src/codec.rs` says why).
        .codec_path("crate::codec::LeanCodec")
        .file_descriptor_set_path(out_dir.join("waymark_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    // Servers, against the messages above, except that a Watch stream sends
    // `WatchFrame`s: the same bytes on the wire, but a frame may be already encoded
    // (`src/watch_frame.rs` says why).
    let servers = out_dir.join("servers");
    std::fs::create_dir_all(&servers)?;
    tonic_prost_build::configure()
        .build_client(false)
        .codec_path("crate::codec::LeanCodec")
        .extern_path(".waymark.v1", "crate::pb")
        .extern_path(
            ".waymark.v1.WatchResponse",
            "crate::watch_frame::WatchFrame",
        )
        .out_dir(&servers)
        .compile_protos(&protos, &["proto"])?;
    Ok(())
}
