//! `herald backup` (a consistent backup of a running cluster, through `Admin.Backup`) and
//! `herald restore` (seeds a new cluster's first node's data directory from one, offline). The
//! file layout and its checks are `herald_raft::snapshot::backup`'s.

use std::io::Write as _;
use std::path::PathBuf;

use herald_api::v1::admin_client::AdminClient;
use herald_api::v1::BackupRequest;
use herald_raft::snapshot::backup;
use herald_raft::types::Member;

use crate::cli::connect::ConnectArgs;
use crate::cli::messages::status_error;

#[derive(clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Where to write the backup; written whole and checked before it takes this name.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup file (`herald backup --out`).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The new node's data directory (its config's data-dir): must be absent or empty.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The new node's id: the one voter of the restored cluster (add the others with
    /// `herald cluster add-node`).
    #[arg(long, value_name = "N")]
    node_id: u64,
    /// The new node's internal address (its raft-listen), as the membership records it.
    #[arg(long, value_name = "ADDR")]
    raft: String,
    /// The new node's public gRPC address (its grpc-listen).
    #[arg(long, value_name = "ADDR", default_value = "")]
    grpc: String,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let mut client = AdminClient::new(args.connect.admin_channel().await?);
    let mut chunks = client
        .backup(BackupRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let partial = args.out.with_extension("partial");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .map_err(|e| anyhow::anyhow!("--out {}: {e}", partial.display()))?,
    );
    let received = async {
        while let Some(chunk) = chunks.message().await.map_err(status_error)? {
            out.write_all(&chunk.data)?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        anyhow::Ok(())
    }
    .await;
    let checked = received.and_then(|()| Ok(backup::check(&partial)?));
    match checked {
        Ok((header, _)) => {
            herald_raft::durable_fs::rename_durable(&partial, &args.out)?;
            println!(
                "backup of cluster {:?} up to index {} (term {}), {} bytes, sha256 {}: {}",
                header.cluster,
                header.index,
                header.term,
                header.data_len,
                header.sha256,
                args.out.display()
            );
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e.context("the backup was not written"))
        }
    }
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    if args.node_id == 0 {
        anyhow::bail!("--node-id 0: node ids start at 1");
    }
    let valid_addr = |a: &str| {
        a.rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    };
    if !valid_addr(&args.raft) {
        anyhow::bail!(
            "--raft {:?}: must be HOST:PORT (the node's raft-listen)",
            args.raft
        );
    }
    let member = Member {
        raft_addr: args.raft.clone(),
        grpc_addr: args.grpc.clone(),
    };
    let seeded = backup::seed(&args.from, &args.data_dir, args.node_id, member).await?;
    println!(
        "restored cluster {:?} up to index {} into {} as node {}: start it (without \
         --bootstrap), then add the other nodes with herald cluster add-node",
        seeded.header.cluster,
        seeded.header.index,
        args.data_dir.display(),
        seeded.node
    );
    Ok(())
}
