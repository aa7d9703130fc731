//! What this binary is: the crate version and the git commit it was built from (embedded by
//! `build.rs`). Served as `herald_build_info`; not the cluster's format level.

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The short git commit of the build, or "unknown" when built outside a git checkout.
pub const COMMIT: &str = env!("HERALD_GIT_COMMIT");
