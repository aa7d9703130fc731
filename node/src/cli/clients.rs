//! `herald client …` and `herald audit`: client systems and their API keys, and the audit
//! trail, through the Admin API. `client create` and `client rotate-key` print the new key alone
//! on stdout (scripts capture it) and what it is on stderr; the key is shown this once.

use herald_api::v1::admin_client::AdminClient;
use herald_api::v1::{
    ClientInfo, CreateClientRequest, DeleteClientRequest, GetClientRequest, ListAuditRequest,
    ListClientsRequest, RevokeKeyRequest, RotateKeyRequest,
};

use crate::cli::connect::ConnectArgs;
use crate::cli::messages::{status_error, time};

#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Registers a client system with a role; prints its first API key (shown once).
    Create(CreateArgs),
    /// Every client system, its role and key ids.
    List(ListArgs),
    /// One client system: its role and keys (ids only).
    Show(NameArgs),
    /// Adds a second key to a client (prints it, shown once); revoke the old one afterwards.
    RotateKey(NameArgs),
    /// Revokes one of a client's keys: calls with it are refused from then on, on every node.
    RevokeKey(RevokeArgs),
    /// Removes a client and all its keys (its messages and replies stay).
    Delete(NameArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The client's name: 1 to 64 of a-z 0-9 . _ - (its messages, quotas and replies go by it).
    name: String,
    /// admin, operator, sender or viewer.
    #[arg(long)]
    role: String,
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct NameArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The client's name.
    name: String,
}

#[derive(clap::Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The client's name.
    name: String,
    /// The key's id (the 12 hex characters after hrd_; `herald client show` lists them).
    key_id: String,
}

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Only this principal's changes (a client name, or bootstrap-admin).
    #[arg(long, value_name = "P")]
    principal: Option<String>,
    /// Only changes at or after this time: RFC 3339, or -SECONDS (that long ago).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    since: Option<String>,
    /// At most this many (at most 1000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub async fn client(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create(args) => {
            let key = AdminClient::new(args.connect.admin_channel().await?)
                .create_client(CreateClientRequest {
                    name: args.name.clone(),
                    role: args.role.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            eprintln!(
                "client {} created with role {}; its key {} follows (shown once, store it now)",
                key.client, args.role, key.key_id
            );
            println!("{}", key.key);
        }
        ClientCommand::List(args) => {
            let clients = AdminClient::new(args.connect.admin_channel().await?)
                .list_clients(ListClientsRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .clients;
            for c in &clients {
                print_client(c, args.json);
            }
        }
        ClientCommand::Show(args) => {
            let c = AdminClient::new(args.connect.admin_channel().await?)
                .get_client(GetClientRequest { name: args.name })
                .await
                .map_err(status_error)?
                .into_inner();
            print_client(&c, false);
            for k in &c.keys {
                let state = if k.revoked_at_ms == 0 {
                    "live".to_string()
                } else {
                    format!("revoked {}", time(k.revoked_at_ms))
                };
                println!("  key {}  added {}  {state}", k.key_id, time(k.added_at_ms));
            }
        }
        ClientCommand::RotateKey(args) => {
            let key = AdminClient::new(args.connect.admin_channel().await?)
                .rotate_key(RotateKeyRequest {
                    name: args.name.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            eprintln!(
                "client {} has a new key {} (shown once); revoke the old one once it is replaced",
                key.client, key.key_id
            );
            println!("{}", key.key);
        }
        ClientCommand::RevokeKey(args) => {
            AdminClient::new(args.connect.admin_channel().await?)
                .revoke_key(RevokeKeyRequest {
                    name: args.name.clone(),
                    key_id: args.key_id.clone(),
                })
                .await
                .map_err(status_error)?;
            println!("client {}: key {} revoked", args.name, args.key_id);
        }
        ClientCommand::Delete(args) => {
            AdminClient::new(args.connect.admin_channel().await?)
                .delete_client(DeleteClientRequest {
                    name: args.name.clone(),
                })
                .await
                .map_err(status_error)?;
            println!("client {} deleted", args.name);
        }
    }
    Ok(())
}

fn print_client(c: &ClientInfo, json: bool) {
    let live: Vec<&str> = c
        .keys
        .iter()
        .filter(|k| k.revoked_at_ms == 0)
        .map(|k| k.key_id.as_str())
        .collect();
    if json {
        let keys: Vec<_> = c
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "key_id": k.key_id,
                    "added_at_ms": k.added_at_ms,
                    "revoked_at_ms": k.revoked_at_ms,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "name": c.name, "role": c.role, "created_at_ms": c.created_at_ms, "keys": keys,
            })
        );
    } else {
        println!(
            "{}  role {}  created {}  live keys {}",
            c.name,
            c.role,
            time(c.created_at_ms),
            if live.is_empty() {
                "none".to_string()
            } else {
                live.join(", ")
            }
        );
    }
}

fn parse_since(since: &str) -> anyhow::Result<u64> {
    if let Some(seconds) = since.strip_prefix('-') {
        let seconds: u64 = seconds.parse().map_err(|_| {
            anyhow::anyhow!("--since {since:?}: expected -SECONDS or an RFC 3339 time")
        })?;
        return Ok(herald_raft::events::now_ms().saturating_sub(seconds.saturating_mul(1000)));
    }
    let t = chrono::DateTime::parse_from_rfc3339(since).map_err(|e| {
        anyhow::anyhow!("--since {since:?}: expected -SECONDS or an RFC 3339 time ({e})")
    })?;
    Ok(u64::try_from(t.timestamp_millis()).unwrap_or(0))
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let since_ms = args.since.as_deref().map(parse_since).transpose()?;
    let entries = AdminClient::new(args.connect.admin_channel().await?)
        .list_audit(ListAuditRequest {
            principal: args.principal.unwrap_or_default(),
            since_ms: since_ms.unwrap_or(0),
            after_seq: 0,
            limit: args.limit,
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .entries;
    for e in entries {
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "seq": e.seq, "at_ms": e.at_ms, "principal": e.principal,
                    "key_id": e.key_id, "principal_kind": e.principal_kind,
                    "action": e.action, "detail": e.detail,
                })
            );
        } else {
            let key = if e.key_id.is_empty() {
                String::new()
            } else {
                format!(" (key {})", e.key_id)
            };
            let who = if e.principal.is_empty() {
                "-"
            } else {
                &e.principal
            };
            println!(
                "{}  {}  {who}{key}  {}  {}",
                e.seq,
                time(e.at_ms),
                e.action,
                e.detail
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_is_a_time_or_seconds_ago() {
        assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap(), 1000);
        let ago = parse_since("-60").unwrap();
        let now = herald_raft::events::now_ms();
        assert!(ago <= now - 60_000 && ago > now - 70_000);
        let e = parse_since("yesterday").unwrap_err().to_string();
        assert!(e.starts_with("--since \"yesterday\""), "{e}");
    }
}
