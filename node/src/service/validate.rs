//! Checks a submission before anything is proposed: bad input gets
//! [`ServiceError::InvalidArgument`] naming the field and the rule, and nothing is written.

use herald_raft::events::RecipientsRoute;

use super::error::ServiceError;
use super::submit::{Priority, Submission};
use crate::config::NodeConfig;
use crate::policy::routing;
use crate::policy::DispatchPolicy;

/// A submission that passed every check, normalised and routed.
pub struct ValidSubmission {
    pub recipients: Vec<String>,
    pub text: String,
    /// 0 = alarm … 3 = bulk.
    pub priority: u32,
    /// The route whose links carry it; empty when the client named a link or no route matched.
    pub route: String,
    /// The named link, the route's primary, or the link chosen without a route.
    pub link: String,
    pub validity_seconds: u64,
    /// Not before this time (0: at once), and why.
    pub send_at_ms: u64,
    pub deferred_because: String,
    /// An urgent message's links, one copy each (empty: sent through one link at a time).
    pub fan_out_links: Vec<String>,
    /// Recipients on different routes: one copy per route (empty: they all share one).
    pub split: Vec<RecipientsRoute>,
}

/// The longest a send may be scheduled ahead.
const MAX_SCHEDULE_AHEAD_MS: u64 = 366 * 24 * 3600 * 1000;

/// How far in the past a send time may lie and still mean "now": a client's clock a little
/// behind the node's must not turn an immediate send into an error.
pub const SEND_TIME_SKEW_MS: u64 = 60_000;

fn invalid(field: &str, rule: impl std::fmt::Display) -> ServiceError {
    ServiceError::invalid(field, rule)
}

/// Each number once per message: a number given twice (in whatever spelling) would receive
/// the message twice. `normalised[i]` is `raw[i]` as the carrier gets it.
pub fn check_distinct_recipients(
    raw: &[String],
    normalised: &[String],
) -> Result<(), ServiceError> {
    let mut first_at = std::collections::HashMap::with_capacity(normalised.len());
    for (i, number) in normalised.iter().enumerate() {
        if let Some(first) = first_at.insert(number.as_str(), i) {
            return Err(invalid(
                &format!("recipients[{i}]"),
                format!(
                    "{:?} is the same number as recipients[{first}] ({:?}); each recipient may \
                     appear once",
                    raw.get(i).map_or(number.as_str(), String::as_str),
                    raw.get(first).map_or(number.as_str(), String::as_str),
                ),
            ));
        }
    }
    Ok(())
}

/// A validity the client asked for (0: none) must not exceed `cap_seconds`, the longest the
/// policy allows any class.
pub fn check_validity(validity_seconds: u64, cap_seconds: u64) -> Result<(), ServiceError> {
    if validity_seconds > cap_seconds {
        return Err(invalid(
            "validity_seconds",
            format!(
                "{validity_seconds} is above the cap of {cap_seconds} seconds ({} days); \
                 0 takes the class's default",
                cap_seconds / 86_400
            ),
        ));
    }
    Ok(())
}

/// When a message asking for `send_at_ms` (0: at once) may be sent, seen at `now_ms`: 0 for at
/// once — also for a time at most [`SEND_TIME_SKEW_MS`] past, a clock-skew allowance; a time
/// further past is refused rather than sent at once, since the client meant another moment.
pub fn send_time(send_at_ms: u64, now_ms: u64) -> Result<u64, ServiceError> {
    if send_at_ms == 0 {
        return Ok(0);
    }
    if send_at_ms.saturating_add(SEND_TIME_SKEW_MS) < now_ms {
        return Err(invalid(
            "send_at_ms",
            format!(
                "{send_at_ms} is {} s in the past (the cluster's clock reads {now_ms}); a send time \
                 may be at most {} s earlier than now, for clock skew, or 0 to send at once",
                (now_ms - send_at_ms) / 1000,
                SEND_TIME_SKEW_MS / 1000
            ),
        ));
    }
    if send_at_ms > now_ms.saturating_add(MAX_SCHEDULE_AHEAD_MS) {
        return Err(invalid(
            "send_at_ms",
            format!(
                "{send_at_ms} is more than a year ahead; at most one year ahead (milliseconds \
                 since the Unix epoch)"
            ),
        ));
    }
    Ok(if send_at_ms > now_ms { send_at_ms } else { 0 })
}

