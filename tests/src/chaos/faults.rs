//! Faults and their schedule. The schedule is drawn from the seed before the run starts: which
//! fault, when, for how long, and the random draws each fault makes (which node, which split).
//! Who the leader or a link holder *is* at that moment is read from the cluster, so a rerun with the
//! same seed injects the same sequence of faults against the same roles.
//!
//! Faults run one at a time; each ends by undoing itself (restart, SIGCONT, heal, fault cleared),
//! and the run ends with a heal of everything.
//!
//! Some kinds need a capability of the machine ([`FaultKind::missing_capability`]): the clock
//! kinds libfaketime, the power, disk and fsync kinds FUSE (each node's data directory is a
//! [`herald_lossyfs::LossyFs`]). A run leaves out the kinds the machine cannot inject and says
//! which and why.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use herald_lossyfs::{Fault, Tear};

use super::cluster::ChaosCluster;
use super::history::{History, Phase, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    KillLeader,
    KillFollower,
    KillRandom,
    KillLinkHolder,
    PauseLeader,
    PauseRandom,
    PartitionHalves,
    IsolateLeader,
    FlappingBridge,
    SimDisconnect,
    SimStall,
    /// A random node's wall clock jumps forward, then back, by minutes to hours (libfaketime).
    ClockSkewNode,
    /// The leader's wall clock jumps forward, then back.
    ClockSkewLeader,
    /// SIGKILL one node and cut its filesystem's power: what it had not fsynced is gone.
    PowerLossOne,
    /// The same for a minority of the nodes at once.
    PowerLossMinority,
    /// The same for every node at once: only what reached a disk survives anywhere.
    PowerLossAll,
    /// One node's filesystem is full for a while.
    DiskFull,
    /// fsync fails with EIO on one node: it must stop, and restarts once the fault is cleared.
    FsyncEio,
}

impl FaultKind {
    /// Every kind the harness knows, whether or not this machine can inject it; a run uses
    /// [`FaultKind::all`].
    pub const KNOWN: [FaultKind; 18] = [
        FaultKind::KillLeader,
        FaultKind::KillFollower,
        FaultKind::KillRandom,
        FaultKind::KillLinkHolder,
        FaultKind::PauseLeader,
        FaultKind::PauseRandom,
        FaultKind::PartitionHalves,
        FaultKind::IsolateLeader,
        FaultKind::FlappingBridge,
        FaultKind::SimDisconnect,
        FaultKind::SimStall,
        FaultKind::ClockSkewNode,
        FaultKind::ClockSkewLeader,
        FaultKind::PowerLossOne,
        FaultKind::PowerLossMinority,
        FaultKind::PowerLossAll,
        FaultKind::DiskFull,
        FaultKind::FsyncEio,
    ];

    /// The kinds of the short run (`tests/chaos_short.rs`): [`FaultKind::all`] less the power,
    /// disk and fsync kinds, which have their own short run (`tests/power_loss.rs`).
    pub fn short_run() -> Vec<FaultKind> {
        FaultKind::all()
            .into_iter()
            .filter(|k| !k.needs_lossy_fs())
            .collect()
    }

    /// Every kind this machine can inject: [`FaultKind::KNOWN`] less those whose capability is
    /// missing ([`FaultKind::skipped`] says why).
    pub fn all() -> Vec<FaultKind> {
        FaultKind::KNOWN
            .into_iter()
            .filter(|k| k.missing_capability().is_none())
            .collect()
    }

    /// The kinds this machine cannot inject, and why.
    pub fn skipped() -> Vec<(FaultKind, String)> {
        FaultKind::KNOWN
            .into_iter()
            .filter_map(|k| k.missing_capability().map(|why| (k, why)))
            .collect()
    }

    /// Why this machine cannot inject this kind (None: it can).
    pub fn missing_capability(self) -> Option<String> {
        match self {
            FaultKind::ClockSkewNode | FaultKind::ClockSkewLeader => {
                crate::faketime::library().err()
            }
            k if k.needs_lossy_fs() => herald_lossyfs::LossyFs::available().err(),
            _ => None,
        }
    }

    /// Whether the nodes' data directories must be on LossyFs for this kind.
    pub fn needs_lossy_fs(self) -> bool {
        matches!(
            self,
            FaultKind::PowerLossOne
                | FaultKind::PowerLossMinority
                | FaultKind::PowerLossAll
                | FaultKind::DiskFull
                | FaultKind::FsyncEio
        )
    }

