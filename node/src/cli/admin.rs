//! Operators' commands on the Admin API: `herald policy show|set` and `herald cluster drain`.

use herald_api::v1::admin_client::AdminClient;
use herald_api::v1::cluster_client::ClusterClient;
use herald_api::v1::{
    ClusterStatusRequest, DrainNodeRequest, FinalizeUpgradeRequest, GetPolicyRequest,
    SetPolicyRequest,
};

use crate::cli::connect::ConnectArgs;
use crate::cli::messages::status_error;

#[derive(clap::Args)]
pub struct PolicyShowArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print the policy as JSON instead of TOML.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct PolicySetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The policy file (TOML, or JSON); `-` reads standard input.
    file: String,
    /// The version this change is based on; by default the current one (last writer wins).
    #[arg(long)]
    expected_version: Option<u64>,
}

#[derive(clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The node to drain.
    node: u64,
    /// Undrain instead: the node takes links again.
    #[arg(long)]
    undo: bool,
    /// Drain even when no other undrained live node could hold the carrier links (refused
    /// otherwise): the links are then held by nobody and messages wait in their queues until a
    /// node is undrained. A forced drain does not wait for the hand-over.
    #[arg(long, conflicts_with = "undo")]
    force: bool,
    /// Return once the drain is recorded, without waiting for the node to hand over leadership
    /// and its link slots.
    #[arg(long, conflicts_with = "undo")]
    no_wait: bool,
    /// How long to wait for the node to hold neither leadership nor a link slot, in seconds;
    /// the command fails (the drain stays recorded) when that takes longer.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    wait_timeout: u64,
}

#[derive(clap::Args)]
pub struct FinalizeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

pub async fn policy_show(args: PolicyShowArgs) -> anyhow::Result<()> {
    let mut client = AdminClient::new(args.connect.admin_channel().await?);
    let p = client
        .get_policy(GetPolicyRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        println!("{}", p.json);
    } else {
        println!("# policy version {} (set by {:?})", p.version, p.changed_by);
        print!("{}", p.toml);
    }
    Ok(())
}

pub async fn policy_set(args: PolicySetArgs) -> anyhow::Result<()> {
    let document = if args.file == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", args.file))?
    };
    let mut client = AdminClient::new(args.connect.admin_channel().await?);
    let expected_version = match args.expected_version {
        Some(v) => v,
        None => {
            client
                .get_policy(GetPolicyRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .version
        }
    };
    // Who changed the policy is the caller of the key, as the log records it.
    let request = tonic::Request::new(SetPolicyRequest {
        document,
        expected_version,
    });
    let resp = client
        .set_policy(request)
        .await
        .map_err(status_error)?
        .into_inner();
    println!("policy version {}", resp.version);
    Ok(())
}

pub async fn drain(args: DrainArgs) -> anyhow::Result<()> {
    let channel = args.connect.admin_channel().await?;
    let mut client = AdminClient::new(channel.clone());
    let resp = client
        .drain_node(DrainNodeRequest {
            node: args.node,
            drained: !args.undo,
            force: args.force,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if args.force && !args.undo && !args.no_wait {
        // A forced drain may leave no undrained node to take leadership or the links over:
        // waiting for the hand-over could then never end.
        eprintln!("not waiting for the hand-over: a forced drain may leave nobody to take it");
    } else if !args.undo && !args.no_wait {
        wait_until_handed_over(ClusterClient::new(channel), args.node, args.wait_timeout).await?;
    }
    println!("drained nodes: {:?}", resp.drained);
    Ok(())
}

/// Polls the cluster's status until `node` is neither the leader nor the holder of a link slot,
/// saying on stderr what is left each time it changes.
async fn wait_until_handed_over(
    mut client: ClusterClient<crate::cli::connect::ClientChannel>,
    node: u64,
    timeout_secs: u64,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_secs);
    let mut last = String::new();
    loop {
        let left = match client.status(ClusterStatusRequest {}).await {
            Ok(s) => {
                let s = s.into_inner();
                let slots: Vec<&str> = s
                    .links
                    .iter()
                    .filter(|l| l.node == node)
                    .map(|l| l.link.as_str())
                    .collect();
                match (s.leader, slots.is_empty()) {
                    (0, _) => "no leader known yet".to_string(),
                    (leader, true) if leader != node => {
                        eprintln!("node {node} holds neither leadership nor a link slot (leader: node {leader})");
                        return Ok(());
                    }
                    (leader, _) => {
                        let mut parts = Vec::new();
                        if leader == node {
                            parts.push("leadership".to_string());
                        }
                        if !slots.is_empty() {
                            parts.push(format!("link slots {}", slots.join(", ")));
                        }
                        format!("node {node} still holds {}", parts.join(" and "))
                    }
                }
            }
            Err(e) => format!("status unavailable: {}", e.message()),
        };
        if left != last {
            eprintln!("waiting: {left}");
            last = left.clone();
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "node {node} was drained, but after --wait-timeout {timeout_secs} s {left}"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub async fn finalize(args: FinalizeArgs) -> anyhow::Result<()> {
    let mut client = AdminClient::new(args.connect.admin_channel().await?);
    let resp = client
        .finalize_upgrade(FinalizeUpgradeRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if resp.cluster_version > resp.previous_version {
        println!(
            "cluster version raised from {} to {}",
            resp.previous_version, resp.cluster_version
        );
    } else {
        println!(
            "cluster version {}: already the newest every member applies",
            resp.cluster_version
        );
    }
    Ok(())
}
