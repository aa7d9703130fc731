//! Which RocksDB versions Herald accepts, and reading a version from RocksDB's `version.h`. Pure
//! code shared by the crate's build script (which refuses to build against an older library) and
//! the crate (which reports the linked version, `db::ROCKSDB_VERSION`).
//!
//! Group commit acknowledges a batch of appends after one `FlushWAL(true)`; before RocksDB 7.7.0
//! that call could return before the WAL was synced (fixed in 7.7.0), which would acknowledge
//! messages a power loss then takes.

use std::fmt;

/// A RocksDB release: major, minor, patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The oldest RocksDB whose `FlushWAL(true)` syncs what group commit acknowledges.
pub const MINIMUM: Version = Version {
    major: 7,
    minor: 7,
    patch: 0,
};

/// Reads `ROCKSDB_MAJOR`, `ROCKSDB_MINOR` and `ROCKSDB_PATCH` from the text of `version.h`.
pub fn parse_header(text: &str) -> Option<Version> {
    let define = |name: &str| -> Option<u32> {
        text.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("#define") && words.next() == Some(name))
                .then(|| words.next()?.parse().ok())
                .flatten()
        })
    };
    Some(Version {
        major: define("ROCKSDB_MAJOR")?,
        minor: define("ROCKSDB_MINOR")?,
        patch: define("ROCKSDB_PATCH")?,
    })
}

/// Reads a dotted version ("7.8.3", as `pkg-config --modversion rocksdb` prints it).
pub fn parse_dotted(text: &str) -> Option<Version> {
    let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
    Some(Version {
        major: parts.next()??,
        minor: parts.next()??,
        patch: parts.next().unwrap_or(Some(0))?,
    })
}

/// Ok when `found` is at least [`MINIMUM`]; otherwise why Herald must not run on it.
pub fn check(found: Version) -> Result<(), String> {
    if found >= MINIMUM {
        return Ok(());
    }
    Err(format!(
        "RocksDB {found} is too old: Herald needs RocksDB {MINIMUM} or newer, because group \
         commit relies on FlushWAL(true) syncing the WAL, which RocksDB fixed in {MINIMUM}; \
         install a newer librocksdb-dev, or unset ROCKSDB_LIB_DIR to build the bundled RocksDB"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn versions_from_7_7_0_on_are_accepted() {
        assert!(check(v(7, 7, 0)).is_ok());
        assert!(check(v(7, 8, 3)).is_ok());
        assert!(check(v(8, 0, 0)).is_ok());
        assert!(check(v(10, 2, 1)).is_ok());
        let refused = check(v(7, 6, 99)).unwrap_err();
        assert!(refused.contains("RocksDB 7.6.99 is too old"), "{refused}");
        assert!(refused.contains("7.7.0"), "{refused}");
        assert!(check(v(6, 29, 5)).is_err());
        // Compared as numbers, not as text.
        assert!(v(7, 10, 0) > v(7, 7, 0));
    }

    #[test]
    fn the_header_and_pkg_config_forms_parse() {
        let header = "#ifndef X\n#define ROCKSDB_MAJOR 7\n#define ROCKSDB_MINOR 8\n\
                      #define ROCKSDB_PATCH 3\n#define ROCKSDB_MAKE_VERSION(a, b, c) a\n";
        assert_eq!(parse_header(header), Some(v(7, 8, 3)));
        assert_eq!(parse_header("#define ROCKSDB_MAJOR 7\n"), None);
        assert_eq!(parse_dotted("7.8.3\n"), Some(v(7, 8, 3)));
        assert_eq!(parse_dotted("8.1"), Some(v(8, 1, 0)));
        assert_eq!(parse_dotted("seven"), None);
    }
}
