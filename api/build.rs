//! Generates the gRPC code from `proto/` with protox (a pure-Rust protobuf compiler), so building
//! Herald needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/herald/v1/messaging.proto",
        "proto/herald/v1/cluster.proto",
        "proto/herald/v1/internal.proto",
        "proto/herald/v1/admin.proto",
    ];
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
