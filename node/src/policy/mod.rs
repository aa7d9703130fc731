//! The dispatch policy: routes, message classes (priority weights, retries, validity, quiet hours)
//! and per-client quotas. Operators set it through the Admin API; it travels in the replicated log
//! (`PolicyChanged`), so every node applies the same policy from the same log position without a
//! restart. It is stored as JSON with a `format` number, written and shown as TOML.

pub mod replies;
pub mod routing;

use std::collections::BTreeMap;

use chrono::{NaiveTime, TimeZone, Timelike};
use serde::{Deserialize, Serialize};

use crate::policy::routing::Carrier;

/// The format this node writes and understands.
pub const FORMAT: u32 = 1;

/// Largest policy document accepted.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DispatchPolicy {
    pub format: u32,
    /// IANA time zone for quiet hours (e.g. `Asia/Shanghai`).
    pub time_zone: String,
    pub classes: Classes,
    /// Tried in order; the first route whose conditions all hold carries the message.
    pub routes: Vec<Route>,
    /// Replaces the built-in number segments of a carrier (`mobile`, `unicom`, `telecom`).
    pub number_segments: BTreeMap<String, Vec<String>>,
    /// Numbers that moved to another carrier (number portability): number → carrier.
    pub ported_numbers: BTreeMap<String, String>,
    /// Submission limits per client system (the client of its calls' API key).
    pub clients: BTreeMap<String, ClientQuota>,
    pub failover: Failover,
    /// Where subscribers' replies go, and how long a long one waits for its parts.
    pub replies: crate::policy::replies::Replies,
}

impl Default for DispatchPolicy {
    fn default() -> Self {
        DispatchPolicy {
            format: FORMAT,
            time_zone: "Asia/Shanghai".into(),
            classes: Classes::default(),
            routes: Vec::new(),
            number_segments: BTreeMap::new(),
            ported_numbers: BTreeMap::new(),
            clients: BTreeMap::new(),
            failover: Failover::default(),
            replies: Default::default(),
        }
    }
}

/// The four message classes, by the API's priorities. Alarm is served strictly first; the others
/// share what is left by weight, so bulk never starves and never delays an alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Classes {
    pub alarm: ClassPolicy,
    pub notification: ClassPolicy,
    pub customer_service: ClassPolicy,
    pub bulk: ClassPolicy,
}

pub const CLASS_NAMES: [&str; 4] = ["alarm", "notification", "customer-service", "bulk"];

impl Default for Classes {
    fn default() -> Self {
        let class = |weight, max_attempts, backoff_ms| ClassPolicy {
            weight,
            max_attempts,
            backoff_ms,
            ..ClassPolicy::default()
        };
        Classes {
            alarm: class(0, 10, 500),
            notification: class(6, 5, 2_000),
            customer_service: class(3, 5, 2_000),
            bulk: class(1, 3, 10_000),
        }
    }
}

impl Classes {
    /// The class of a priority (0 = alarm … 3 = bulk).
    pub fn of(&self, priority: u32) -> &ClassPolicy {
        match priority {
            0 => &self.alarm,
            1 => &self.notification,
            2 => &self.customer_service,
            _ => &self.bulk,
        }
    }

