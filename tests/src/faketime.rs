//! Wall-clock jumps for a node process, as an NTP step or a VM resume makes them: Debian's
//! libfaketime preloaded into the process (`LD_PRELOAD`), reading its offset from a per-node file
//! (`FAKETIME_TIMESTAMP_FILE`) that the harness rewrites, re-read every second
//! (`FAKETIME_CACHE_DURATION=1`), with the monotonic clock left alone
//! (`FAKETIME_DONT_FAKE_MONOTONIC=1`): only the wall clock jumps. `scripts/install-deps` installs
//! it; [`library`] says why it cannot be used where it is missing.
//!
//! It does not fake time for the harness itself or the carrier simulators: they keep the true
//! clock the checks compare against.

use std::path::{Path, PathBuf};

/// Where Debian puts the library (`libfaketime`, pulled in by the `faketime` package), by
/// architecture; `HERALD_TEST_LIBFAKETIME` overrides.
pub fn library() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("HERALD_TEST_LIBFAKETIME") {
        let path = PathBuf::from(path);
        return if path.exists() {
            Ok(path)
        } else {
            Err(format!(
                "HERALD_TEST_LIBFAKETIME={} does not exist",
                path.display()
            ))
        };
    }
    let found = std::fs::read_dir("/usr/lib").ok().and_then(|dirs| {
        dirs.flatten()
            .map(|d| d.path().join("faketime/libfaketime.so.1"))
            .find(|p| p.exists())
    });
    found.ok_or_else(|| {
        "libfaketime is not installed (/usr/lib/<arch>/faketime/libfaketime.so.1; Debian package \
         faketime, installed by scripts/install-deps)"
            .to_string()
    })
}

/// One process's clock offset file.
#[derive(Debug, Clone)]
pub struct ClockFile {
    path: PathBuf,
    library: PathBuf,
}

impl ClockFile {
    /// A clock file at `path`, at offset 0.
    pub fn create(path: &Path) -> Result<ClockFile, String> {
        let clock = ClockFile {
            path: path.to_path_buf(),
            library: library()?,
        };
        clock
            .set_offset_secs(0)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(clock)
    }

    /// The environment a process started with it needs.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), self.library.display().to_string()),
            (
                "FAKETIME_TIMESTAMP_FILE".into(),
                self.path.display().to_string(),
            ),
            ("FAKETIME_CACHE_DURATION".into(), "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ]
    }

    /// The offset a process started now with this clock sees (seconds, by running `date` under
    /// it): proof that the library reads the file. A running process sees a change up to a
    /// second later (the library's cache).
    pub fn observed_offset_secs(&self) -> std::io::Result<i64> {
        let out = std::process::Command::new("date")
            .arg("+%s")
            .envs(self.env())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let faked: i64 = text.trim().parse().map_err(|_| {
            std::io::Error::other(format!("date under libfaketime printed {text:?}"))
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ok(faked - now)
    }

    /// Jumps the process's wall clock to `secs` from the true time (negative: back). Takes
    /// effect within a second (the library's cache). Written whole, then renamed, so the library
    /// never reads half a line.
    pub fn set_offset_secs(&self, secs: i64) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{secs:+}\n"))?;
        std::fs::rename(&tmp, &self.path)
    }
}
