//! `herald sim <protocol>`: the carrier simulators' command line. Every simulator shares the
//! options of [`SimCommon`] — accounts, reports, the record, and the strictness and fault modes
//! of [`SimFaultArgs`] (each simulator answers them in its own protocol) — and adds only what its
//! protocol has.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use herald_protocols::sim::faults::SimFaults;
use secrecy::SecretString;
use tokio::net::TcpListener;

#[derive(Subcommand)]
pub enum SimProtocol {
    /// A CMPP 3.0 / 2.0 SMS gateway.
    Cmpp(SimCmppArgs),
    /// An SMGP 3.0.3 (China Telecom) SMS gateway.
    Smgp(SimGatewayArgs),
    /// A CNGP 2.0 (China Netcom) SMS gateway.
    Cngp(SimGatewayArgs),
    /// An SGIP 1.2 (China Unicom) SMS gateway; it connects back to the SP to send reports.
    Sgip(SimSgipArgs),
    /// An SMPP 3.3 / 3.4 / 5.0 SMSC (binds of all three kinds, delivery receipts).
    Smpp(SimSmppArgs),
}

/// What every simulator is given.
#[derive(clap::Args)]
pub struct SimCommon {
    /// The address to accept connections on, HOST:PORT (a link's `address`).
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// ACCOUNT:SECRET (the protocol's login and password); repeatable. SGIP also takes
    /// LOGIN:PASSWORD@SP_ADDR to give an SP its own report listener.
    #[arg(long = "account", required = true)]
    accounts: Vec<String>,
    /// Delay before a status report is sent, in milliseconds.
    #[arg(long, default_value_t = 200)]
    report_delay_ms: u64,
    /// Fraction of messages reported delivered (the rest undelivered).
    #[arg(long, default_value_t = 1.0)]
    delivered_ratio: f64,
    /// JSON-lines file recording every submit received and every report sent.
    #[arg(long)]
    record: Option<PathBuf>,
    #[command(flatten)]
    faults: SimFaultArgs,
    #[command(flatten)]
    mo: SimMoArgs,
}

/// Injected mobile-originated messages, for every simulator.
#[derive(clap::Args)]
pub struct SimMoArgs {
    /// Send a mobile-originated message this often, in milliseconds: on every connection that
    /// takes delivers (SGIP: to every account's SP, over the gateway's own connection).
    #[arg(long)]
    mo_every_ms: Option<u64>,
    /// The injected MOs' text (default "MO n"); a long text goes out in concatenated parts.
    #[arg(long)]
    mo_text: Option<String>,
    /// The injected MOs' sender number (default 13800138000).
    #[arg(long)]
    mo_from: Option<String>,
    /// The injected MOs' destination, the SP number with any extension (default the SP's
    /// number from its submits, or its account).
    #[arg(long)]
    mo_to: Option<String>,
    /// Spread the parts of each long MO over the account's connections, one part per
    /// connection in turn (SGIP has one connection per SP).
    #[arg(long)]
    mo_spread: bool,
}

/// Strictness and fault modes, the same options for every simulator: a refused submit is
/// answered with the protocol's own flow-control code (CMPP Result 8, SMPP ESME_RTHROTTLED,
/// SGIP 88, SMGP and CNGP 1 "system busy").
#[derive(clap::Args)]
pub struct SimFaultArgs {
    /// Answer submits beyond this many per second per account with the flow-control code.
    #[arg(long)]
    max_per_second: Option<u32>,
    /// Answer a submit with the flow-control code while this many of its connection await
    /// their response.
    #[arg(long)]
    max_window: Option<usize>,
    /// Hold every submit response this long, in milliseconds.
    #[arg(long, default_value_t = 0)]
    submit_resp_delay_ms: u64,
    /// Fault: answer N PDUs per connection, then close it on the next.
    #[arg(long)]
    drop_after: Option<u64>,
    /// Fault: answer N PDUs per connection, then stop answering (the connection stays open).
    #[arg(long)]
    stall_after: Option<u64>,
    /// Fault: answer N PDUs per connection, then answer with malformed PDUs.
    #[arg(long)]
    malformed_after: Option<u64>,
}