    fn all(&self) -> [(&'static str, &ClassPolicy); 4] {
        [
            (CLASS_NAMES[0], &self.alarm),
            (CLASS_NAMES[1], &self.notification),
            (CLASS_NAMES[2], &self.customer_service),
            (CLASS_NAMES[3], &self.bulk),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ClassPolicy {
    /// Share of the link among the weighted classes (alarm ignores it: it always goes first).
    pub weight: u32,
    /// Carrier submissions before the message fails with the last carrier code.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles with each attempt up to `max-backoff-ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Validity when the submission gives none (0: the node's default).
    pub validity_seconds: u64,
    /// Carrier codes retried although the protocol calls them permanent.
    pub retry_codes: Vec<u32>,
    /// Carrier codes never retried although the protocol calls them retryable.
    pub no_retry_codes: Vec<u32>,
    pub quiet_hours: Option<QuietHours>,
    /// Links of its route a message of this class is sent through at once (1: one at a time). The
    /// first delivery report wins; the other copies are withdrawn or recorded as duplicates.
    pub fan_out: u32,
}

/// Most links one message is sent through at once.
pub const MAX_FAN_OUT: u32 = 4;

/// Longest validity and retry backoff a policy may set: far beyond any real use, and small enough
/// that adding them to a timestamp can never overflow.
pub const MAX_VALIDITY_SECONDS: u64 = 366 * 24 * 3600;
const MAX_BACKOFF_MS: u64 = 24 * 3600 * 1000;

impl ClassPolicy {
    fn validate(&self, field: &str, is_alarm: bool) -> Result<(), PolicyError> {
        if self.max_attempts == 0 {
            return Err(bad(format!("{field}.max-attempts"), "must be at least 1"));
        }
        if !(1..=MAX_FAN_OUT).contains(&self.fan_out) {
            return Err(bad(
                format!("{field}.fan-out"),
                format!("must be between 1 and {MAX_FAN_OUT}"),
            ));
        }
        if !is_alarm && self.weight == 0 {
            return Err(bad(
                format!("{field}.weight"),
                "must be at least 1 (no class may starve)",
            ));
        }
        if self.max_backoff_ms > MAX_BACKOFF_MS {
            return Err(bad(
                format!("{field}.max-backoff-ms"),
                format!("at most {MAX_BACKOFF_MS} (a day)"),
            ));
        }
        if self.backoff_ms > self.max_backoff_ms {
            return Err(bad(
                format!("{field}.backoff-ms"),
                "must not exceed max-backoff-ms",
            ));
        }
        if self.validity_seconds > MAX_VALIDITY_SECONDS {
            return Err(bad(
                format!("{field}.validity-seconds"),
                format!("at most {MAX_VALIDITY_SECONDS} (a year)"),
            ));
        }
        if let Some(q) = &self.quiet_hours {
            let clock = |text: &str, part: &str| {
                parse_clock(text).ok_or_else(|| {
                    bad(
                        format!("{field}.quiet-hours.{part}"),
                        "must be HH:MM or HH:MM:SS",
                    )
                })
            };
            if clock(&q.from, "from")? == clock(&q.to, "to")? {
                return Err(bad(
                    format!("{field}.quiet-hours"),
                    "from and to must differ",
                ));
            }
        }
        Ok(())
    }
}

impl Route {
    fn validate(&self, field: &str, known_links: &[&str]) -> Result<(), PolicyError> {
        if self.name.is_empty() || self.name.chars().any(char::is_control) {
            return Err(bad(format!("{field}.name"), "must be non-empty text"));
        }
        if self.links.is_empty() {
            return Err(bad(format!("{field}.links"), "needs at least one link"));
        }
        for (j, link) in self.links.iter().enumerate() {
            if !known_links.contains(&link.as_str()) {
                return Err(bad(
                    format!("{field}.links[{j}]"),
                    format!(
                        "no link named {link:?} (configured: {})",
                        known_links.join(", ")
                    ),
                ));
            }
        }
        for (j, carrier) in self.carriers.iter().enumerate() {
            if carrier.parse::<Carrier>().is_err() {
                return Err(bad(
                    format!("{field}.carriers[{j}]"),
                    format!("unknown carrier {carrier:?} (mobile, unicom, telecom, other)"),
                ));
            }
        }
        for (j, class) in self.classes.iter().enumerate() {
            if !CLASS_NAMES.contains(&class.as_str()) {
                return Err(bad(
                    format!("{field}.classes[{j}]"),
                    format!("unknown class {class:?} ({})", CLASS_NAMES.join(", ")),
                ));
            }
        }
        for (j, prefix) in self.prefixes.iter().enumerate() {
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            if !is_digits(digits) {
                return Err(bad(
                    format!("{field}.prefixes[{j}]"),
                    "must be digits (optionally after +)",
                ));
            }
        }
        Ok(())
    }
}

/// Non-empty and ASCII digits only.
fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

impl Default for ClassPolicy {
    fn default() -> Self {
        ClassPolicy {
            weight: 1,
            max_attempts: 5,
            backoff_ms: 2_000,
            max_backoff_ms: 300_000,
            validity_seconds: 0,
            retry_codes: Vec::new(),
            no_retry_codes: Vec::new(),
            quiet_hours: None,
            fan_out: 1,
        }
    }
}

/// No sending between `from` and `to` (local time of the policy's zone; `to` before `from` spans
/// midnight). `HH:MM` or `HH:MM:SS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QuietHours {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Route {
    pub name: String,
    /// Conditions; an empty list matches everything.
    pub carriers: Vec<String>,
    pub prefixes: Vec<String>,
    pub clients: Vec<String>,
    pub classes: Vec<String>,
    /// Primary first, then backups.
    pub links: Vec<String>,
    /// The primary counts as congested while more than this many messages wait in the route's
    /// queue: the link at position p (primary = 0) helps drain it while more than
    /// p × this many wait. 0: only flow-control answers mark a link congested.
    pub congested_queue: u64,
}

impl Route {
    /// How many links of this route carry a message of `class` at once (`urgent`: at least two).
    pub fn fan_out(&self, class: &ClassPolicy, urgent: bool) -> usize {
        let wanted = if urgent {
            class.fan_out.max(2)
        } else {
            class.fan_out
        };
        (wanted as usize).min(self.links.len()).max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ClientQuota {
    /// Submissions per second accepted from the client by each node (0: no limit).
    pub max_per_second: u32,
    /// Messages of the client not yet in a terminal state (0: no limit).
    pub max_queued: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Failover {
    /// A link disconnected this long is reported down: its routes' backups take over.
    pub down_after_ms: u64,
    /// A holder whose link is down gives its unsent messages back to their route after this long.
    pub requeue_after_ms: u64,
}

impl Default for Failover {
    fn default() -> Self {
        Failover {
            down_after_ms: 2_000,
            requeue_after_ms: 3_000,
        }
    }
}

/// A policy that breaks a rule, with the field and the rule.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct PolicyError {
    pub field: String,
    pub rule: String,
}

fn bad(field: impl Into<String>, rule: impl Into<String>) -> PolicyError {
    PolicyError {
        field: field.into(),
        rule: rule.into(),
    }
}

impl DispatchPolicy {
    /// Reads an operator's TOML or JSON (by the first non-blank character) and checks it against
    /// the link names this node knows.
    pub fn parse(document: &str, known_links: &[&str]) -> Result<Self, PolicyError> {
        if document.len() > MAX_DOCUMENT_BYTES {
            return Err(bad(
                "document",
                format!(
                    "at most {MAX_DOCUMENT_BYTES} bytes, got {} (it travels in every node's log)",
                    document.len()
                ),
            ));
        }
        let policy: DispatchPolicy = if document.trim_start().starts_with('{') {
            serde_json::from_str(document)
                .map_err(|e| bad("policy", format!("not valid JSON: {e}")))?
        } else {
            toml::from_str(document).map_err(|e| bad("policy", format!("not valid TOML: {e}")))?
        };
        policy.validate(known_links)?;
        Ok(policy)
    }

    /// Reads the stored JSON form (already validated when it was set).
    pub fn from_stored(json: &str) -> Result<Self, PolicyError> {
        if json.is_empty() {
            return Ok(DispatchPolicy::default());
        }
        let policy: DispatchPolicy = serde_json::from_str(json)
            .map_err(|e| bad("stored policy", format!("unreadable: {e}")))?;
        if policy.format != FORMAT {
            return Err(bad(
                "format",
                format!(
                    "this node reads format {FORMAT}, the policy is {}",
                    policy.format
                ),
            ));
        }
        Ok(policy)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a policy always serialises")
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# not shown as TOML: {e}"))
    }

    pub fn validate(&self, known_links: &[&str]) -> Result<(), PolicyError> {
        if self.format != FORMAT {
            return Err(bad("format", format!("must be {FORMAT}")));
        }
        self.zone()?;
        for (name, class) in self.classes.all() {
            class.validate(&format!("classes.{name}"), name == "alarm")?;
        }
        let mut names = std::collections::HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let field = format!("routes[{i}]");
            if !names.insert(&route.name) {
                return Err(bad(
                    format!("{field}.name"),
                    format!("{:?} is used twice", route.name),
                ));
            }
            route.validate(&field, known_links)?;
        }
        for (carrier, prefixes) in &self.number_segments {
            let field = format!("number-segments.{carrier}");
            if carrier.parse::<Carrier>().is_err() {
                return Err(bad(field, "unknown carrier (mobile, unicom, telecom)"));
            }
            if !prefixes.iter().all(|p| is_digits(p)) {
                return Err(bad(field, "segments must be digits"));
            }
        }
        for (number, carrier) in &self.ported_numbers {
            if carrier.parse::<Carrier>().is_err() {
                return Err(bad(
                    format!("ported-numbers.{number}"),
                    format!("unknown carrier {carrier:?}"),
                ));
            }
        }
        if self.failover.down_after_ms == 0 {
            return Err(bad("failover.down-after-ms", "must be at least 1"));
        }
        let day_ms = 24 * 3600 * 1000;
        if self.failover.down_after_ms > day_ms || self.failover.requeue_after_ms > day_ms {
            return Err(bad("failover", "times must be at most a day (86400000 ms)"));
        }
        self.replies.validate()?;
        Ok(())
    }

    pub fn zone(&self) -> Result<chrono_tz::Tz, PolicyError> {
        self.time_zone.parse().map_err(|_| {
            bad(
                "time-zone",
                format!("{:?} is not an IANA time zone name", self.time_zone),
            )
        })
    }

    /// When a message of `priority` may be sent, if quiet hours forbid it at `now_ms`: the end of
    /// the quiet period (ms since the epoch). `None` when it may be sent now.
    pub fn quiet_until(&self, priority: u32, now_ms: u64) -> Option<u64> {
        let quiet = self.classes.of(priority).quiet_hours.as_ref()?;
        let (from, to) = (parse_clock(&quiet.from)?, parse_clock(&quiet.to)?);
        let zone = self.zone().ok()?;
        let now = zone.timestamp_millis_opt(now_ms as i64).single()?;
        let clock = now.time().num_seconds_from_midnight();
        let (from_s, to_s) = (
            from.num_seconds_from_midnight(),
            to.num_seconds_from_midnight(),
        );
        let inside = if from_s < to_s {
            clock >= from_s && clock < to_s
        } else {
            clock >= from_s || clock < to_s
        };
        if !inside {
            return None;
        }
        // Seconds until the clock next reads `to`.
        let wait = (i64::from(to_s) - i64::from(clock)).rem_euclid(86_400);
        let end = now.with_nanosecond(0)? + chrono::Duration::seconds(wait);
        Some(end.timestamp_millis().max(0) as u64)
    }

    /// How long to wait before attempt `attempts + 1` (exponential from the class's backoff).
    pub fn backoff_ms(&self, priority: u32, attempts: u32) -> u64 {
        let class = self.classes.of(priority);
        let doubled = class
            .backoff_ms
            .saturating_mul(1u64 << attempts.saturating_sub(1).min(20));
        doubled.min(class.max_backoff_ms)
    }

    /// Whether a carrier code is retried for this class: the class's lists first, the protocol's
    /// own classification otherwise.
    pub fn retryable(&self, priority: u32, code: u32, protocol_says: bool) -> bool {
        let class = self.classes.of(priority);
        if class.no_retry_codes.contains(&code) {
            false
        } else if class.retry_codes.contains(&code) {
            true
        } else {
            protocol_says
        }
    }
}

fn parse_clock(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINKS: &[&str] = &["cmpp-a", "cmpp-b"];

    fn ms(rfc3339: &str) -> u64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis() as u64
    }

    #[test]
    fn toml_and_json_read_the_same_policy() {
        let toml = r#"
            time-zone = "Asia/Shanghai"
            [classes.bulk]
            weight = 2
            quiet-hours = { from = "21:00", to = "08:00" }
            [[routes]]
            name = "mobile"
            carriers = ["mobile"]
            links = ["cmpp-a", "cmpp-b"]
        "#;
        let policy = DispatchPolicy::parse(toml, LINKS).unwrap();
        assert_eq!(policy.classes.bulk.weight, 2);
        assert_eq!(
            policy.classes.alarm.max_attempts, 10,
            "unset fields keep their defaults"
        );
        let again = DispatchPolicy::parse(&policy.to_json(), LINKS).unwrap();
        assert_eq!(policy, again);
        assert_eq!(
            DispatchPolicy::from_stored(&policy.to_json()).unwrap(),
            policy
        );
    }

    #[test]
    fn fan_out_is_the_class_s_or_two_when_urgent_and_never_more_than_the_route_has() {
        let route = |links: &[&str]| Route {
            name: "r".into(),
            links: links.iter().map(|l| l.to_string()).collect(),
            ..Route::default()
        };
        let class = |fan_out| ClassPolicy {
            fan_out,
            ..ClassPolicy::default()
        };
        let three = route(&["a", "b", "c"]);
        assert_eq!(three.fan_out(&class(1), false), 1);
        assert_eq!(three.fan_out(&class(1), true), 2);
        assert_eq!(three.fan_out(&class(3), true), 3);
        assert_eq!(three.fan_out(&class(4), false), 3);
        assert_eq!(route(&["a"]).fan_out(&class(1), true), 1);
    }

    #[test]
    fn the_documented_example_is_valid() {
        let text = include_str!("../../../examples/policy.toml");
        let policy = DispatchPolicy::parse(text, &["cmpp-sim"]).unwrap();
        assert_eq!(policy.routes.len(), 2);
        assert!(policy.classes.bulk.quiet_hours.is_some());
        assert_eq!(policy.replies.client_for("1069000112"), Some("billing"));
    }

    #[test]
    fn errors_name_the_field_and_the_rule() {
        let cases = [
            (
                "[[routes]]\nname = \"r\"\nlinks = [\"nope\"]",
                "routes[0].links[0]",
            ),
            ("[[routes]]\nname = \"r\"\nlinks = []", "routes[0].links"),
            (
                "[[routes]]\nname = \"r\"\ncarriers = [\"mars\"]\nlinks = [\"cmpp-a\"]",
                "routes[0].carriers[0]",
            ),
            ("[classes.bulk]\nweight = 0", "classes.bulk.weight"),
            ("[classes.alarm]\nfan-out = 0", "classes.alarm.fan-out"),
            ("[classes.alarm]\nfan-out = 5", "classes.alarm.fan-out"),
            (
                "[classes.bulk]\nquiet-hours = { from = \"25:00\", to = \"08:00\" }",
                "classes.bulk.quiet-hours.from",
            ),
            ("time-zone = \"Mars/Olympus\"", "time-zone"),
            (
                "[[routes]]\nname = \"r\"\nprefixes = [\"+\"]\nlinks = [\"cmpp-a\"]",
                "routes[0].prefixes[0]",
            ),
            (
                "[classes.bulk]\nvalidity-seconds = 9223372036854775807",
                "classes.bulk.validity-seconds",
            ),
            (
                "[classes.bulk]\nmax-backoff-ms = 9223372036854775807",
                "classes.bulk.max-backoff-ms",
            ),
            ("surprise = 1", "policy"),
        ];
        for (doc, field) in cases {
            let err = DispatchPolicy::parse(doc, LINKS).unwrap_err();
            assert_eq!(err.field, field, "{doc}: {err}");
        }
    }

    #[test]
    fn quiet_hours_span_midnight_in_the_policy_zone() {
        let mut policy = DispatchPolicy::default();
        policy.classes.bulk.quiet_hours = Some(QuietHours {
            from: "21:00".into(),
            to: "08:00".into(),
        });
        // 22:30 in Shanghai (UTC+8) is 14:30 UTC: quiet until 08:00 Shanghai = 00:00 UTC next day.
        assert_eq!(
            policy.quiet_until(3, ms("2026-11-25T14:30:00Z")),
            Some(ms("2026-11-26T00:00:00Z"))
        );
        // 07:59:30 Shanghai: quiet for 30 more seconds.
        assert_eq!(
            policy.quiet_until(3, ms("2026-11-25T23:59:30Z")),
            Some(ms("2026-11-26T00:00:00Z"))
        );
        // Noon in Shanghai: not quiet; and alarms have no quiet hours.
        assert_eq!(policy.quiet_until(3, ms("2026-11-25T04:00:00Z")), None);
        assert_eq!(policy.quiet_until(0, ms("2026-11-25T14:30:00Z")), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let mut policy = DispatchPolicy::default();
        policy.classes.notification.backoff_ms = 1_000;
        policy.classes.notification.max_backoff_ms = 5_000;
        let waits: Vec<u64> = (1..=5).map(|a| policy.backoff_ms(1, a)).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 5_000, 5_000]);
    }

    #[test]
    fn class_code_lists_override_the_protocol() {
        let mut policy = DispatchPolicy::default();
        policy.classes.bulk.no_retry_codes = vec![8];
        policy.classes.bulk.retry_codes = vec![13];
        assert!(!policy.retryable(3, 8, true));
        assert!(policy.retryable(3, 13, false));
        assert!(policy.retryable(3, 9, true));
        assert!(
            policy.retryable(1, 8, true),
            "other classes keep the protocol's view"
        );
    }
}
