//! Carrier simulators for tests and demos: they play the gateway side of a protocol over real
//! TCP, acknowledge submits, send status reports and record what they saw as JSON lines so a test
//! can check what the carrier received. They are test equipment, not carrier implementations.
//!
//! [`faults`] holds the misbehaviour every simulator shares (rate and window limits answered with
//! each protocol's throttling code, dropped, stalled and malformed connections, delayed
//! responses); `herald sim <protocol>` offers all of it for every protocol. [`router`] sends
//! reports to the client's connections, for every simulator but SGIP's.

pub mod cmpp;
pub mod cngp;
pub mod faults;
mod mo;
mod router;
pub mod sgip;
pub mod smgp;
pub mod smpp;
pub mod telecom;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// Appends one JSON object per line to a file, flushing each line so readers see it at once.
#[derive(Debug)]
pub struct Recorder {
    file: Mutex<File>,
}

impl Recorder {
    pub fn open(path: &Path) -> std::io::Result<Recorder> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Recorder {
            file: Mutex::new(file),
        })
    }

    /// Writes a line; failures are logged, not fatal (recording must not take the carrier down).
    pub fn record(&self, value: &serde_json::Value) {
        let mut line = value.to_string();
        line.push('\n');
        let result = match self.file.lock() {
            // One write of a whole line on an unbuffered file: a concurrent reader never sees half.
            Ok(mut f) => f.write_all(line.as_bytes()).and_then(|()| f.flush()),
            Err(_) => return,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "simulator could not record a line");
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
