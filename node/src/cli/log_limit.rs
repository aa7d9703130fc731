//! Repeated warnings, written once per window: a peer that is down makes openraft warn about
//! every heartbeat and replication attempt (about six lines a second per peer), which buries
//! everything else in the log and grows it without bound.
//!
//! [`RateLimitedWriter`] sits between the log formatter and its output. Of the warnings and
//! errors from one place in a dependency's code (one callsite), it writes the first, drops the rest for
//! [`REPEAT_WINDOW`], and then writes one line saying how many it dropped. Information and
//! debug lines, and Herald's own warnings (each names what it is about), pass untouched. It decides per callsite, not per text, so a warning that names
//! a changing value (an index, a peer) still counts as a repeat. The counting itself is
//! [`RepeatLimiter`], pure and driven by the caller's clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::writer::{EitherWriter, MakeWriter};

/// How long repeats of a warning are counted instead of written.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// Repeats of one warning that were not written, reported when their window ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub level: Level,
    /// The module that warned, and where (`file:line`), as the first line named them.
    pub target: String,
    pub place: String,
    pub dropped: u64,
    pub window: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>5} {}: {} more like this ({}) in the last {} s, not written",
            self.level,
            self.target,
            self.dropped,
            self.place,
            self.window.as_secs()
        )
    }
}

impl Summary {
    /// The line as a JSON object with the fields a JSON log line has.
    pub fn to_json(&self, timestamp: &str) -> String {
        serde_json::json!({
            "timestamp": timestamp,
            "level": self.level.to_string(),
            "message": format!(
                "{} more like this ({}) in the last {} s, not written",
                self.dropped,
                self.place,
                self.window.as_secs()
            ),
            "target": self.target,
            "dropped": self.dropped,
        })
        .to_string()
    }
}

struct Repeats {
    since: Instant,
    dropped: u64,
    level: Level,
    target: String,
    place: String,
}

/// Counts events per key: the first of a window is written, the rest of the window counted.
pub struct RepeatLimiter<K> {
    window: Duration,
    seen: HashMap<K, Repeats>,
}

impl<K: Hash + Eq + Clone> RepeatLimiter<K> {
    pub fn new(window: Duration) -> Self {
        RepeatLimiter {
            window,
            seen: HashMap::new(),
        }
    }

    /// Whether an event of `key` seen at `now` is written; and, either way, the summaries of
    /// every window that has ended by `now` with lines dropped (to be written first).
    pub fn admit(
        &mut self,
        key: &K,
        level: Level,
        target: &str,
        place: &str,
        now: Instant,
    ) -> (bool, Vec<Summary>) {
        let summaries = self.ended(now);
        match self.seen.get_mut(key) {
            Some(r) if now.saturating_duration_since(r.since) < self.window => {
                r.dropped += 1;
                (false, summaries)
            }
            _ => {
                self.seen.insert(
                    key.clone(),
                    Repeats {
                        since: now,
                        dropped: 0,
                        level,
                        target: target.to_string(),
                        place: place.to_string(),
                    },
                );
                (true, summaries)
            }
        }
    }

    /// The summaries of the windows ended by `now` that dropped lines; forgets every ended
    /// window, so memory follows the callsites warning at the moment.
    pub fn ended(&mut self, now: Instant) -> Vec<Summary> {
        let window = self.window;
        let mut summaries = Vec::new();
        self.seen.retain(|_, r| {
            if now.saturating_duration_since(r.since) < window {
                return true;
            }
            if r.dropped > 0 {
                summaries.push(Summary {
                    level: r.level,
                    target: std::mem::take(&mut r.target),
                    place: std::mem::take(&mut r.place),
                    dropped: r.dropped,
                    window,
                });
            }
            false
        });
        summaries.sort_by(|a, b| a.place.cmp(&b.place));
        summaries
    }
}

/// A [`MakeWriter`] that drops repeated warnings and errors (see the module's text) and writes
/// everything else to `inner`.
pub struct RateLimitedWriter<M> {
    inner: M,
    limiter: Mutex<RepeatLimiter<Identifier>>,
    /// How many warnings are being counted now, so that a line that is not limited skips the
    /// lock while nothing is (almost always).
    counting: AtomicUsize,
    clock: fn() -> Instant,
    /// Write the "more like this" lines as JSON objects, like the rest of a JSON log.
    json: bool,
}

/// Whether repeats of an event are limited: dependencies' warnings and errors. The flood comes
/// from them (openraft warns at every heartbeat to a down peer); Herald's own warnings each name
/// the link, slot or message they are about, and a second link going down must not read as a
/// repeat of the first.
fn limited(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::WARN && !meta.target().starts_with("herald")
}

impl<M> RateLimitedWriter<M> {
    pub fn new(inner: M, window: Duration) -> Self {
        Self::with_clock(inner, window, Instant::now)
    }

    /// With another clock than [`Instant::now`], for tests.
    pub fn with_clock(inner: M, window: Duration, clock: fn() -> Instant) -> Self {
        RateLimitedWriter {
            inner,
            limiter: Mutex::new(RepeatLimiter::new(window)),
            counting: AtomicUsize::new(0),
            clock,
            json: false,
        }
    }

