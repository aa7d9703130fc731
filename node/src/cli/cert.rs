//! `herald cert`: make the certificates a cluster needs without openssl — a CA, node
//! certificates (the node's identity plus the hosts clients reach it at), client certificates.
//! Prints the files it wrote. Issuing is [`crate::tls::certs`]; this module is arguments and
//! output only.

use std::path::PathBuf;

use crate::tls::certs::{self, Validity};
use crate::tls::identity::check_cluster_name;
use crate::tls::NodeIdentity;

#[derive(clap::Subcommand)]
pub enum CertCommand {
    /// Makes a cluster CA: ca.pem (give it to every node and client) and ca.key (keep it safe).
    Ca {
        /// The folder to write ca.pem and ca.key in (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The cluster's name (a-z, 0-9, '-'; at most 63), shown in the CA's name.
        #[arg(long, default_value = "herald")]
        cluster: String,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Makes node N's certificate (node-N.pem, node-N.key), signed by the CA in --ca-dir.
    Node {
        /// The folder holding ca.pem and ca.key.
        #[arg(long, value_name = "DIR")]
        ca_dir: PathBuf,
        /// The node's id (node-id in its config).
        #[arg(long)]
        id: u64,
        /// The cluster's name: the certificate names herald://CLUSTER/node/ID.
        #[arg(long)]
        cluster: String,
        /// A DNS name or IP address clients reach the node's public port at; repeatable.
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
        /// The folder to write the certificate and key in.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Makes a client certificate (NAME.pem, NAME.key) naming herald://CLUSTER/client/NAME.
    Client {
        /// The folder holding ca.pem and ca.key.
        #[arg(long, value_name = "DIR")]
        ca_dir: PathBuf,
        /// The client's name (a-z, 0-9, '-'; at most 63).
        #[arg(long)]
        name: String,
        /// The cluster's name.
        #[arg(long, default_value = "herald")]
        cluster: String,
        /// The folder to write the certificate and key in.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

fn cluster_arg(cluster: &str) -> anyhow::Result<()> {
    check_cluster_name(cluster).map_err(|e| anyhow::anyhow!("--cluster: {e}"))
}

pub fn run(command: CertCommand) -> anyhow::Result<()> {
    let (cert, key) = match command {
        CertCommand::Ca { out, cluster, days } => {
            cluster_arg(&cluster)?;
            let ca = certs::make_ca(&cluster, Validity::days(days)?)?;
            certs::write(&out, "ca", &ca)?
        }
        CertCommand::Node {
            ca_dir,
            id,
            cluster,
            hosts,
            out,
            days,
        } => {
            let identity =
                NodeIdentity::new(&cluster, id).map_err(|e| anyhow::anyhow!("--cluster: {e}"))?;
            let ca = certs::read_ca(&ca_dir)?;
            let node = certs::make_node(&ca, &identity, &hosts, Validity::days(days)?)?;
            certs::write(&out, &format!("node-{id}"), &node)?
        }
        CertCommand::Client {
            ca_dir,
            name,
            cluster,
            out,
            days,
        } => {
            cluster_arg(&cluster)?;
            check_cluster_name(&name).map_err(|_| {
                anyhow::anyhow!("--name {name:?}: must be 1 to 63 characters of a-z, 0-9 and '-'")
            })?;
            let ca = certs::read_ca(&ca_dir)?;
            let client = certs::make_client(&ca, &cluster, &name, Validity::days(days)?)?;
            certs::write(&out, &name, &client)?
        }
    };
    println!("certificate: {}", cert.display());
    println!("private key: {} (mode 0600)", key.display());
    Ok(())
}
