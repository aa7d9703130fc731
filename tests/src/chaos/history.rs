//! The history of a chaos run: every client invocation and its outcome, and every fault, as JSON
//! lines in `history.jsonl` (written as they happen, so a run that dies still leaves its history)
//! and in memory for the checker.
//!
//! Outcomes follow Jepsen's vocabulary: `ok` (acknowledged, with the message id), `fail` (definitely
//! not done: the node refused the input) and `info` (unknown: a timeout, an unavailable node, a
//! broken connection — the submission may or may not have been committed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    /// A client sends one submission attempt to one node.
    Invoke {
        t_ms: u64,
        op: u64,
        attempt: u32,
        node: u64,
        reference: String,
        key: String,
        link: String,
        /// The validity asked for, in seconds (0: the default). Short ones check expiry under
        /// clock faults.
        #[serde(default, skip_serializing_if = "is_zero_u32")]
        validity_s: u32,
        /// The send time asked for (ms since the epoch by the harness's true clock; 0: at once).
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        send_at_ms: u64,
    },
    /// The attempt was acknowledged.
    Ok {
        t_ms: u64,
        op: u64,
        attempt: u32,
        node: u64,
        message_id: String,
        created: bool,
    },
    /// The attempt was refused for good (bad input): nothing was created.
    Fail {
        t_ms: u64,
        op: u64,
        attempt: u32,
        node: u64,
        code: String,
        error: String,
    },
    /// The attempt's outcome is unknown: the client retries with the same key.
    Info {
        t_ms: u64,
        op: u64,
        attempt: u32,
        node: u64,
        code: String,
        error: String,
    },
    /// What the client finally concluded about an operation.
    Done {
        t_ms: u64,
        op: u64,
        outcome: Outcome,
        message_id: Option<String>,
    },
    /// A watcher first saw the acknowledged message of `op` in a terminal state (read from a
    /// node every second: at most a second and a follower's lag after it became so).
    Terminal { t_ms: u64, op: u64, state: String },
    /// A fault began or ended. `minority`: nodes cut off from the majority, for partitions.
    Fault {
        t_ms: u64,
        seq: u32,
        kind: String,
        phase: Phase,
        nodes: Vec<u64>,
        minority: Vec<u64>,
        detail: String,
    },
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Failed,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Start,
    End,
}

/// Appends records to the history file and keeps them for the checker.
pub struct History {
    start: Instant,
    file: Mutex<BufWriter<File>>,
    records: Mutex<Vec<Record>>,
}

impl History {
    pub fn create(path: &Path) -> std::io::Result<History> {
        Ok(History {
            start: Instant::now(),
            file: Mutex::new(BufWriter::new(File::create(path)?)),
            records: Mutex::new(Vec::new()),
        })
    }

    /// Milliseconds since the run started: the clock of every record.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn push(&self, record: Record) {
        if let Ok(mut f) = self.file.lock() {
            if let Ok(line) = serde_json::to_string(&record) {
                let _ = writeln!(f, "{line}");
            }
        }
        if let Ok(mut r) = self.records.lock() {
            r.push(record);
        }
    }

    pub fn flush(&self) {
        if let Ok(mut f) = self.file.lock() {
            let _ = f.flush();
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}
