//! Refuses to build against a RocksDB older than 7.7.0 (see `src/rocksdb_version.rs` for why) and
//! embeds the linked version as `HERALD_ROCKSDB_VERSION` (`db::ROCKSDB_VERSION`).
//!
//! With `ROCKSDB_LIB_DIR` set (`.cargo/config.toml`: Debian's librocksdb), the version is read
//! from that library's `rocksdb/version.h` (under `ROCKSDB_INCLUDE_DIR`, pkg-config's include
//! directory, /usr/include or /usr/local/include), else from `pkg-config --modversion rocksdb`.
//! Without it the rocksdb crate compiles its bundled RocksDB (librocksdb-sys 0.11: RocksDB 8.1.1,
//! pinned through rocksdb =0.21.0 in the workspace).

#[allow(dead_code)]
#[path = "src/rocksdb_version.rs"]
mod rocksdb_version;

use std::path::PathBuf;
use std::process::Command;

use rocksdb_version::{check, parse_dotted, parse_header, Version};

/// The RocksDB librocksdb-sys 0.11 compiles when no system library is named.
const BUNDLED: Version = Version {
    major: 8,
    minor: 1,
    patch: 1,
};

fn pkg_config(args: &[&str]) -> Option<String> {
    let out = Command::new("pkg-config").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn system_version() -> Result<(Version, String), String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("ROCKSDB_INCLUDE_DIR") {
        dirs.push(dir.into());
    }
    if let Some(dir) = pkg_config(&["--variable=includedir", "rocksdb"]) {
        dirs.push(dir.into());
    }
    dirs.extend(["/usr/include".into(), "/usr/local/include".into()]);
    for dir in dirs {
        let header = dir.join("rocksdb/version.h");
        if let Ok(text) = std::fs::read_to_string(&header) {
            println!("cargo:rerun-if-changed={}", header.display());
            return parse_header(&text)
                .map(|v| (v, header.display().to_string()))
                .ok_or_else(|| format!("{} names no RocksDB version", header.display()));
        }
    }
    pkg_config(&["--modversion", "rocksdb"])
        .and_then(|text| parse_dotted(&text))
        .map(|v| (v, "pkg-config rocksdb".to_string()))
        .ok_or_else(|| {
            "cannot tell which RocksDB ROCKSDB_LIB_DIR holds: no rocksdb/version.h (set \
             ROCKSDB_INCLUDE_DIR to the directory holding rocksdb/) and no pkg-config rocksdb"
                .to_string()
        })
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/rocksdb_version.rs");
    println!("cargo:rerun-if-env-changed=ROCKSDB_LIB_DIR");
    println!("cargo:rerun-if-env-changed=ROCKSDB_INCLUDE_DIR");
    let (version, source) = if std::env::var_os("ROCKSDB_LIB_DIR").is_some() {
        match system_version() {
            Ok(found) => found,
            Err(why) => panic!("{why}"),
        }
    } else {
        (BUNDLED, "bundled".to_string())
    };
    if let Err(why) = check(version) {
        panic!("{why} (found {source})");
    }
    println!("cargo:rustc-env=HERALD_ROCKSDB_VERSION={version}");
}