    /// Whether nodes must run under a fake clock for this kind.
    pub fn needs_fake_clock(self) -> bool {
        matches!(self, FaultKind::ClockSkewNode | FaultKind::ClockSkewLeader)
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill-leader",
            FaultKind::KillFollower => "kill-follower",
            FaultKind::KillRandom => "kill-random",
            FaultKind::KillLinkHolder => "kill-link-holder",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::PauseRandom => "pause-random",
            FaultKind::PartitionHalves => "partition-halves",
            FaultKind::IsolateLeader => "isolate-leader",
            FaultKind::FlappingBridge => "flapping-bridge",
            FaultKind::SimDisconnect => "sim-disconnect",
            FaultKind::SimStall => "sim-stall",
            FaultKind::ClockSkewNode => "clock-skew-node",
            FaultKind::ClockSkewLeader => "clock-skew-leader",
            FaultKind::PowerLossOne => "power-loss-one",
            FaultKind::PowerLossMinority => "power-loss-minority",
            FaultKind::PowerLossAll => "power-loss-all",
            FaultKind::DiskFull => "disk-full",
            FaultKind::FsyncEio => "fsync-eio",
        }
    }

    /// The `--faults` family: one of [`FaultKind::FAMILIES`].
    pub fn family(self) -> &'static str {
        match self {
            FaultKind::KillLeader
            | FaultKind::KillFollower
            | FaultKind::KillRandom
            | FaultKind::KillLinkHolder => "kill",
            FaultKind::PauseLeader | FaultKind::PauseRandom => "pause",
            FaultKind::PartitionHalves | FaultKind::IsolateLeader | FaultKind::FlappingBridge => {
                "partition"
            }
            FaultKind::SimDisconnect | FaultKind::SimStall => "sim",
            FaultKind::ClockSkewNode | FaultKind::ClockSkewLeader => "clock",
            FaultKind::PowerLossOne | FaultKind::PowerLossMinority | FaultKind::PowerLossAll => {
                "power"
            }
            FaultKind::DiskFull | FaultKind::FsyncEio => "disk",
        }
    }

    /// The family names, for help and errors.
    pub const FAMILIES: [&'static str; 7] = [
        "kill",
        "pause",
        "partition",
        "sim",
        "clock",
        "power",
        "disk",
    ];

    /// The `--faults` help: every family with its kinds, and what is skipped where.
    pub fn help() -> String {
        let mut out = format!(
            "Fault families ({}, all) or fault names, comma-separated. A family or all takes the \
             kinds this machine can inject (clock needs libfaketime; power and disk need FUSE); \
             the run prints the others with the reason.\n",
            FaultKind::FAMILIES.join(", ")
        );
        for family in FaultKind::FAMILIES {
            let names: Vec<&str> = FaultKind::KNOWN
                .iter()
                .filter(|k| k.family() == family)
                .map(|k| k.name())
                .collect();
            out.push_str(&format!("  {family}: {}\n", names.join(", ")));
        }
        out
    }

    /// Kinds of the given families ([`FaultKind::FAMILIES`]) or exact names. A family or `all` takes the kinds this machine can inject (the run prints the
    /// others); a kind named on its own that cannot be injected here is an error saying why.
    pub fn parse_list(list: &str) -> Result<Vec<FaultKind>, String> {
        let mut kinds = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if let Some(k) = FaultKind::KNOWN.into_iter().find(|k| k.name() == word) {
                if let Some(why) = k.missing_capability() {
                    return Err(format!("--faults: {word} cannot be injected here: {why}"));
                }
            }
            let matched: Vec<FaultKind> = FaultKind::all()
                .into_iter()
                .filter(|k| word == "all" || k.family() == word || k.name() == word)
                .collect();
            let family = FaultKind::KNOWN.iter().any(|k| k.family() == word);
            if matched.is_empty() && !family {
                return Err(format!(
                    "--faults: {word:?} is not a fault family ({}, all) or a fault name ({})",
                    FaultKind::FAMILIES.join(", "),
                    FaultKind::KNOWN.map(|k| k.name()).join(", ")
                ));
            }
            for k in matched {
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
        if kinds.is_empty() {
            let skipped: Vec<String> = FaultKind::skipped()
                .into_iter()
                .map(|(k, why)| format!("{}: {why}", k.name()))
                .collect();
            return Err(format!(
                "--faults: no fault of {list:?} can be injected here (skipped: {})",
                skipped.join("; ")
            ));
        }
        Ok(kinds)
    }

    /// Does this fault take the leader (or possibly the leader) away?
    pub fn hits_leader(self) -> bool {
        matches!(
            self,
            FaultKind::KillLeader
                | FaultKind::PauseLeader
                | FaultKind::IsolateLeader
                | FaultKind::PowerLossAll
        )
    }
}