/// Accepts 11-digit Chinese mobile numbers (1[3-9]…, optionally prefixed +86 or 86) and E.164
/// numbers (+ then 7 to 15 digits). Returns the number as the carrier expects it.
pub fn normalise_mobile(raw: &str) -> Option<String> {
    let s = raw.trim();
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let chinese = |t: &str| {
        t.len() == 11
            && all_digits(t)
            && t.as_bytes()[0] == b'1'
            && (b'3'..=b'9').contains(&t.as_bytes()[1])
    };
    if let Some(rest) = s
        .strip_prefix("+86")
        .or_else(|| s.strip_prefix("86").filter(|r| r.len() == 11))
    {
        return chinese(rest).then(|| rest.to_string());
    }
    if chinese(s) {
        return Some(s.to_string());
    }
    if let Some(rest) = s.strip_prefix('+') {
        if (7..=15).contains(&rest.len()) && all_digits(rest) && !rest.starts_with('0') {
            return Some(s.to_string());
        }
    }
    None
}

/// Without a link named, messages are spread over every configured link by recipient (the same
/// number always takes the same link, which keeps one recipient's messages in order). Routing by
/// carrier and number segment replaces this.
fn default_link(config: &NodeConfig, recipient: &str) -> Option<String> {
    if config.links.is_empty() {
        return None;
    }
    // FNV-1a: stable across versions and nodes, unlike the standard library's hasher.
    let hash = recipient.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Some(
        config.links[(hash % config.links.len() as u64) as usize]
            .name
            .clone(),
    )
}

/// The text limit counts the signature the recipient will receive with the text, whoever adds
/// it (`max-text-chars` is "the signature included"): with the longest signature among the links
/// that may carry the message, the text must still fit.
fn check_length_with_signature(
    chars: usize,
    max_chars: usize,
    config: &NodeConfig,
    links: &[&str],
) -> Result<(), ServiceError> {
    let longest = links
        .iter()
        .filter_map(|name| Some((*name, config.link(name)?.signature()?)))
        .max_by_key(|(_, signature)| signature.chars());
    let Some((name, signature)) = longest else {
        return Ok(());
    };
    if chars + signature.chars() > max_chars {
        return Err(invalid(
            "text",
            format!(
                "at most {max_chars} characters with the signature {:?} of link {name:?} \
                 ({} characters), so at most {} for the text; got {chars}",
                signature.text(),
                signature.chars(),
                max_chars.saturating_sub(signature.chars()),
            ),
        ));
    }
    Ok(())
}