impl SimFaultArgs {
    /// The simulators' fault settings these options ask for.
    fn settings(&self) -> SimFaults {
        SimFaults {
            submit_resp_delay: Duration::from_millis(self.submit_resp_delay_ms),
            max_per_second: self.max_per_second,
            max_window: self.max_window,
            drop_after: self.drop_after,
            stall_after: self.stall_after,
            malformed_after: self.malformed_after,
            ..SimFaults::default()
        }
    }
}

impl SimCommon {
    fn check(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.delivered_ratio) {
            anyhow::bail!("--delivered-ratio must be between 0 and 1");
        }
        Ok(())
    }

    /// The accounts as (login, secret) pairs. A value without `:` is not echoed in the
    /// error: it may be a password given alone.
    fn pairs(&self) -> anyhow::Result<Vec<(String, SecretString)>> {
        self.accounts
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                raw.split_once(':')
                    .map(|(id, secret)| (id.to_string(), SecretString::from(secret)))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--account (value {} of {}): expected ACCOUNT:SECRET, found no ':'",
                            i + 1,
                            self.accounts.len()
                        )
                    })
            })
            .collect()
    }

    /// The fault settings and MO injection these options ask for.
    fn sim_faults(&self) -> SimFaults {
        SimFaults {
            mo_every: self.mo.mo_every_ms.map(Duration::from_millis),
            mo_text: self.mo.mo_text.clone(),
            mo_from: self.mo.mo_from.clone(),
            mo_to: self.mo.mo_to.clone(),
            mo_spread: self.mo.mo_spread,
            ..self.faults.settings()
        }
    }

    fn report_delay(&self) -> Duration {
        Duration::from_millis(self.report_delay_ms)
    }
}

#[derive(clap::Args)]
pub struct SimSmppArgs {
    #[command(flatten)]
    common: SimCommon,
    /// How message ids are written: hex or decimal.
    #[arg(long, default_value = "decimal")]
    id_format: String,
}

#[derive(clap::Args)]
pub struct SimSgipArgs {
    #[command(flatten)]
    common: SimCommon,
    /// The SP's listener (its `listen` link option) for Reports and MOs.
    #[arg(long)]
    sp_addr: Option<String>,
    /// The gateway's node id in its own sequence numbers.
    #[arg(long, default_value_t = 4_000_000_001)]
    node_id: u32,
    /// Close an SP connection idle this long, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    idle_timeout_ms: u64,
}

/// Options of the SMGP and CNGP simulators.
#[derive(clap::Args)]
pub struct SimGatewayArgs {
    #[command(flatten)]
    common: SimCommon,
    /// Gateway code in minted MsgIDs (up to six digits).
    #[arg(long, default_value_t = 1)]
    gateway_id: u32,
}

#[derive(clap::Args)]
pub struct SimCmppArgs {
    #[command(flatten)]
    common: SimCommon,
    /// Gateway code in minted Msg_Ids.
    #[arg(long, default_value_t = 1)]
    gateway_id: u32,
    /// Accept only this CMPP version (2 or 3); both by default.
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=3))]
    version: Option<u8>,
    /// Fault: refuse every SUBMIT to numbers starting with PREFIX, with Result CODE
    /// (PREFIX=CODE); repeatable.
    #[arg(long = "reject-dest")]
    reject_dest: Vec<String>,
}

/// Runs the chosen simulator until `shutdown` completes.
pub async fn run(
    protocol: SimProtocol,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    match protocol {
        SimProtocol::Cmpp(args) => run_cmpp(args, shutdown).await,
        SimProtocol::Smgp(args) => {
            let (config, faults) = gateway_config(args)?;
            let listener = TcpListener::bind(&config.listen).await?;
            herald_protocols::sim::smgp::run_on(listener, config, faults, shutdown).await?;
            Ok(())
        }
        SimProtocol::Cngp(args) => {
            let (config, faults) = gateway_config(args)?;
            let listener = TcpListener::bind(&config.listen).await?;
            herald_protocols::sim::cngp::run_on(listener, config, faults, shutdown).await?;
            Ok(())
        }
        SimProtocol::Sgip(args) => run_sgip(args, shutdown).await,
        SimProtocol::Smpp(args) => run_smpp(args, shutdown).await,
    }
}