/// A disk-full fault leaves this much room: below any sensible reserve (the node's
/// `min-free-space` defaults to 64 MiB), so the node must refuse writes before RocksDB runs out.
const DISK_FULL_HEADROOM: u64 = 16 << 20;

/// How long a node whose fsyncs fail may keep running before the run calls it a failure.
pub const FSYNC_EIO_STOP_LIMIT: Duration = Duration::from_secs(20);

/// How a fault's end record starts when the fault saw the product misbehave (a node that kept
/// running on failed fsyncs, one that crashed on a disk below its reserve): the checker reports it.
pub const PROBLEM_MARK: &str = "PROBLEM: ";

#[derive(Debug, Clone)]
pub struct ScheduledFault {
    pub seq: u32,
    /// From the start of the workload.
    pub at: Duration,
    pub kind: FaultKind,
    pub hold: Duration,
    /// The fault's own random draws (which node, which split).
    pub draw: u64,
}

/// Draws the schedule: every kind once (in a seeded order), then random kinds, each followed by a
/// quiet gap, until `span` is used up.
pub fn schedule(
    seed: u64,
    kinds: &[FaultKind],
    span: Duration,
    warmup: Duration,
) -> Vec<ScheduledFault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<FaultKind> = kinds.to_vec();
    order.shuffle(&mut rng);
    let mut out = Vec::new();
    let mut at = warmup;
    let mut seq = 0;
    loop {
        let kind = if (seq as usize) < order.len() {
            order[seq as usize]
        } else {
            kinds[rng.gen_range(0..kinds.len())]
        };
        let hold = Duration::from_millis(match kind {
            // Longer than the election timeout (1-2 s) and the node-lost delay (2 s).
            FaultKind::PauseLeader | FaultKind::PauseRandom => rng.gen_range(3000..6000),
            // Shorter than the link's 10 s response timeout: a stall, not a dead carrier.
            FaultKind::SimStall => rng.gen_range(2000..5000),
            FaultKind::SimDisconnect => rng.gen_range(500..2500),
            FaultKind::FlappingBridge => rng.gen_range(5000..9000),
            // Some partitions outlast the node's 10 s proposal deadline, so the minority's
            // refusals are seen while it is still cut off.
            FaultKind::PartitionHalves | FaultKind::IsolateLeader => rng.gen_range(4000..14000),
            // Each half (ahead, then behind) outlasts a few clock samples (1 s) and timer ticks.
            FaultKind::ClockSkewNode | FaultKind::ClockSkewLeader => rng.gen_range(6000..12000),
            // How long the machines stay dark.
            FaultKind::PowerLossOne | FaultKind::PowerLossMinority | FaultKind::PowerLossAll => {
                rng.gen_range(1000..5000)
            }
            // Long enough for the node to see it (its space check) and hand over leadership.
            FaultKind::DiskFull => rng.gen_range(5000..12000),
            // From the node's stop (it needs an fsync to fail first) to its restart.
            FaultKind::FsyncEio => rng.gen_range(2000..5000),
            _ => rng.gen_range(3000..7000),
        });
        let gap = Duration::from_millis(rng.gen_range(3000..6000));
        if at + hold > span {
            break;
        }
        out.push(ScheduledFault {
            seq,
            at,
            kind,
            hold,
            draw: rng.gen(),
        });
        seq += 1;
        at += hold + gap;
    }
    out
}

/// Injects `faults` in order, timed from when it is called; stops early when `stop` is set.
pub async fn run(
    cluster: Arc<ChaosCluster>,
    history: Arc<History>,
    faults: Vec<ScheduledFault>,
    stop: Arc<AtomicBool>,
) {
    let start = tokio::time::Instant::now();
    for fault in faults {
        tokio::time::sleep_until(start + fault.at).await;
        if stop.load(Ordering::SeqCst) {
            return;
        }
        inject(&cluster, &history, &fault).await;
    }
}