/// Checks `req` and decides its route, validity and send time under `policy`.
pub fn submission(
    req: &Submission,
    config: &NodeConfig,
    policy: &DispatchPolicy,
    client: &str,
    now_ms: u64,
) -> Result<ValidSubmission, ServiceError> {
    let limits = &config.messages;
    if req.recipients.is_empty() {
        return Err(invalid("recipients", "at least one recipient is required"));
    }
    if req.recipients.len() > limits.max_recipients {
        return Err(invalid(
            "recipients",
            format!(
                "at most {} recipients per message, got {}",
                limits.max_recipients,
                req.recipients.len()
            ),
        ));
    }
    let mut recipients = Vec::with_capacity(req.recipients.len());
    for (i, raw) in req.recipients.iter().enumerate() {
        let number = normalise_mobile(raw).ok_or_else(|| {
            invalid(
                &format!("recipients[{i}]"),
                format!("{raw:?} is not a mobile number (11-digit Chinese mobile number, or + and 7-15 digits)"),
            )
        })?;
        recipients.push(number);
    }
    check_distinct_recipients(&req.recipients, &recipients)?;
    if req.text.trim().is_empty() {
        return Err(invalid("text", "must not be empty"));
    }
    let chars = req.text.chars().count();
    if chars > limits.max_text_chars {
        return Err(invalid(
            "text",
            format!("at most {} characters, got {chars}", limits.max_text_chars),
        ));
    }
    if req.text.contains('\0') {
        return Err(invalid("text", "must not contain NUL characters"));
    }
    let priority = match &req.priority {
        Priority::Alarm => 0,
        Priority::Notification | Priority::Unspecified => 1,
        Priority::CustomerService => 2,
        Priority::Bulk => 3,
        Priority::Unknown(given) => {
            return Err(invalid("priority", format!("unknown priority {given}")))
        }
    };
    let routed = req
        .link
        .is_empty()
        .then(|| routing::route_for(policy, &recipients[0], client, priority))
        .flatten();
    let split = if req.link.is_empty() {
        split_by_route(policy, config, &recipients, client, priority)
    } else {
        Vec::new()
    };
    let fan_out_links = match routed.filter(|_| split.is_empty()) {
        Some(route) => {
            let links = route.fan_out(policy.classes.of(priority), req.urgent);
            if links > 1 {
                route.links[..links].to_vec()
            } else {
                Vec::new()
            }
        }
        None => Vec::new(),
    };
    // Any link of the route (of every route, for a split message) may carry it, so the longest
    // signature among them counts.
    let carriers: Vec<&str> = if split.is_empty() {
        match routed {
            Some(route) => route.links.iter().map(String::as_str).collect(),
            None => Vec::new(),
        }
    } else {
        split
            .iter()
            .flat_map(
                |part| match policy.routes.iter().find(|r| r.name == part.route) {
                    Some(route) => route.links.iter().map(String::as_str).collect(),
                    None => vec![part.link.as_str()],
                },
            )
            .collect()
    };
    let (route, link) = if let Some(route) = routed {
        (route.name.clone(), route.links[0].clone())
    } else if req.link.is_empty() {
        let link = default_link(config, &recipients[0]).ok_or_else(|| {
            ServiceError::FailedPrecondition("no carrier link is configured on this cluster".into())
        })?;
        (String::new(), link)
    } else if config.link(&req.link).is_some() {
        (String::new(), req.link.clone())
    } else {
        return Err(invalid(
            "link",
            format!(
                "unknown link {:?} (configured: {})",
                req.link,
                config
                    .links
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let links = if carriers.is_empty() {
        vec![link.as_str()]
    } else {
        carriers
    };
    check_length_with_signature(chars, limits.max_text_chars, config, &links)?;
    if req.idempotency_key.len() > 128 {
        return Err(invalid("idempotency_key", "at most 128 bytes"));
    }
    if req.client_ref.len() > 128 {
        return Err(invalid("client_ref", "at most 128 bytes"));
    }
    let class = policy.classes.of(priority);
    check_validity(
        u64::from(req.validity_seconds),
        crate::policy::MAX_VALIDITY_SECONDS,
    )?;
    let validity_seconds = match (req.validity_seconds, class.validity_seconds) {
        (0, 0) => limits.default_validity_seconds,
        (0, class_default) => class_default,
        (given, _) => u64::from(given),
    };
    let mut send_at_ms = send_time(req.send_at_ms, now_ms)?;
    let mut deferred_because = if send_at_ms > 0 {
        "scheduled".to_string()
    } else {
        String::new()
    };
    if let Some(end) = policy.quiet_until(priority, send_at_ms.max(now_ms)) {
        send_at_ms = end;
        deferred_because = format!(
            "quiet hours of {}",
            crate::policy::CLASS_NAMES[priority as usize]
        );
    }
    Ok(ValidSubmission {
        recipients,
        text: req.text.clone(),
        priority,
        route,
        link,
        validity_seconds,
        send_at_ms,
        deferred_because,
        fan_out_links,
        split,
    })
}

/// The recipients grouped by the route each one's number takes, in order of first appearance —
/// only when they take more than one (a message to numbers of two carriers). Recipients no route
/// matches share the default link of the first of them.
fn split_by_route(
    policy: &DispatchPolicy,
    config: &NodeConfig,
    recipients: &[String],
    client: &str,
    priority: u32,
) -> Vec<RecipientsRoute> {
    let mut parts: Vec<RecipientsRoute> = Vec::new();
    for number in recipients {
        let (route, link) = match routing::route_for(policy, number, client, priority) {
            Some(route) => (route.name.clone(), route.links[0].clone()),
            None => match parts.iter().find(|p| p.route.is_empty()) {
                Some(unrouted) => (String::new(), unrouted.link.clone()),
                None => (
                    String::new(),
                    default_link(config, number).unwrap_or_default(),
                ),
            },
        };
        match parts.iter_mut().find(|p| p.route == route) {
            Some(part) => part.recipients.push(number.clone()),
            None => parts.push(RecipientsRoute {
                route,
                link,
                recipients: vec![number.clone()],
            }),
        }
    }
    if parts.len() > 1 {
        parts
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_numbers() {
        for (raw, want) in [
            ("13800138000", Some("13800138000")),
            ("+8613800138000", Some("13800138000")),
            ("8613800138000", Some("13800138000")),
            ("+447911123456", Some("+447911123456")),
            ("12800138000", None),
            ("1380013800", None),
            ("138001380001", None),
            ("abc", None),
            ("", None),
            ("+0123456789", None),
        ] {
            assert_eq!(normalise_mobile(raw).as_deref(), want, "{raw}");
        }
    }

    /// One node, one CMPP link whose carrier adds the six-character 【国家电网】, and texts of at
    /// most 70 characters, the signature included.
    fn signed_config(extra_options: &str) -> NodeConfig {
        let config: NodeConfig = toml::from_str(&format!(
            r#"
            node-id = 1
            grpc-listen = "127.0.0.1:1"
            raft-listen = "127.0.0.1:2"
            data-dir = "/nonexistent"
            insecure = true
            peers = [{{ id = 1, grpc = "127.0.0.1:1", raft = "127.0.0.1:2" }}]
            messages = {{ max-text-chars = 70 }}
            [[links]]
            name = "mobile"
            protocol = "cmpp"
            address = "127.0.0.1:7890"
            account = "901234"
            secret = "s"
            options = {{ signature = "【国家电网】", signature-added-by = "carrier", signature-position = "prefix"{extra_options} }}
            "#
        ))
        .expect("config parses");
        config
    }

    fn submit(text: &str) -> Submission {
        Submission {
            recipients: vec!["13800138000".into()],
            text: text.into(),
            ..Submission::default()
        }
    }

    #[test]
    fn a_number_given_twice_is_refused_naming_both_places() {
        let raw: Vec<String> = [
            "13800138000",
            "+447911123456",
            "13900139000",
            "+8613800138000",
        ]
        .map(String::from)
        .to_vec();
        let normalised: Vec<String> = raw
            .iter()
            .map(|r| normalise_mobile(r).expect("valid"))
            .collect();
        let err = check_distinct_recipients(&raw, &normalised).unwrap_err();
        assert_eq!(
            err.to_string(),
            "recipients[3]: \"+8613800138000\" is the same number as recipients[0] \
             (\"13800138000\"); each recipient may appear once"
        );
        assert!(check_distinct_recipients(&raw[..3], &normalised[..3]).is_ok());
        // Through the whole check, as a client meets it.
        let config = signed_config("");
        let req = Submission {
            recipients: vec!["13800138000".into(), "8613800138000".into()],
            ..submit("hi")
        };
        let Err(status) = submission(&req, &config, &DispatchPolicy::default(), "c", 0) else {
            panic!("a duplicate recipient was accepted");
        };
        assert!(matches!(status, ServiceError::InvalidArgument { .. }));
        assert!(
            status.to_string().starts_with(
                "recipients[1]: \"8613800138000\" is the same number as recipients[0]"
            ),
            "{status}"
        );
    }

    #[test]
    fn a_validity_above_the_cap_is_refused_naming_the_cap() {
        let cap = crate::policy::MAX_VALIDITY_SECONDS;
        assert!(check_validity(0, cap).is_ok());
        assert!(check_validity(cap, cap).is_ok());
        assert_eq!(
            check_validity(4_294_967_295, cap).unwrap_err().to_string(),
            "validity_seconds: 4294967295 is above the cap of 31622400 seconds (366 days); \
             0 takes the class's default"
        );
        let config = signed_config("");
        let req = Submission {
            validity_seconds: u32::MAX,
            ..submit("hi")
        };
        let Err(status) = submission(&req, &config, &DispatchPolicy::default(), "c", 0) else {
            panic!("a validity of u32::MAX seconds was accepted");
        };
        assert!(status
            .to_string()
            .starts_with("validity_seconds: 4294967295 is above the cap"));
    }

    #[test]
    fn a_send_time_in_the_past_is_refused_beyond_the_clock_skew_allowance() {
        let now = 1_800_000_000_000;
        assert_eq!(send_time(0, now), Ok(0), "0 is at once");
        assert_eq!(
            send_time(now - SEND_TIME_SKEW_MS, now),
            Ok(0),
            "within the allowance: now"
        );
        assert_eq!(send_time(now, now), Ok(0));
        assert_eq!(send_time(now + 5_000, now), Ok(now + 5_000));
        assert_eq!(
            send_time(now - 125_000, now).unwrap_err().to_string(),
            "send_at_ms: 1799999875000 is 125 s in the past (the cluster's clock reads \
             1800000000000); a send time may be at most 60 s earlier than now, for clock skew, \
             or 0 to send at once"
        );
        assert!(send_time(now + MAX_SCHEDULE_AHEAD_MS + 1, now)
            .unwrap_err()
            .to_string()
            .contains("more than a year ahead"));
        let config = signed_config("");
        let req = Submission {
            send_at_ms: now - 3_600_000,
            ..submit("hi")
        };
        let Err(status) = submission(&req, &config, &DispatchPolicy::default(), "c", now) else {
            panic!("a send time an hour past was accepted");
        };
        assert!(status.to_string().starts_with("send_at_ms: "), "{status}");
        let req = Submission {
            send_at_ms: now - 30_000,
            ..submit("hi")
        };
        let valid = submission(&req, &config, &DispatchPolicy::default(), "c", now)
            .expect("30 s past is within the allowance");
        assert_eq!(valid.send_at_ms, 0, "sent at once");
    }

    #[test]
    fn the_signature_counts_toward_the_text_limit() {
        let config = signed_config("");
        config.validate().expect("valid config");
        let policy = DispatchPolicy::default();
        assert!(submission(&submit(&"电".repeat(64)), &config, &policy, "c", 0).is_ok());
        let Err(error) = submission(&submit(&"电".repeat(65)), &config, &policy, "c", 0) else {
            panic!("65 characters + a 6-character signature exceed 70");
        };
        assert!(matches!(error, ServiceError::InvalidArgument { .. }));
        assert_eq!(
            error.to_string(),
            "text: at most 70 characters with the signature \"【国家电网】\" of link \"mobile\" \
             (6 characters), so at most 64 for the text; got 65"
        );
    }

    #[test]
    fn an_unknown_priority_is_refused_naming_the_value() {
        let config = signed_config("");
        let req = Submission {
            priority: Priority::Unknown("42".into()),
            ..submit("hi")
        };
        let Err(error) = submission(&req, &config, &DispatchPolicy::default(), "c", 0) else {
            panic!("priority 42 accepted");
        };
        assert_eq!(error.to_string(), "priority: unknown priority 42");
    }

    #[test]
    fn a_bad_signature_option_is_refused_with_the_link_and_the_rule() {
        let mut config = signed_config("");
        config.links[0].options.remove("signature-added-by");
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("links.mobile.options: option signature-added-by is required"),
            "{err}"
        );
        let mut config = signed_config("");
        config.messages.max_text_chars = 6;
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("leaving no text within messages.max-text-chars = 6"),
            "{err}"
        );
    }
}