/// The SMGP / CNGP simulator's configuration and faults.
fn gateway_config(
    args: SimGatewayArgs,
) -> anyhow::Result<(herald_protocols::sim::telecom::SimConfig, SimFaults)> {
    args.common.check()?;
    let faults = args.common.sim_faults();
    let config = herald_protocols::sim::telecom::SimConfig {
        accounts: args.common.pairs()?,
        report_delay: args.common.report_delay(),
        delivered_ratio: args.common.delivered_ratio,
        listen: args.common.listen,
        record: args.common.record,
        gateway_id: args.gateway_id,
    };
    Ok((config, faults))
}

async fn run_sgip(
    args: SimSgipArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use herald_protocols::sim::sgip::{SimAccount, SimConfig};
    args.common.check()?;
    let mut accounts = Vec::new();
    for raw in &args.common.accounts {
        let (login, rest) = raw.split_once(':').ok_or_else(|| {
            anyhow::anyhow!("--account: expected LOGIN:PASSWORD[@SP_ADDR], found no ':' (the value is not shown: it may be a password)")
        })?;
        let (password, sp_addr) = match rest.rsplit_once('@') {
            Some((password, addr)) => (password, Some(addr.to_string())),
            None => (rest, None),
        };
        if sp_addr.is_none() && args.sp_addr.is_none() {
            anyhow::bail!("--account {login:?} has no SP address: add @SP_ADDR or --sp-addr");
        }
        accounts.push(SimAccount {
            login: login.to_string(),
            password: password.into(),
            sp_addr,
        });
    }
    let faults = args.common.sim_faults();
    let config = SimConfig {
        report_delay: args.common.report_delay(),
        delivered_ratio: args.common.delivered_ratio,
        listen: args.common.listen,
        record: args.common.record,
        accounts,
        sp_addr: args.sp_addr,
        node_id: args.node_id,
        idle_timeout: Duration::from_millis(args.idle_timeout_ms.max(1)),
    };
    let listener = TcpListener::bind(&config.listen).await?;
    herald_protocols::sim::sgip::run_on(listener, config, faults, shutdown).await?;
    Ok(())
}

async fn run_smpp(
    args: SimSmppArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use herald_protocols::smpp::IdFormat;
    args.common.check()?;
    let id_format = match args.id_format.parse::<IdFormat>() {
        Ok(f @ (IdFormat::Hex | IdFormat::Decimal)) => f,
        _ => anyhow::bail!("--id-format {:?}: must be hex or decimal", args.id_format),
    };
    let faults = args.common.sim_faults();
    let config = herald_protocols::sim::smpp::SimConfig {
        accounts: args.common.pairs()?,
        report_delay: args.common.report_delay(),
        delivered_ratio: args.common.delivered_ratio,
        listen: args.common.listen,
        record: args.common.record,
        id_format,
        receipt_id_format: None,
    };
    let listener = TcpListener::bind(&config.listen).await?;
    herald_protocols::sim::smpp::run_on(listener, config, faults, shutdown).await?;
    Ok(())
}

