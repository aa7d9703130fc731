//! The rolling upgrade, end to end: a three-node cluster of the OLD `herald` (the commit pinned
//! in `tests/upgrade/FROM`, built once into `target/upgrade/<commit>/` and reused) with links to
//! carrier simulators, under the fault harness's workload and history. Every node in turn is
//! drained, stopped (SIGTERM), started with the NEW binary on the same data directory and waited
//! for (a leader known, applied up to the leader's commit index), then undrained; once, a node
//! goes back to the old binary before finalizing and rejoins. Finalize is refused while a member
//! is older, then raises the cluster version to 2 on every node. The checker then requires zero
//! acknowledged messages lost, no divergent message or committed entry, carrier duplicates
//! within the bound, and every message terminal on every node.
//!
//! The old build is a full debug build (minutes; once per clean target directory). A commit
//! missing from the repository fails with a message saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_api::v1::admin_client::AdminClient;
use herald_api::v1::cluster_client::ClusterClient;
use herald_api::v1::{
    ClusterStatusRequest, ClusterStatusResponse, DrainNodeRequest, FinalizeUpgradeRequest,
};
use herald_tests::chaos::cluster::{ChaosCluster, Tuning};
use herald_tests::chaos::history::{History, Record};
use herald_tests::chaos::{checker, workload};
use herald_tests::wait_for;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The pinned old commit (`tests/upgrade/FROM`).
fn from_commit() -> String {
    let path = workspace().join("tests/upgrade/FROM");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.trim().to_string()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds (once) and returns the old `herald`: `git archive <commit>` unpacked into
/// `target/upgrade/<commit>/src`, built there with its own target directory. A lock file keeps
/// two tests from building at once; a finished binary is reused.
fn old_herald() -> PathBuf {
    let commit = from_commit();
    let root = workspace();
    let base = root.join("target/upgrade").join(&commit);
    let bin = base.join("target/debug/herald");
    std::fs::create_dir_all(&base).expect("creating target/upgrade");
    let lock = std::fs::File::create(base.with_extension("lock")).expect("the build lock file");
    // SAFETY: flock(2) on a file descriptor this function owns for the whole build.
    let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    assert_eq!(locked, 0, "locking the old build");
    if bin.exists() {
        return bin;
    }
    let known = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        known,
        "tests/upgrade/FROM names commit {commit}, which this repository does not have: \
         fetch the full history (a shallow clone lacks it) or pin a commit it has"
    );
    let src = base.join("src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).expect("creating the old source folder");
    eprintln!(
        "building the old herald {commit} in {} (once)",
        base.display()
    );
    run(
        Command::new("sh").arg("-c").arg(format!(
            "git -C '{}' archive {commit} | tar -x -C '{}'",
            root.display(),
            src.display()
        )),
        "unpacking the old source",
    );
    run(
        Command::new("cargo")
            .args(["build", "-p", "herald-node", "--bin", "herald"])
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", base.join("target")),
        "building the old herald",
    );
    assert!(bin.exists(), "the old build left no {}", bin.display());
    bin
}

async fn status(cluster: &ChaosCluster, id: u64) -> Option<ClusterStatusResponse> {
    let channel = cluster.channel(id, Duration::from_secs(5)).await?;
    ClusterClient::new(channel)
        .status(ClusterStatusRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

async fn admin(
    cluster: &ChaosCluster,
    id: u64,
) -> AdminClient<herald_node::cli::connect::ClientChannel> {
    AdminClient::new(
        cluster
            .channel(id, Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("no channel to node {id}")),
    )
}

/// Another running node than `node`.
fn other(cluster: &ChaosCluster, node: u64) -> u64 {
    cluster
        .running()
        .into_iter()
        .find(|id| *id != node)
        .expect("another running node")
}

/// The health gate: `node` knows a leader and has applied up to the commit index the leader
/// reported after `node` started.
async fn wait_ready(cluster: &ChaosCluster, node: u64) {
    wait_for(
        "the restarted node caught up with a leader",
        Duration::from_secs(90),
        || async {
            let s = status(cluster, node).await?;
            if s.leader == 0 {
                return None;
            }
            let leader = status(cluster, s.leader).await?;
            let mine = status(cluster, node).await?;
            (mine.applied_index >= leader.commit_index).then_some(())
        },
    )
    .await;
}

/// One step of the rolling upgrade: drain `node`, wait until its link slots moved, SIGTERM it,
/// start it with `binary` (None: the new one) and wait until it is ready, then undrain it.
/// Returns when (history ms) the node was stopped and when it was ready again.
async fn replace(
    cluster: &ChaosCluster,
    history: &History,
    node: u64,
    binary: Option<PathBuf>,
) -> (u64, u64) {
    let via = other(cluster, node);
    admin(cluster, via)
        .await
        .drain_node(DrainNodeRequest {
            node,
            drained: true,
            force: false,
        })
        .await
        .unwrap_or_else(|e| panic!("draining node {node}: {e}"));
    wait_for(
        "the drained node's link slots moved",
        Duration::from_secs(60),
        || async {
            let s = status(cluster, via).await?;
            (s.drained.contains(&node) && s.links.iter().all(|l| l.node != node)).then_some(())
        },
    )
    .await;
    let stopped_at = history.now();
    cluster.stop_node(node, Duration::from_secs(30));
    let which = if binary.is_some() { "old" } else { "new" };
    cluster.set_binary(node, binary);
    cluster.start_node(node).expect("starting the node again");
    wait_ready(cluster, node).await;
    let ready_at = history.now();
    admin(cluster, via)
        .await
        .drain_node(DrainNodeRequest {
            node,
            drained: false,
            force: false,
        })
        .await
        .unwrap_or_else(|e| panic!("undraining node {node}: {e}"));
    eprintln!(
        "node {node} now runs the {which} binary (stopped to ready: {} ms)",
        ready_at - stopped_at
    );
    (stopped_at, ready_at)
}

/// The longest time without an acknowledged attempt from `from` to the first acknowledgement
/// after `until` (history ms).
fn ack_gap(records: &[Record], from: u64, until: u64) -> Duration {
    let mut acks: Vec<u64> = records
        .iter()
        .filter_map(|r| match r {
            Record::Ok { t_ms, .. } => Some(*t_ms),
            _ => None,
        })
        .filter(|t| *t >= from)
        .collect();
    acks.sort_unstable();
    let mut prev = from;
    let mut longest = 0;
    for t in acks {
        longest = longest.max(t - prev);
        prev = t;
        if t > until {
            break;
        }
    }
    Duration::from_millis(longest)
}

async fn versions(cluster: &ChaosCluster, id: u64) -> (u32, Vec<(u64, String, u32)>) {
    let s = status(cluster, id).await.expect("status");
    (
        s.cluster_version,
        s.members
            .iter()
            .map(|m| (m.id, m.version.clone(), m.format_level))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_upgrade_under_load_loses_nothing_and_can_roll_back_before_finalize() {
    let old = old_herald();
    let _ = herald_tests::herald_bin();
    let dir = std::env::temp_dir().join(format!("herald-upgrade-{}", std::process::id()));
    let cluster = Arc::new(
        ChaosCluster::start_with_binary(&dir, 3, 2, Tuning::default(), Some(old.clone()))
            .await
            .expect("an old cluster starts"),
    );
    // The new nodes raise the cluster version only when told to (the test finalizes).
    for node in &cluster.nodes {
        let mut config = std::fs::read_to_string(&node.config).expect("config");
        config.push_str("\n[upgrades]\nauto-finalize = false\n");
        std::fs::write(&node.config, config).expect("config");
    }
    cluster
        .wait_for_leader(Duration::from_secs(60))
        .await
        .expect("the old cluster elects a leader");
    let history = Arc::new(History::create(&dir.join("history.jsonl")).expect("history"));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(workload::run(
        cluster.clone(),
        history.clone(),
        workload::WorkloadConfig {
            seed: 18,
            clients: 4,
            rate: 30.0,
            attempt_timeout: Duration::from_secs(12),
            op_limit: Duration::from_secs(60),
        },
        stop.clone(),
    ));
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut gaps = Vec::new();
    gaps.push((1, "new", replace(&cluster, &history, 1, None).await));
    let (level, members) = versions(&cluster, 1).await;
    assert_eq!(level, 1, "the cluster version rose before finalize");
    assert!(
        members
            .iter()
            .any(|(id, v, l)| *id == 2 && v == "older" && *l == 1),
        "an old member reads as older, format level 1: {members:?}"
    );
    assert!(
        members
            .iter()
            .any(|(id, v, l)| *id == 1 && v.contains('(') && *l == 2),
        "the new member reads with its version, format level 2: {members:?}"
    );
    let refused = admin(&cluster, 1)
        .await
        .finalize_upgrade(FinalizeUpgradeRequest {})
        .await
        .expect_err("finalize while members are older");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
    assert!(
        refused.message().contains("members [2, 3]"),
        "{}",
        refused.message()
    );

    gaps.push((2, "new", replace(&cluster, &history, 2, None).await));
    // Rollback before finalizing: node 2 goes back to the old binary and rejoins.
    gaps.push((
        2,
        "old",
        replace(&cluster, &history, 2, Some(old.clone())).await,
    ));
    gaps.push((2, "new", replace(&cluster, &history, 2, None).await));
    gaps.push((3, "new", replace(&cluster, &history, 3, None).await));

    let (level, members) = versions(&cluster, 3).await;
    assert_eq!(level, 1, "{members:?}");
    assert!(members.iter().all(|(_, _, l)| *l == 2), "{members:?}");
    let raised = admin(&cluster, 2)
        .await
        .finalize_upgrade(FinalizeUpgradeRequest {})
        .await
        .expect("finalize once every member is new")
        .into_inner();
    assert_eq!((raised.previous_version, raised.cluster_version), (1, 2));
    wait_for(
        "cluster version 2 on every node",
        Duration::from_secs(30),
        || async {
            for id in cluster.ids() {
                if status(&cluster, id).await?.cluster_version != 2 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.expect("the workload ends");
    history.flush();
    let upgrade_took = started.elapsed();
    let records = history.records();
    let gaps: Vec<(u64, &str, Duration)> = gaps
        .into_iter()
        .map(|(node, which, (from, until))| (node, which, ack_gap(&records, from, until)))
        .collect();

    let report = checker::check(
        &cluster,
        &history.records(),
        &checker::CheckConfig {
            drain_limit: Duration::from_secs(120),
        },
    )
    .await;
    eprintln!("{}", report.summary());
    eprintln!("rolling upgrade under load took {upgrade_took:?}; write gap per step (node, binary, gap): {gaps:?}");
    assert!(
        report.passed(),
        "the checker found problems; history and logs kept in {}\n{}",
        dir.display(),
        report.summary()
    );
    assert_eq!(report.lost, 0);
    assert_eq!(report.divergent, 0);
    assert!(
        report.acknowledged > 100,
        "too little work was done: {}",
        report.acknowledged
    );
    let _ = std::fs::remove_dir_all(&dir);
}
