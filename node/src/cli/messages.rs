//! Client commands: `send`, `status` and `cluster status`, talking to any node's public gRPC API.

use herald_api::v1::cluster_client::ClusterClient;
use herald_api::v1::messaging_client::MessagingClient;
use herald_api::v1::{
    CancelMessageRequest, ClusterStatusRequest, GetMessageRequest, LinkConnection, LinkPlacement,
    MessageState, Priority, SubmitRequest,
};

use crate::cli::connect::ConnectArgs;

#[derive(clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Recipient mobile number; repeatable.
    #[arg(long = "to", required = true)]
    to: Vec<String>,
    /// The message text (long texts go out in several parts).
    #[arg(long)]
    text: String,
    /// alarm, notification, customer-service or bulk.
    #[arg(long, default_value = "notification")]
    priority: String,
    /// A key unique to this message among the client's: sending again with the same key
    /// creates nothing new and prints the first message's id (safe retries).
    #[arg(long, value_name = "KEY", default_value = "")]
    idempotency_key: String,
    /// The sending system's own reference, kept with the message and shown by `status`.
    #[arg(long, value_name = "REF", default_value = "")]
    client_ref: String,
    /// Send through this link, whatever the policy's routes say.
    #[arg(long, value_name = "LINK", default_value = "")]
    link: String,
    /// Send later: an RFC 3339 time (2026-11-25T21:30:00+08:00) or +SECONDS from now.
    #[arg(long)]
    at: Option<String>,
    /// Validity in seconds (0: the class's or the node's default).
    #[arg(long, default_value_t = 0)]
    validity_seconds: u32,
    /// Send through at least two links of the route at once (the first delivery wins).
    #[arg(long)]
    urgent: bool,
}

#[derive(clap::Args)]
pub struct CancelArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The message id `herald send` printed.
    id: String,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The message id `herald send` printed.
    id: String,
    /// Print the message as JSON (every field, the timeline's events as objects).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ClusterStatusArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

pub fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let priority = match args.priority.as_str() {
        "alarm" => Priority::Alarm,
        "notification" => Priority::Notification,
        "customer-service" => Priority::CustomerService,
        "bulk" => Priority::Bulk,
        other => anyhow::bail!(
            "--priority {other:?}: expected alarm, notification, customer-service or bulk"
        ),
    };
    let send_at_ms = match args.at.as_deref() {
        None => 0,
        Some(at) => parse_send_time(at)?,
    };
    let mut client = MessagingClient::new(args.connect.channel().await?);
    let key = args.idempotency_key.clone();
    let request = tonic::Request::new(SubmitRequest {
        recipients: args.to,
        text: args.text,
        priority: priority as i32,
        idempotency_key: args.idempotency_key,
        client_ref: args.client_ref,
        link: args.link,
        validity_seconds: args.validity_seconds,
        send_at_ms,
        urgent: args.urgent,
    });
    let resp = client
        .submit(request)
        .await
        .map_err(status_error)?
        .into_inner();
    // The id alone on stdout, whatever happened: scripts read it.
    println!("{}", resp.message_id);
    if !resp.created {
        // A retry after a lost answer is what keys are for; a key reused by mistake looks the
        // same from here, so say that this call added nothing.
        eprintln!(
            "idempotency key {key:?} matched message {} submitted earlier; nothing new was created",
            resp.message_id
        );
    }
    Ok(())
}

/// `+SECONDS` from now, or an RFC 3339 time.
fn parse_send_time(at: &str) -> anyhow::Result<u64> {
    if let Some(seconds) = at.strip_prefix('+') {
        let seconds: u64 = seconds
            .parse()
            .map_err(|_| anyhow::anyhow!("--at {at:?}: expected +SECONDS or an RFC 3339 time"))?;
        return seconds
            .checked_mul(1000)
            .and_then(|ms| herald_raft::events::now_ms().checked_add(ms))
            .ok_or_else(|| anyhow::anyhow!("--at {at:?}: too far ahead"));
    }
    let time = chrono::DateTime::parse_from_rfc3339(at)
        .map_err(|e| anyhow::anyhow!("--at {at:?}: expected +SECONDS or an RFC 3339 time ({e})"))?;
    // 0 means "at once" on the wire: a time before 1970 must not turn into that.
    u64::try_from(time.timestamp_millis())
        .ok()
        .filter(|ms| *ms > 0)
        .ok_or_else(|| anyhow::anyhow!("--at {at:?}: a time in the past (before 1970)"))
}