async fn run_cmpp(
    args: SimCmppArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    args.common.check()?;
    let mut reject_dest = Vec::new();
    for spec in &args.reject_dest {
        let parsed = spec
            .split_once('=')
            .and_then(|(prefix, code)| Some((prefix.to_string(), code.parse::<u32>().ok()?)));
        match parsed {
            Some(rule) => reject_dest.push(rule),
            None => anyhow::bail!("--reject-dest {spec:?}: expected PREFIX=CODE"),
        }
    }
    let common_faults = args.common.sim_faults();
    let config = herald_protocols::sim::cmpp::SimConfig {
        accounts: args.common.pairs()?,
        report_delay: args.common.report_delay(),
        delivered_ratio: args.common.delivered_ratio,
        listen: args.common.listen,
        record: args.common.record,
        gateway_id: args.gateway_id,
        version: args.version,
    };
    let faults = SimFaults {
        reject_dest,
        ..common_faults
    };
    herald_protocols::sim::cmpp::run_with_faults(config, faults, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Sim {
        #[command(subcommand)]
        protocol: SimProtocol,
    }

    fn parse(args: &[&str]) -> Result<SimProtocol, clap::Error> {
        Sim::try_parse_from(std::iter::once("sim").chain(args.iter().copied())).map(|s| s.protocol)
    }

    fn common(protocol: &SimProtocol) -> &SimCommon {
        match protocol {
            SimProtocol::Cmpp(a) => &a.common,
            SimProtocol::Smgp(a) | SimProtocol::Cngp(a) => &a.common,
            SimProtocol::Sgip(a) => &a.common,
            SimProtocol::Smpp(a) => &a.common,
        }
    }

    /// Every simulator takes several accounts and the same fault modes, so a fault test can be
    /// run against any protocol from the command line.
    #[test]
    fn every_simulator_takes_repeated_accounts_and_every_fault_mode() {
        for protocol in ["cmpp", "smpp", "sgip", "smgp", "cngp"] {
            let parsed = parse(&[
                protocol,
                "--listen",
                "127.0.0.1:0",
                "--account",
                "a:1",
                "--account",
                "b:2@127.0.0.1:9",
                "--max-per-second",
                "7",
                "--max-window",
                "3",
                "--submit-resp-delay-ms",
                "40",
                "--drop-after",
                "5",
                "--stall-after",
                "6",
                "--malformed-after",
                "4",
            ])
            .unwrap_or_else(|e| panic!("{protocol}: {e}"));
            let common = common(&parsed);
            assert_eq!(common.accounts, ["a:1", "b:2@127.0.0.1:9"], "{protocol}");
            let faults = common.faults.settings();
            assert_eq!(faults.max_per_second, Some(7), "{protocol}");
            assert_eq!(faults.max_window, Some(3), "{protocol}");
            assert_eq!(faults.submit_resp_delay, Duration::from_millis(40));
            assert_eq!(faults.drop_after, Some(5), "{protocol}");
            assert_eq!(faults.stall_after, Some(6), "{protocol}");
            assert_eq!(faults.malformed_after, Some(4), "{protocol}");
        }
        for protocol in ["cmpp", "smpp", "sgip", "smgp", "cngp"] {
            let parsed = parse(&[
                protocol,
                "--listen",
                "x",
                "--account",
                "a:1",
                "--mo-every-ms",
                "250",
                "--mo-text",
                "hi",
                "--mo-from",
                "13900000000",
                "--mo-to",
                "1069000188",
                "--mo-spread",
            ])
            .unwrap_or_else(|e| panic!("{protocol}: {e}"));
            let faults = common(&parsed).sim_faults();
            assert_eq!(faults.mo_every, Some(Duration::from_millis(250)));
            assert_eq!(faults.mo_text.as_deref(), Some("hi"), "{protocol}");
            assert_eq!(faults.mo_from.as_deref(), Some("13900000000"));
            assert_eq!(faults.mo_to.as_deref(), Some("1069000188"));
            assert!(faults.mo_spread, "{protocol}");
        }
        let plain = parse(&["smpp", "--listen", "x", "--account", "a:1"]).expect("parses");
        let faults = common(&plain).faults.settings();
        assert_eq!(
            (
                faults.drop_after,
                faults.stall_after,
                faults.malformed_after
            ),
            (None, None, None)
        );
        assert!(
            parse(&["smgp", "--listen", "x"]).is_err(),
            "an account is required"
        );
    }

    #[test]
    fn cmpp_accepts_both_versions_unless_told_one() {
        let version = |extra: &[&str]| {
            let mut args = vec!["cmpp", "--listen", "x", "--account", "a:1"];
            args.extend_from_slice(extra);
            parse(&args).map(|p| match p {
                SimProtocol::Cmpp(a) => a.version,
                _ => unreachable!("parsed as CMPP"),
            })
        };
        assert_eq!(version(&[]).expect("parses"), None);
        assert_eq!(version(&["--version", "2"]).expect("parses"), Some(2));
        assert_eq!(version(&["--version", "3"]).expect("parses"), Some(3));
        assert!(version(&["--version", "4"]).is_err());
        assert!(
            parse(&[
                "smpp",
                "--listen",
                "x",
                "--account",
                "a:1",
                "--version",
                "2"
            ])
            .is_err(),
            "only the CMPP simulator has versions to choose"
        );
    }
}
