//! `herald trace ID`: the protocol trace of one message, one line per PDU exchanged with a carrier
//! or decision taken about it, ending with the message's state and why it is there.

use herald_api::v1::messaging_client::MessagingClient;
use herald_api::v1::{GetTraceRequest, GetTraceResponse, TraceLine};

use crate::cli::connect::ConnectArgs;
use crate::cli::messages::{state_name, status_error, time};

#[derive(clap::Args)]
pub struct TraceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The message id `herald send` printed.
    id: String,
    /// Print the trace as JSON (its lines as objects).
    #[arg(long)]
    json: bool,
}

pub async fn trace(args: TraceArgs) -> anyhow::Result<()> {
    let mut client = MessagingClient::new(args.connect.channel().await?);
    let trace = client
        .get_trace(GetTraceRequest {
            message_id: args.id,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&as_json(&trace))?);
    } else {
        print!("{}", render(&trace));
    }
    Ok(())
}

/// One line: time, link (slot), node, direction, command, sequence, segment, status, meaning.
fn render_line(l: &TraceLine) -> String {
    let arrow = match l.direction.as_str() {
        "out" => "->",
        "in" => "<-",
        _ => "  ",
    };
    let mut out = format!(
        "  {}  {:<12} {:<7} {arrow} {:<18}",
        time(l.at_ms),
        l.link,
        if l.node == 0 {
            String::new()
        } else {
            format!("node {}", l.node)
        },
        l.command,
    );
    if l.sequence != 0 {
        out.push_str(&format!(" seq {}", l.sequence));
    }
    if l.segment != 0 {
        out.push_str(&format!(" seg {}", l.segment));
    }
    if !l.status.is_empty() {
        out.push_str(&format!(" status {}", l.status));
    }
    if !l.meaning.is_empty() {
        out.push_str(&format!("  {}", l.meaning));
    }
    if !l.carrier_id.is_empty() {
        out.push_str(&format!("  carrier id {}", l.carrier_id));
    }
    out.trim_end().to_string()
}

/// The whole trace as printed.
pub fn render(t: &GetTraceResponse) -> String {
    let mut out = format!(
        "message {}: {} (answered by node {})\n",
        t.message_id,
        state_name(t.state),
        t.answered_by
    );
    for (i, line) in t.lines.iter().enumerate() {
        out.push_str(&render_line(line));
        out.push('\n');
        if i == 0 && t.dropped_events > 0 {
            out.push_str(&format!("  … {} older events not kept\n", t.dropped_events));
        }
    }
    out.push_str(&format!("{}: {}", state_name(t.state), t.reason));
    if t.last_code != 0 {
        out.push_str(&format!(" (last code {})", t.last_code));
    }
    out.push('\n');
    out
}

fn as_json(t: &GetTraceResponse) -> serde_json::Value {
    serde_json::json!({
        "message_id": t.message_id,
        "state": state_name(t.state),
        "reason": t.reason,
        "attempts": t.attempts,
        "last_code": t.last_code,
        "expires_at_ms": t.expires_at_ms,
        "dropped_events": t.dropped_events,
        "answered_by": t.answered_by,
        "lines": t.lines.iter().map(|l| serde_json::json!({
            "at_ms": l.at_ms, "link": l.link, "node": l.node, "direction": l.direction,
            "command": l.command, "sequence": l.sequence, "segment": l.segment,
            "status": l.status, "meaning": l.meaning, "carrier_id": l.carrier_id,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_api::v1::MessageState;

    fn line(direction: &str, command: &str, sequence: u32, status: &str) -> TraceLine {
        TraceLine {
            at_ms: 1_764_064_800_000,
            link: "cmpp-a".into(),
            node: 2,
            direction: direction.into(),
            command: command.into(),
            sequence,
            segment: 1,
            status: status.into(),
            meaning: if status.is_empty() {
                String::new()
            } else {
                "refused: destination barred (permanent)".into()
            },
            carrier_id: String::new(),
        }
    }

    #[test]
    fn prints_one_line_per_pdu_and_ends_with_the_reason() {
        let t = GetTraceResponse {
            message_id: "7".into(),
            state: MessageState::Failed as i32,
            lines: vec![
                line("out", "CMPP_SUBMIT", 41, ""),
                line("in", "CMPP_SUBMIT_RESP", 41, "13"),
            ],
            reason: "the carrier refused it with code 13".into(),
            last_code: 13,
            answered_by: 3,
            ..Default::default()
        };
        let text = render(&t);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "message 7: FAILED (answered by node 3)");
        assert!(
            lines[1].ends_with("cmpp-a       node 2  -> CMPP_SUBMIT        seq 41 seg 1"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("<- CMPP_SUBMIT_RESP   seq 41 seg 1 status 13  refused"),
            "{}",
            lines[2]
        );
        assert_eq!(
            lines[3],
            "FAILED: the carrier refused it with code 13 (last code 13)"
        );
    }
}