fn record(
    history: &History,
    fault: &ScheduledFault,
    phase: Phase,
    nodes: &[u64],
    minority: &[u64],
    detail: String,
) {
    tracing_line(fault, phase, nodes, &detail);
    history.push(Record::Fault {
        t_ms: history.now(),
        seq: fault.seq,
        kind: fault.kind.name().to_string(),
        phase,
        nodes: nodes.to_vec(),
        minority: minority.to_vec(),
        detail,
    });
}

/// A random follower of `leader` (any node when there is none known).
fn follower(rng: &mut StdRng, ids: &[u64], leader: Option<u64>) -> Option<u64> {
    let followers: Vec<u64> = ids.iter().copied().filter(|i| Some(*i) != leader).collect();
    followers.choose(rng).copied()
}

/// The leader or a random follower, half each: the storage faults hit both roles, which fail
/// differently (a leader must hand over or stop; a follower only falls behind).
fn leader_or_follower(rng: &mut StdRng, ids: &[u64], leader: Option<u64>) -> Option<u64> {
    if rng.gen_bool(0.5) {
        leader.or_else(|| ids.choose(rng).copied())
    } else {
        follower(rng, ids, leader)
    }
}

fn tracing_line(fault: &ScheduledFault, phase: Phase, nodes: &[u64], detail: &str) {
    eprintln!(
        "chaos: fault {} {} {:?} nodes {nodes:?} {detail}",
        fault.seq,
        fault.kind.name(),
        phase
    );
}

