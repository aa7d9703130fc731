//! Operators' commands on the Admin API: `herald policy show|set` and `herald cluster drain`.

use herald_api::v1::admin_client::AdminClient;
use herald_api::v1::{DrainNodeRequest, GetPolicyRequest, SetPolicyRequest};

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
    /// node is undrained.
    #[arg(long, conflicts_with = "undo")]
    force: bool,
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
    let mut client = AdminClient::new(args.connect.admin_channel().await?);
    let resp = client
        .drain_node(DrainNodeRequest {
            node: args.node,
            drained: !args.undo,
            force: args.force,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    println!("drained nodes: {:?}", resp.drained);
    Ok(())
}
