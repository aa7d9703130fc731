//! `herald replies`: a client system's replies (subscribers' MO messages routed to it), once or
//! followed as they arrive; with `--unrouted` or `--of`, an operator's view through the Admin
//! API.

use futures::StreamExt;
use herald_api::v1::admin_client::AdminClient;
use herald_api::v1::messaging_client::MessagingClient;
use herald_api::v1::{AdminListRepliesRequest, ListRepliesRequest, Reply, SubscribeRepliesRequest};

use crate::cli::connect::ConnectArgs;
use crate::cli::messages::status_error;

#[derive(clap::Args)]
pub struct RepliesArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Only replies with ids above this one (the last id you saw).
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// At most this many (at most 1000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Keep printing new replies as they arrive (Ctrl-C stops).
    #[arg(long, conflicts_with_all = ["unrouted", "of"])]
    follow: bool,
    /// Operators: the replies nobody was routed to.
    #[arg(long, conflicts_with = "of")]
    unrouted: bool,
    /// Operators: the replies of this client.
    #[arg(long)]
    of: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: RepliesArgs) -> anyhow::Result<()> {
    if args.unrouted || args.of.is_some() {
        let response = AdminClient::new(args.connect.admin_channel().await?)
            .list_replies(AdminListRepliesRequest {
                client_id: args.of.clone().unwrap_or_default(),
                unrouted: args.unrouted,
                after_id: args.after,
                limit: args.limit,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        response.replies.iter().for_each(|r| print(r, args.json));
        return Ok(());
    }
    // The key says whose replies these are.
    let mut messaging = MessagingClient::new(args.connect.channel().await?);
    if args.follow {
        let request = tonic::Request::new(SubscribeRepliesRequest {
            after_id: args.after,
        });
        let mut stream = messaging
            .subscribe_replies(request)
            .await
            .map_err(status_error)?
            .into_inner();
        while let Some(reply) = stream.next().await {
            print(&reply.map_err(status_error)?, args.json);
        }
        return Ok(());
    }
    let request = tonic::Request::new(ListRepliesRequest {
        after_id: args.after,
        limit: args.limit,
    });
    let response = messaging
        .list_replies(request)
        .await
        .map_err(status_error)?
        .into_inner();
    response.replies.iter().for_each(|r| print(r, args.json));
    Ok(())
}

fn print(r: &Reply, json: bool) {
    if json {
        let value = serde_json::json!({
            "reply_id": r.reply_id,
            "from": r.from,
            "to": r.to,
            "text": r.text,
            "complete": r.complete,
            "total_parts": r.total_parts,
            "received_parts": r.received_parts,
            "received_at_ms": r.received_at_ms,
            "completed_at_ms": r.completed_at_ms,
            "client_id": r.client_id,
            "routed_by": r.routed_by,
        });
        println!("{value}");
        return;
    }
    let when = chrono::DateTime::from_timestamp_millis(r.completed_at_ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let missing = if r.complete {
        String::new()
    } else {
        format!(
            " (incomplete: {} of {} parts)",
            r.received_parts, r.total_parts
        )
    };
    println!(
        "{}  {when}  from {} to {}{missing}: {}",
        r.reply_id, r.from, r.to, r.text
    );
}