pub async fn cancel(args: CancelArgs) -> anyhow::Result<()> {
    let mut client = MessagingClient::new(args.connect.channel().await?);
    let resp = client
        .cancel_message(CancelMessageRequest {
            message_id: args.id.clone(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    println!("message {}: {}", args.id, state_name(resp.state));
    Ok(())
}

pub(crate) fn state_name(state: i32) -> &'static str {
    MessageState::try_from(state)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN")
}

pub(crate) fn time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ms.to_string())
}

pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let mut client = MessagingClient::new(args.connect.channel().await?);
    let m = client
        .get_message(GetMessageRequest {
            message_id: args.id,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        let value = serde_json::json!({
            "message_id": m.message_id,
            "state": state_name(m.state),
            "recipients": m.recipients,
            "text": m.text,
            "link": m.link,
            "route": m.route,
            "not_before_ms": m.not_before_ms,
            "last_code": m.last_code,
            "client_ref": m.client_ref,
            "attempts": m.attempts,
            "last_error": m.last_error,
            "submitted_at_ms": m.submitted_at_ms,
            "segments": m.segments.iter().map(|s| serde_json::json!({
                "recipient": s.recipient, "part": s.part, "carrier_id": s.carrier_id,
                "status": s.status, "report_status": s.report_status,
            })).collect::<Vec<_>>(),
            "timeline": m.timeline.iter().map(|e| serde_json::json!({
                "at_ms": e.at_ms, "kind": e.kind, "detail": e.detail,
            })).collect::<Vec<_>>(),
            "copies": m.copies.iter().map(|c| serde_json::json!({
                "message_id": c.message_id, "link": c.link, "state": state_name(c.state),
                "won": c.won, "duplicate": c.duplicate,
            })).collect::<Vec<_>>(),
            "copy_of": m.copy_of,
            "duplicate_deliveries": m.duplicate_deliveries,
            "dropped_events": m.dropped_events,
            "answered_by": m.answered_by,
            "applied_index": m.applied_index,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("message {}: {}", m.message_id, state_name(m.state));
    println!(
        "  to {} via {}{} (attempts {})",
        m.recipients.join(", "),
        m.link,
        if m.route.is_empty() {
            String::new()
        } else {
            format!(" on route {}", m.route)
        },
        m.attempts
    );
    if m.not_before_ms != 0 {
        println!("  not before {}", time(m.not_before_ms));
    }
    if !m.last_error.is_empty() {
        println!("  last error: {}", m.last_error);
    }
    if !m.copy_of.is_empty() {
        println!("  a fan-out copy of message {}", m.copy_of);
    }
    for c in &m.copies {
        println!(
            "  copy {} via {}: {}{}",
            c.message_id,
            c.link,
            state_name(c.state),
            if c.won {
                " (delivered first)"
            } else if c.duplicate {
                " (duplicate delivery)"
            } else {
                ""
            }
        );
    }
    for (i, e) in m.timeline.iter().enumerate() {
        println!("  {}  {:<17} {}", time(e.at_ms), e.kind, e.detail);
        // The record keeps the submission and the latest events: the gap is after the first.
        if i == 0 && m.dropped_events > 0 {
            println!("  … {} older events not kept", m.dropped_events);
        }
    }
    Ok(())
}

fn connection(l: &LinkPlacement) -> LinkConnection {
    match LinkConnection::try_from(l.connection).unwrap_or(LinkConnection::UnknownHere) {
        // A node older than the field sends only `connected`, true on the holder alone.
        LinkConnection::UnknownHere if l.connected => LinkConnection::Connected,
        known => known,
    }
}

/// Whether the slot is connected, as far as the answering node can know: only the holder does.
fn connection_text(l: &LinkPlacement) -> String {
    match connection(l) {
        LinkConnection::Connected => "connected".into(),
        LinkConnection::NotConnected => "not connected".into(),
        LinkConnection::UnknownHere => format!("connection known only to node {}", l.node),
    }
}

/// A certificate's expiry as RFC 3339 text; None for 0 (no TLS).
fn tls_not_after(ms: u64) -> Option<String> {
    (ms != 0).then(|| {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| ms.to_string())
    })
}

pub async fn cluster_status(args: ClusterStatusArgs) -> anyhow::Result<()> {
    let mut client = ClusterClient::new(args.connect.admin_channel().await?);
    let s = client
        .status(ClusterStatusRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        let value = serde_json::json!({
            "node_id": s.node_id,
            "state": s.state,
            "leader": s.leader,
            "term": s.term,
            "commit_index": s.commit_index,
            "applied_index": s.applied_index,
            "members": s.members.iter().map(|m| serde_json::json!({
                "id": m.id, "grpc": m.grpc_addr, "raft": m.raft_addr, "voter": m.voter,
                // null: the member could not be asked; "older": it predates the report.
                "version": (!m.version.is_empty()).then_some(&m.version),
                "format_level": (m.format_level != 0).then_some(m.format_level),
            })).collect::<Vec<_>>(),
            "cluster_version": s.cluster_version,
            // null: some member could not be asked.
            "finalizable_version": (s.finalizable_version != 0).then_some(s.finalizable_version),
            "links": s.links.iter().map(|l| serde_json::json!({
                "link": l.link, "node": l.node, "epoch": l.epoch,
                // null: the answering node does not hold the slot and cannot know.
                "connected": match connection(l) {
                    LinkConnection::Connected => Some(true),
                    LinkConnection::NotConnected => Some(false),
                    LinkConnection::UnknownHere => None,
                },
                "connection": connection_text(l),
                "down": l.down, "congested": l.congested, "status_reason": l.status_reason,
            })).collect::<Vec<_>>(),
            "drained": s.drained,
            // null: the node runs without TLS.
            "tls_not_after": tls_not_after(s.tls_not_after_ms),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "node {} ({}), leader {}, term {}, commit index {}, applied {}",
        s.node_id,
        s.state,
        if s.leader == 0 {
            "unknown".to_string()
        } else {
            s.leader.to_string()
        },
        s.term,
        s.commit_index,
        s.applied_index
    );
    println!(
        "  cluster version {}{}",
        s.cluster_version,
        match s.finalizable_version {
            0 => " (some member could not be asked for its version)".to_string(),
            v if v > s.cluster_version => format!(
                " (every member applies {v}: `herald cluster finalize` raises it; no rollback after)"
            ),
            _ => String::new(),
        }
    );
    for m in &s.members {
        println!(
            "  member {} grpc {} raft {} version {} format level {}{}",
            m.id,
            m.grpc_addr,
            m.raft_addr,
            if m.version.is_empty() {
                "unknown (not reachable)"
            } else {
                &m.version
            },
            if m.format_level == 0 {
                "?".to_string()
            } else {
                m.format_level.to_string()
            },
            if m.id == s.leader {
                " (leader)"
            } else if !m.voter {
                " (learner: receives the log, does not vote)"
            } else {
                ""
            }
        );
    }
    for l in &s.links {
        println!(
            "  link {} on node {} (epoch {}), {}{}{}",
            l.link,
            l.node,
            l.epoch,
            connection_text(l),
            if l.down {
                format!(" DOWN: {}", l.status_reason)
            } else {
                String::new()
            },
            if l.congested { " congested" } else { "" }
        );
    }
    if !s.drained.is_empty() {
        println!("  drained nodes: {:?}", s.drained);
    }
    match tls_not_after(s.tls_not_after_ms) {
        Some(at) => println!("  TLS certificate of node {} valid until {at}", s.node_id),
        None => println!("  no TLS: node {} is insecure (plaintext)", s.node_id),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_send_time;

    #[test]
    fn a_send_time_before_1970_is_refused_not_sent_at_once() {
        let err = parse_send_time("1969-12-31T23:59:59Z").unwrap_err();
        assert!(err.to_string().contains("before 1970"), "{err}");
        assert!(parse_send_time("2030-01-01T00:00:00Z").unwrap() > 0);
        assert!(parse_send_time("+60").unwrap() > 0);
    }
}
