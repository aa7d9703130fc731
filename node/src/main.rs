//! The `herald` binary: everything it does is in the library (`herald_node::cli`).

/// mimalloc instead of the system allocator: decoding and re-encoding message records, events and
/// gRPC frames allocates many short-lived buffers on every message, and profiled under load
/// glibc's malloc and free (their slow paths: chunk unlinking, fastbin consolidation) were a fifth
/// of a node's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    herald_node::cli::main()
}
