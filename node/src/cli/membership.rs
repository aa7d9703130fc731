//! `herald cluster add-node | remove-node`: the Admin calls that change the Raft membership,
//! made on the leader (found through `Cluster.Status` on `--endpoint`), with the addition's
//! progress printed as it comes. The rules live in `service/membership.rs`.

use herald_api::v1::admin_client::AdminClient;
use herald_api::v1::cluster_client::ClusterClient;
use herald_api::v1::{AddNodeRequest, ClusterStatusRequest, RemoveNodeRequest};

use crate::cli::connect::{ClientChannel, ConnectArgs};
use crate::cli::messages::status_error;

#[derive(clap::Args)]
pub struct AddNodeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The new node's id (its config's node-id).
    node: u64,
    /// Its internal address, as every member will dial it (its raft-listen).
    #[arg(long, value_name = "ADDR")]
    raft: String,
    /// Its public gRPC address (its grpc-listen), recorded in the membership for clients.
    #[arg(long, value_name = "ADDR", default_value = "")]
    grpc: String,
    /// How long it may take to catch up before it would become a voter; it stays a learner
    /// when it does not.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout_secs: u64,
}

#[derive(clap::Args)]
pub struct RemoveNodeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The node to remove.
    node: u64,
    /// Remove it even when the voters left would not hold a live majority (the cluster then
    /// stops committing until enough of them are back).
    #[arg(long)]
    force: bool,
}

/// A channel to the leader: membership changes are the leader's to make.
async fn leader_channel(connect: &ConnectArgs) -> anyhow::Result<ClientChannel> {
    let channel = connect.admin_channel().await?;
    let status = ClusterClient::new(channel.clone())
        .status(ClusterStatusRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if status.leader == 0 {
        anyhow::bail!("no leader is known to {}; try again", connect.endpoint);
    }
    if status.leader == status.node_id {
        return Ok(channel);
    }
    let addr = status
        .members
        .iter()
        .find(|m| m.id == status.leader)
        .map(|m| m.grpc_addr.clone())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the leader, node {}, has no public address in the membership; call it directly",
                status.leader
            )
        })?;
    let mut at_leader = connect.clone();
    at_leader.endpoint = addr;
    Ok(at_leader.admin_channel().await?)
}

pub async fn add_node(args: AddNodeArgs) -> anyhow::Result<()> {
    let mut client = AdminClient::new(leader_channel(&args.connect).await?);
    let mut progress = client
        .add_node(AddNodeRequest {
            node: args.node,
            raft_addr: args.raft.clone(),
            grpc_addr: args.grpc.clone(),
            timeout_ms: args.timeout_secs.saturating_mul(1000),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut promoted = false;
    while let Some(step) = progress.message().await.map_err(status_error)? {
        match step.stage.as_str() {
            "learner-added" => println!("node {} is a learner; catching up", args.node),
            "catching-up" => eprintln!(
                "node {}: at index {} of {}",
                args.node, step.node_index, step.leader_index
            ),
            "promoted" => {
                promoted = true;
                println!(
                    "node {} is a voter (at index {} of {})",
                    args.node, step.node_index, step.leader_index
                );
            }
            other => println!("node {}: {other}", args.node),
        }
    }
    if !promoted {
        anyhow::bail!(
            "node {}: the leader ended the call before promoting it; see `herald cluster status`",
            args.node
        );
    }
    Ok(())
}

pub async fn remove_node(args: RemoveNodeArgs) -> anyhow::Result<()> {
    let mut client = AdminClient::new(leader_channel(&args.connect).await?);
    let resp = client
        .remove_node(RemoveNodeRequest {
            node: args.node,
            force: args.force,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    println!(
        "node {} removed; voters {:?}, learners {:?}",
        args.node, resp.voters, resp.learners
    );
    Ok(())
}
