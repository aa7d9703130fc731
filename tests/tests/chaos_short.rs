//! The short chaos run that is part of `scripts/test`: three nodes, two carrier simulators, a fixed
//! seed, every kind of fault at least once, about two and a half minutes of workload. The checker
//! must find nothing lost, duplicated beyond the bound, unexpected or divergent.
//!
//! A failing run keeps its history, node logs and data in the directory it prints; rerun the same
//! seed with `herald-chaos --nodes 3 --duration 150s --seed <seed>` (RELIABILITY.md).

use std::time::Duration;

use herald_tests::chaos::{self, ChaosConfig, FaultKind};

/// Seeds kept as regressions: each one once found a bug (see RELIABILITY.md). The first is the
/// general-purpose seed of the short run.
const SEEDS: &[u64] = &[20261125];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_every_fault_kind_nothing_lost() {
    let _ = herald_tests::herald_bin();
    for &seed in SEEDS {
        let dir =
            std::env::temp_dir().join(format!("herald-chaos-short-{seed}-{}", std::process::id()));
        let mut config = ChaosConfig::new(3, Duration::from_secs(150), seed, dir.clone());
        // The power, disk and fsync kinds have their own short run (tests/power_loss.rs).
        config.faults = FaultKind::short_run();
        let report = chaos::run(&config).await.expect("the chaos harness runs");
        eprintln!("{}", report.summary());
        for kind in FaultKind::short_run() {
            assert!(
                report.faults.contains_key(kind.name()),
                "seed {seed}: the schedule never injected {}",
                kind.name()
            );
        }
        assert!(
            report.passed(),
            "seed {seed}: the checker found problems; history and logs kept in {}\n{}",
            dir.display(),
            report.summary()
        );
        assert!(
            report.acknowledged > 1000,
            "seed {seed}: too little work was done"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