    /// Writes its own lines as JSON objects (for `--log-format json`).
    pub fn json(mut self, json: bool) -> Self {
        self.json = json;
        self
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RateLimitedWriter<M> {
    type Writer = EitherWriter<M::Writer, std::io::Sink>;

    fn make_writer(&'a self) -> Self::Writer {
        EitherWriter::A(self.inner.make_writer())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        let limited = limited(meta);
        if !limited && self.counting.load(Ordering::Relaxed) == 0 {
            return EitherWriter::A(self.inner.make_writer_for(meta));
        }
        let now = (self.clock)();
        let (write, summaries) = {
            // A panic elsewhere while holding the lock must not silence the log.
            let mut limiter = self
                .limiter
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let answer = if limited {
                let place = format!(
                    "{}:{}",
                    short_path(meta.file().unwrap_or("?")),
                    meta.line().unwrap_or(0)
                );
                limiter.admit(&meta.callsite(), *meta.level(), meta.target(), &place, now)
            } else {
                (true, limiter.ended(now))
            };
            self.counting.store(limiter.seen.len(), Ordering::Relaxed);
            answer
        };
        if !summaries.is_empty() {
            let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
            let mut out = self.inner.make_writer();
            for summary in summaries {
                // Losing a summary line is no reason to fail the event being logged.
                let _ = if self.json {
                    writeln!(out, "{}", summary.to_json(&stamp.to_string()))
                } else {
                    writeln!(out, "{stamp} {summary}")
                };
            }
        }
        if write {
            EitherWriter::A(self.inner.make_writer_for(meta))
        } else {
            EitherWriter::B(std::io::sink())
        }
    }
}

/// A dependency's source file from its crate's directory on (`openraft-0.10.0/src/…`), without
/// the local path of cargo's registry, which says nothing to a reader of the log.
fn short_path(file: &str) -> &str {
    const REGISTRY: &str = "/registry/src/";
    match file.find(REGISTRY) {
        Some(at) => {
            let index_and_rest = &file[at + REGISTRY.len()..];
            index_and_rest
                .split_once('/')
                .map_or(index_and_rest, |(_, rest)| rest)
        }
        None => file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::{Arc, OnceLock};

    #[test]
    fn the_first_of_a_window_is_written_and_the_rest_counted() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut limiter = RepeatLimiter::new(Duration::from_secs(10));
        let mut admit = |key: &'static str, ms: u64| {
            limiter.admit(&key, Level::WARN, "openraft::replication", key, at(ms))
        };
        assert_eq!(admit("a", 0), (true, vec![]));
        // Six a second for ten seconds: none written.
        for i in 1..60 {
            assert_eq!(admit("a", i * 166), (false, vec![]), "repeat {i}");
        }
        // Another warning has its own window.
        assert_eq!(admit("b", 5_000), (true, vec![]));
        // Ten seconds after the first: the count of what was dropped, and the repeat written.
        let (written, summaries) = admit("a", 10_000);
        assert!(written);
        assert_eq!(
            summaries,
            [Summary {
                level: Level::WARN,
                target: "openraft::replication".into(),
                place: "a".into(),
                dropped: 59,
                window: Duration::from_secs(10),
            }]
        );
        assert_eq!(
            summaries[0].to_string(),
            " WARN openraft::replication: 59 more like this (a) in the last 10 s, not written"
        );
        // "b" dropped nothing: its window ends without a summary.
        assert_eq!(admit("b", 15_000), (true, vec![]));
    }

    #[test]
    fn a_dependency_is_named_from_its_crate_directory_on() {
        assert_eq!(
            short_path(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/openraft-0.10.0/src/replication/mod.rs"
            ),
            "openraft-0.10.0/src/replication/mod.rs"
        );
        assert_eq!(
            short_path("node/src/links/worker.rs"),
            "node/src/links/worker.rs"
        );
    }

    #[test]
    fn a_window_that_ended_is_summarised_at_the_next_line_of_any_kind() {
        let start = Instant::now();
        let mut limiter = RepeatLimiter::new(Duration::from_secs(10));
        assert!(limiter.admit(&1, Level::ERROR, "t", "p", start).0);
        assert!(!limiter.admit(&1, Level::ERROR, "t", "p", start).0);
        assert_eq!(limiter.ended(start + Duration::from_secs(9)), vec![]);
        let summaries = limiter.ended(start + Duration::from_secs(10));
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].dropped, 1);
        assert_eq!(limiter.ended(start + Duration::from_secs(30)), vec![]);
        assert!(limiter.seen.is_empty(), "ended windows are forgotten");
    }

    /// What the writer wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The test clock: a fixed start plus an offset the test moves.
    static OFFSET_MS: AtomicU64 = AtomicU64::new(0);
    fn test_clock() -> Instant {
        static START: OnceLock<Instant> = OnceLock::new();
        *START.get_or_init(Instant::now) + Duration::from_millis(OFFSET_MS.load(Ordering::SeqCst))
    }

    #[test]
    fn through_the_formatter_a_warning_storm_becomes_one_line_and_a_count() {
        let out = Captured::default();
        let sink = out.clone();
        let writer = RateLimitedWriter::with_clock(
            move || sink.clone(),
            Duration::from_secs(10),
            test_clock,
        );
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for peer in 0..60 {
                tracing::warn!(target: "openraft::replication", "peer {peer} unreachable");
            }
            // Herald's own warnings each say what they are about: never limited.
            for link in 0..3 {
                tracing::warn!("link {link} down");
            }
            tracing::info!("information is never limited");
            tracing::info!("information is never limited");
            OFFSET_MS.store(10_000, Ordering::SeqCst);
            tracing::info!("a later line");
        });
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8, "{text}");
        assert!(lines[0].ends_with("peer 0 unreachable"), "{text}");
        for (i, line) in lines[1..4].iter().enumerate() {
            assert!(line.ends_with(&format!("link {i} down")), "{text}");
        }
        assert!(lines[4].ends_with("information is never limited"), "{text}");
        assert!(
            lines[6].contains(" WARN openraft::replication: 59 more like this"),
            "{text}"
        );
        assert!(lines[7].ends_with("a later line"), "{text}");
        assert!(!text.contains('\u{1b}'), "no terminal escape codes: {text}");
    }
}
