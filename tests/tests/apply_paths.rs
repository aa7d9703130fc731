//! The fuzz harnesses of `herald_tests::fuzz` under proptest, so `cargo test` exercises the
//! write path past the decoders on every run (a few hundred cases each; the libFuzzer targets in
//! `tests/fuzz/` go much deeper), plus every input a fuzzer found a bug with.
//!
//! No process is started here: the harnesses call the node's validation and the projection
//! directly, over in-memory stores.

use std::path::Path;

use herald_tests::fuzz::{encoded_batches, event_batch_apply, submissions_apply, TARGETS};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Scenarios drawn from random bytes: submissions through validation, policy changes,
    /// the cluster's events; apply never fails and two stores hold the same bytes.
    #[test]
    fn random_scenarios_apply_the_same_on_two_stores(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        submissions_apply(&data);
    }

    /// Encoded entries of arbitrary events, whole or with bytes changed, as log payloads.
    #[test]
    fn event_batches_apply_whole_or_corrupted(
        data in prop::collection::vec(any::<u8>(), 0..1024),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        for mut batch in encoded_batches(&data) {
            event_batch_apply(&batch);
            if batch.is_empty() {
                continue;
            }
            for (at, byte) in &edits {
                let i = at.index(batch.len());
                batch[i] = *byte;
            }
            event_batch_apply(&batch);
            for len in 0..batch.len().min(64) {
                event_batch_apply(&batch[..len]);
            }
        }
    }

    /// Random bytes as a payload: they rarely decode, but nothing may panic when they do.
    #[test]
    fn random_bytes_as_an_entry(data in prop::collection::vec(any::<u8>(), 0..256)) {
        event_batch_apply(&data);
    }
}

/// Every input a fuzzer found a bug with (`tests/fuzz/regressions/<target>/`) and every
/// committed seed (`tests/fuzz/corpus/<target>/`) runs through its harness.
#[test]
fn fuzz_regressions_and_seeds_run_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for (target, harness) in TARGETS {
        for dir in ["regressions", "corpus"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                let data = std::fs::read(&path).expect("an input file reads");
                harness(&data);
                ran += 1;
            }
        }
    }
    assert!(ran > 0, "no seeds found under {}", root.display());
}

/// The scenarios reach the projection: random inputs get submissions accepted and refused,
/// events applied and policies changed. A harness that refused everything would pass the
/// properties above without testing anything.
#[test]
fn random_scenarios_reach_apply() {
    let mut total = herald_tests::fuzz::Reach::default();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..200 {
        let data: Vec<u8> = (0..2048)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let reach = herald_tests::fuzz::scenario_reach(&data);
        total.accepted += reach.accepted;
        total.refused += reach.refused;
        total.applied += reach.applied;
        total.policies += reach.policies;
    }
    println!("{total:?}");
    assert!(total.accepted > 50, "{total:?}");
    assert!(total.refused > 50, "{total:?}");
    assert!(total.applied > total.accepted, "{total:?}");
    assert!(total.policies > 0, "{total:?}");
}

/// Writes the fuzzers' seeds (`tests/fuzz/corpus/<target>/`): scenarios and encoded entries
/// from fixed pseudo-random bytes. Run it again when the harnesses change:
/// `cargo test -p herald-tests --test apply_paths -- --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let scenarios = root.join("submissions_apply");
    std::fs::create_dir_all(&scenarios).expect("corpus directory");
    for i in 0..16 {
        std::fs::write(
            scenarios.join(format!("seed_{i:02}")),
            bytes(512 << (i % 4)),
        )
        .expect("seed written");
    }
    let batches = root.join("event_batch_apply");
    std::fs::create_dir_all(&batches).expect("corpus directory");
    let mut n = 0;
    for _ in 0..8 {
        for batch in encoded_batches(&bytes(256)).into_iter().take(4) {
            std::fs::write(batches.join(format!("seed_{n:02}")), batch).expect("seed written");
            n += 1;
        }
    }
}