async fn inject(cluster: &ChaosCluster, history: &History, fault: &ScheduledFault) {
    let mut rng = StdRng::seed_from_u64(fault.draw);
    let ids = cluster.ids();
    let leader = cluster.leader().await;
    let pick = |rng: &mut StdRng, from: &[u64]| -> Option<u64> { from.choose(rng).copied() };
    match fault.kind {
        FaultKind::KillLeader
        | FaultKind::KillFollower
        | FaultKind::KillRandom
        | FaultKind::KillLinkHolder => {
            let target = match fault.kind {
                FaultKind::KillLeader => leader.or_else(|| pick(&mut rng, &ids)),
                FaultKind::KillFollower => follower(&mut rng, &ids, leader),
                FaultKind::KillLinkHolder => {
                    let holders = cluster.link_holders().await;
                    pick(&mut rng, &holders).or_else(|| pick(&mut rng, &ids))
                }
                _ => pick(&mut rng, &ids),
            };
            let Some(target) = target else { return };
            let detail = format!(
                "SIGKILL (leader was {leader:?}), restart after {:?}",
                fault.hold
            );
            record(history, fault, Phase::Start, &[target], &[], detail);
            cluster.kill_node(target);
            tokio::time::sleep(fault.hold).await;
            if let Err(e) = cluster.start_node(target) {
                eprintln!("chaos: restarting node {target}: {e:#}");
            }
            record(
                history,
                fault,
                Phase::End,
                &[target],
                &[],
                "restarted".into(),
            );
        }
        FaultKind::PauseLeader | FaultKind::PauseRandom => {
            let target = match fault.kind {
                FaultKind::PauseLeader => leader.or_else(|| pick(&mut rng, &ids)),
                _ => pick(&mut rng, &ids),
            };
            let Some(target) = target else { return };
            let detail = format!("SIGSTOP for {:?} (leader was {leader:?})", fault.hold);
            record(history, fault, Phase::Start, &[target], &[target], detail);
            cluster.pause_node(target);
            tokio::time::sleep(fault.hold).await;
            cluster.resume_node(target);
            record(history, fault, Phase::End, &[target], &[], "SIGCONT".into());
        }
        FaultKind::PartitionHalves | FaultKind::IsolateLeader => {
            let mut shuffled = ids.clone();
            shuffled.shuffle(&mut rng);
            let minority_size = (ids.len() - 1) / 2;
            let minority: Vec<u64> = match fault.kind {
                FaultKind::IsolateLeader => {
                    vec![leader.unwrap_or(shuffled[0])]
                }
                _ => shuffled[..minority_size.max(1)].to_vec(),
            };
            let majority: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|i| !minority.contains(i))
                .collect();
            let detail = format!(
                "minority {minority:?} | majority {majority:?} (leader was {leader:?}) for {:?}",
                fault.hold
            );
            record(history, fault, Phase::Start, &minority, &minority, detail);
            cluster.partition(&minority, &majority);
            tokio::time::sleep(fault.hold).await;
            cluster.heal_network();
            record(history, fault, Phase::End, &minority, &[], "healed".into());
        }
        FaultKind::FlappingBridge => {
            // Two sides joined only through one bridge node; the bridge's links to one side come
            // and go every few hundred milliseconds.
            let mut shuffled = ids.clone();
            shuffled.shuffle(&mut rng);
            let bridge = shuffled[0];
            let rest = &shuffled[1..];
            let (left, right) = rest.split_at(rest.len() / 2);
            let detail = format!(
                "{left:?} <-> bridge {bridge} <-> {right:?}, bridge to {right:?} flapping, for {:?}",
                fault.hold
            );
            record(history, fault, Phase::Start, &[bridge], &[], detail);
            cluster.partition(left, right);
            let end = tokio::time::Instant::now() + fault.hold;
            let mut up = true;
            for _ in 0..100 {
                let now = tokio::time::Instant::now();
                if now >= end {
                    break;
                }
                if up {
                    cluster.partition(&[bridge], right);
                } else {
                    cluster.heal_network();
                    cluster.partition(left, right);
                }
                up = !up;
                let step = Duration::from_millis(rng.gen_range(300..1200));
                tokio::time::sleep(step.min(end - now)).await;
            }
            cluster.heal_network();
            record(history, fault, Phase::End, &[bridge], &[], "healed".into());
        }
        FaultKind::SimDisconnect => {
            let s = rng.gen_range(0..cluster.sims.len());
            let detail = format!(
                "every connection to {} cut, reconnects refused for {:?}",
                cluster.sims[s].link, fault.hold
            );
            record(history, fault, Phase::Start, &[], &[], detail);
            for ((_, sim), proxy) in &cluster.sim_proxies {
                if *sim == s {
                    proxy.block();
                }
            }
            tokio::time::sleep(fault.hold).await;
            for ((_, sim), proxy) in &cluster.sim_proxies {
                if *sim == s {
                    proxy.unblock();
                }
            }
            record(
                history,
                fault,
                Phase::End,
                &[],
                &[],
                "reconnects allowed".into(),
            );
        }
        FaultKind::ClockSkewNode | FaultKind::ClockSkewLeader => {
            let target = match fault.kind {
                FaultKind::ClockSkewLeader => leader.or_else(|| pick(&mut rng, &ids)),
                _ => pick(&mut rng, &ids),
            };
            let Some(target) = target else { return };
            // Minutes to hours, ahead and then behind: an NTP step, a VM resume, a typo.
            const STEPS_SECS: [i64; 6] = [120, 600, 1800, 3600, 2 * 3600, 6 * 3600];
            let ahead = STEPS_SECS[rng.gen_range(0..STEPS_SECS.len())];
            let behind = -STEPS_SECS[rng.gen_range(0..STEPS_SECS.len())];
            let detail = format!(
                "wall clock {ahead:+} s, then {behind:+} s, {:?} in all (leader was {leader:?})",
                fault.hold
            );
            record(history, fault, Phase::Start, &[target], &[], detail);
            if let Err(e) = cluster.set_clock_offset(target, ahead) {
                eprintln!("chaos: {e:#}");
            }
            tokio::time::sleep(fault.hold / 2).await;
            if let Err(e) = cluster.set_clock_offset(target, behind) {
                eprintln!("chaos: {e:#}");
            }
            tokio::time::sleep(fault.hold - fault.hold / 2).await;
            if let Err(e) = cluster.set_clock_offset(target, 0) {
                eprintln!("chaos: {e:#}");
            }
            record(
                history,
                fault,
                Phase::End,
                &[target],
                &[],
                "wall clock back to the true time".into(),
            );
        }
        FaultKind::PowerLossOne | FaultKind::PowerLossMinority | FaultKind::PowerLossAll => {
            let mut shuffled = ids.clone();
            shuffled.shuffle(&mut rng);
            let count = match fault.kind {
                FaultKind::PowerLossOne => 1,
                FaultKind::PowerLossMinority => ((ids.len() - 1) / 2).max(1),
                _ => ids.len(),
            };
            let mut targets = shuffled[..count].to_vec();
            targets.sort();
            let tear = if rng.gen_bool(0.5) {
                Tear::LastWrite
            } else {
                Tear::None
            };
            let detail = format!(
                "SIGKILL and power cut (tear {tear:?}; leader was {leader:?}), dark for {:?}",
                fault.hold
            );
            // Recorded once the nodes are dark, not before: a submission that commits on nodes
            // the kill loop has not reached yet is not a recovery, and would make the kind's
            // unavailability look like a few milliseconds.
            if let Err(e) = cluster.power_cut(&targets, tear) {
                eprintln!("chaos: power cut of {targets:?}: {e:#}");
            }
            record(history, fault, Phase::Start, &targets, &[], detail);
            tokio::time::sleep(fault.hold).await;
            for &id in &targets {
                if let Err(e) = cluster.start_node(id) {
                    eprintln!("chaos: restarting node {id}: {e:#}");
                }
            }
            record(
                history,
                fault,
                Phase::End,
                &targets,
                &[],
                "power back, restarted".into(),
            );
        }
        FaultKind::DiskFull => {
            let target = leader_or_follower(&mut rng, &ids, leader);
            let Some(target) = target else { return };
            let Some(fs) = cluster.filesystem(target) else {
                return;
            };
            // Mostly a disk nearly full (below the node's reserve, where it must refuse writes
            // by itself); sometimes one that is full at once (every write ENOSPC).
            let hard = rng.gen_bool(0.3);
            let detail = if hard {
                fs.set_fault(Fault::NoSpace);
                format!(
                    "every write ENOSPC, 0 bytes free (leader was {leader:?}) for {:?}",
                    fault.hold
                )
            } else {
                let stats = fs.stats();
                let used = stats.durable_bytes + stats.unsynced_bytes;
                fs.set_capacity(Some(used + DISK_FULL_HEADROOM));
                format!(
                    "capacity {} MiB used + {} MiB (leader was {leader:?}) for {:?}",
                    used >> 20,
                    DISK_FULL_HEADROOM >> 20,
                    fault.hold
                )
            };
            record(history, fault, Phase::Start, &[target], &[], detail);
            tokio::time::sleep(fault.hold).await;
            fs.set_fault(Fault::None);
            fs.set_capacity(None);
            // Survived: nothing to do. Stopped by itself (allowed only for the hard variant,
            // where RocksDB's own write failed): started again.
            let end = match cluster.exited(target) {
                None => "space back; the node stayed up".to_string(),
                Some(status) => {
                    if let Err(e) = cluster.start_node(target) {
                        eprintln!("chaos: restarting node {target}: {e:#}");
                    }
                    let mark = if hard { "" } else { PROBLEM_MARK };
                    format!(
                        "{mark}space back; node {target} had stopped ({status}) on a disk \
                         {}, restarted",
                        if hard {
                            "with 0 bytes free"
                        } else {
                            "below its reserve"
                        }
                    )
                }
            };
            record(history, fault, Phase::End, &[target], &[], end);
        }
        FaultKind::FsyncEio => {
            let target = leader_or_follower(&mut rng, &ids, leader);
            let Some(target) = target else { return };
            let Some(fs) = cluster.filesystem(target) else {
                return;
            };
            let detail = format!(
                "fsync fails EIO until the node stops (leader was {leader:?}); restart {:?} later",
                fault.hold
            );
            record(history, fault, Phase::Start, &[target], &[], detail);
            fs.set_fault(Fault::FsyncEio);
            // It needs an fsync to fail first: the workload's writes (or a heartbeat's vote)
            // bring one within moments.
            let deadline = tokio::time::Instant::now() + FSYNC_EIO_STOP_LIMIT;
            let mut stopped = None;
            while tokio::time::Instant::now() < deadline {
                if let Some(status) = cluster.exited(target) {
                    stopped = Some(status);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let outcome = match stopped {
                Some(status) => format!("stopped by itself ({status})"),
                None => {
                    // A problem for the checker to report: it kept running on a failed fsync.
                    cluster.kill_node(target);
                    format!(
                        "{PROBLEM_MARK}node {target} still running {FSYNC_EIO_STOP_LIMIT:?} after \
                         its fsyncs began to fail; killed"
                    )
                }
            };
            fs.set_fault(Fault::None);
            tokio::time::sleep(fault.hold).await;
            if let Err(e) = cluster.start_node(target) {
                eprintln!("chaos: restarting node {target}: {e:#}");
            }
            record(
                history,
                fault,
                Phase::End,
                &[target],
                &[],
                format!("{outcome}; fault cleared, restarted"),
            );
        }
        FaultKind::SimStall => {
            let s = rng.gen_range(0..cluster.sims.len());
            let detail = format!("{} SIGSTOPped for {:?}", cluster.sims[s].link, fault.hold);
            record(history, fault, Phase::Start, &[], &[], detail);
            cluster.pause_sim(s);
            tokio::time::sleep(fault.hold).await;
            cluster.resume_sim(s);
            record(history, fault, Phase::End, &[], &[], "SIGCONT".into());
        }
    }
}

/// The seed and length of `tests/power_loss.rs`'s short run (its kinds: power, disk and fsync
/// faults and `clock-skew-leader`); here so that a unit test checks its schedule holds them all.
pub const POWER_LOSS_SEED: u64 = 20261206;
pub const POWER_LOSS_RUN_S: u64 = 75;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_power_loss_run_schedules_every_kind_and_the_clock_jump() {
        let kinds = [
            FaultKind::PowerLossOne,
            FaultKind::PowerLossMinority,
            FaultKind::PowerLossAll,
            FaultKind::DiskFull,
            FaultKind::FsyncEio,
            FaultKind::ClockSkewLeader,
        ];
        // The run's span: its length less the fault-free 5 s at the end (`chaos::run`).
        let s = schedule(
            POWER_LOSS_SEED,
            &kinds,
            Duration::from_secs(POWER_LOSS_RUN_S - 5),
            Duration::from_secs(5),
        );
        for kind in kinds {
            assert!(s.iter().any(|f| f.kind == kind), "{} missing", kind.name());
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_schedule() {
        let a = schedule(
            7,
            &FaultKind::KNOWN,
            Duration::from_secs(300),
            Duration::from_secs(5),
        );
        let b = schedule(
            7,
            &FaultKind::KNOWN,
            Duration::from_secs(300),
            Duration::from_secs(5),
        );
        let key = |s: &[ScheduledFault]| -> Vec<(Duration, FaultKind, Duration, u64)> {
            s.iter().map(|f| (f.at, f.kind, f.hold, f.draw)).collect()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(
            key(&a),
            key(&schedule(
                8,
                &FaultKind::KNOWN,
                Duration::from_secs(300),
                Duration::from_secs(5)
            ))
        );
    }

    #[test]
    fn the_short_run_schedules_every_kind() {
        // The seed and span of tests/chaos_short.rs.
        let s = schedule(
            20261125,
            &FaultKind::KNOWN
                .into_iter()
                .filter(|k| !k.needs_lossy_fs())
                .collect::<Vec<_>>(),
            Duration::from_secs(145),
            Duration::from_secs(5),
        );
        for kind in FaultKind::KNOWN.into_iter().filter(|k| !k.needs_lossy_fs()) {
            assert!(s.iter().any(|f| f.kind == kind), "{} missing", kind.name());
        }
    }

    #[test]
    fn fault_lists_parse_by_family_and_name() {
        let k = FaultKind::parse_list("kill,sim-stall").expect("valid");
        assert_eq!(k.len(), 5);
        assert!(FaultKind::parse_list("kill,bogus").is_err());
        assert_eq!(
            FaultKind::parse_list("all").expect("valid").len(),
            FaultKind::all().len()
        );
        assert_eq!(
            FaultKind::all().len() + FaultKind::skipped().len(),
            FaultKind::KNOWN.len()
        );
        for family in FaultKind::FAMILIES {
            assert!(FaultKind::KNOWN.iter().any(|k| k.family() == family));
            assert!(FaultKind::help().contains(family));
        }
        for kind in FaultKind::KNOWN {
            assert!(FaultKind::FAMILIES.contains(&kind.family()));
            assert!(FaultKind::help().contains(kind.name()), "{}", kind.name());
        }
    }
}
