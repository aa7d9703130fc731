//! Clock skew: a leader whose wall clock jumps 2 h ahead and a follower thrown 3 h back
//! (libfaketime, only the wall clock; OPERATIONS.md "Clocks") must not move any decision that
//! reads the clock by more than the documented bound: 90 s-validity messages are not expired, a
//! 40 s one expires on time, messages scheduled 20 s ahead reach the carrier neither early nor
//! late, and quiet hours are judged by the cluster's time, not the skewed node's. Then the clocks
//! are restored and the cluster carries on.
//!
//! On a build before the cluster clock this fails: the +2 h leader expires the 90 s messages at
//! once and releases the scheduled ones ~20 s early, and the skewed nodes hold bulk messages for
//! quiet hours that have not begun.

use std::time::{Duration, Instant};

use herald_api::v1::{MessageState, Priority, SubmitRequest};
use herald_tests::{wait_for, Cluster, LinkSpec, Options, SimSpec};

/// How much earlier than its time a message may expire or be released (OPERATIONS.md, "Clocks":
/// half a sample's round trip plus the spread of the majority's clocks, with margin).
const EARLY_BOUND_MS: i64 = 1000;
/// How much later: the leader's 250 ms timer tick, a commit, a send and the carrier's answer.
const LATE_BOUND_MS: i64 = 5000;

const AHEAD_S: i64 = 2 * 3600;
const BEHIND_S: i64 = -3 * 3600;

fn true_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn link(name: &str, sim: &str) -> LinkSpec {
    LinkSpec {
        name: name.into(),
        sim: sim.into(),
        max_window: 16,
        max_per_second: 200,
        connections: 1,
    }
}

fn message(to: &str, text: &str) -> SubmitRequest {
    SubmitRequest {
        recipients: vec![to.into()],
        text: text.into(),
        ..Default::default()
    }
}

/// Submits through node `node` (retrying there: the point is which node's clock stamps it).
async fn submit_via(cluster: &Cluster, node: u64, req: SubmitRequest) -> String {
    wait_for(
        &format!("node {node} to acknowledge {:?}", req.text),
        Duration::from_secs(30),
        || async {
            let mut client = cluster.messaging(node).await?;
            match client.submit(req.clone()).await {
                Ok(r) => Some(r.into_inner().message_id),
                Err(status) => {
                    assert_ne!(
                        status.code(),
                        tonic::Code::InvalidArgument,
                        "node {node} refused a valid submission: {status}"
                    );
                    None
                }
            }
        },
    )
    .await
}

async fn state_on(cluster: &Cluster, node: u64, id: &str) -> Option<MessageState> {
    let m = cluster.get_message(node, id).await?;
    MessageState::try_from(m.state).ok()
}

/// Node `id`'s `herald_clock_offset_seconds` (None: a build without it).
async fn offset_metric(cluster: &Cluster, id: u64) -> Option<f64> {
    let reply = cluster.http_get(id, "/metrics").await.ok()?;
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix("herald_clock_offset_seconds "))
        .and_then(|v| v.trim().parse().ok())
}

/// Jumps node `id`'s clock by `secs` and waits until the node measures itself `secs` off the
/// voters' median (its wall clock moved, and it holds a majority's samples). A build without the
/// cluster clock has no such metric: then until a message submitted through the node is stamped
/// `secs` off the true time.
async fn jump(cluster: &Cluster, id: u64, secs: i64) {
    cluster.set_clock_offset(id, secs);
    let mut probes = 0;
    wait_for(
        &format!("node {id}'s wall clock to be {secs:+} s off"),
        Duration::from_secs(20),
        || {
            probes += 1;
            let probe = probes;
            async move {
                let seen = cluster.observed_clock_offset(id)?;
                if (seen - secs).abs() > 2 {
                    return None;
                }
                if let Some(measured) = offset_metric(cluster, id).await {
                    return ((measured - secs as f64).abs() < 2.0).then_some(());
                }
                let text = format!("clock probe {probe} via {id}");
                let before = true_now_ms();
                let probe = submit_via(
                    cluster,
                    id,
                    SubmitRequest {
                        link: "gw".into(),
                        ..message("13800138000", &text)
                    },
                )
                .await;
                let stamped = cluster.get_message(id, &probe).await?.submitted_at_ms as i64;
                ((stamped - before) / 1000 - secs)
                    .abs()
                    .le(&2)
                    .then_some(())
            }
        },
    )
    .await;
}

/// When the carrier first received the message whose text is `text` (its true clock, ms).
fn at_carrier(cluster: &Cluster, sim: &str, text: &str) -> Option<i64> {
    cluster
        .sim_lines(sim)
        .iter()
        .filter(|v| v["kind"] == "submit" && v["text"] == text)
        .filter_map(|v| v["at_ms"].as_i64())
        .min()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_two_hours_ahead_and_a_follower_three_hours_behind_move_no_decision() {
    if let Err(why) = herald_tests::faketime::library() {
        panic!("this test jumps clocks with libfaketime: {why}");
    }
    let cluster = Cluster::start(Options {
        sims: vec![
            SimSpec {
                name: "gw".into(),
                args: Vec::new(),
            },
            SimSpec {
                name: "gone".into(),
                args: Vec::new(),
            },
        ],
        links: vec![link("gw", "gw"), link("nowhere", "gone")],
        fake_clocks: true,
        ..Options::default()
    });
    // A link whose gateway is gone: what is queued there waits until it expires.
    cluster.kill_sim("gone");
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|n| *n != leader).collect();
    let (behind, steady) = (followers[0], followers[1]);

    // Bulk is quiet except from 2.5 h before now to 1.5 h after (UTC): both skews land in it,
    // the true time does not.
    let now = chrono::Utc::now();
    let policy = format!(
        "time-zone = \"UTC\"\n[classes.bulk]\nquiet-hours = {{ from = \"{}\", to = \"{}\" }}\n",
        (now + chrono::Duration::minutes(90)).format("%H:%M:%S"),
        (now - chrono::Duration::minutes(150)).format("%H:%M:%S"),
    );
    cluster.set_policy(leader, &policy).await;

    jump(&cluster, leader, AHEAD_S).await;
    jump(&cluster, behind, BEHIND_S).await;
    eprintln!("leader {leader} is {AHEAD_S:+} s, follower {behind} {BEHIND_S:+} s, {steady} true");

    // Through each node: a 90 s message and a 40 s one on the dead link, one scheduled 20 s
    // ahead (by the true clock) and one bulk message on the live link.
    let mut long_lived = Vec::new();
    let mut short_lived = Vec::new();
    let mut scheduled = Vec::new();
    let mut bulk = Vec::new();
    for node in [leader, behind, steady] {
        let t0 = true_now_ms();
        long_lived.push(
            submit_via(
                &cluster,
                node,
                SubmitRequest {
                    link: "nowhere".into(),
                    validity_seconds: 90,
                    ..message("13800138001", &format!("ninety seconds via {node}"))
                },
            )
            .await,
        );
        short_lived.push((
            t0,
            submit_via(
                &cluster,
                node,
                SubmitRequest {
                    link: "nowhere".into(),
                    validity_seconds: 40,
                    ..message("13800138002", &format!("forty seconds via {node}"))
                },
            )
            .await,
        ));
        let send_at = true_now_ms() + 20_000;
        let text = format!("scheduled via {node}");
        let id = submit_via(
            &cluster,
            node,
            SubmitRequest {
                link: "gw".into(),
                send_at_ms: send_at as u64,
                ..message("13800138003", &text)
            },
        )
        .await;
        scheduled.push((send_at, text, id));
        let text = format!("bulk via {node}");
        let id = submit_via(
            &cluster,
            node,
            SubmitRequest {
                link: "gw".into(),
                priority: Priority::Bulk as i32,
                ..message("13800138004", &text)
            },
        )
        .await;
        bulk.push((true_now_ms(), text, id));
    }

    // Quiet hours: the cluster's time is outside them, so bulk goes at once.
    for (submitted, text, id) in &bulk {
        let state = state_on(&cluster, leader, id).await;
        assert_ne!(
            state,
            Some(MessageState::Scheduled),
            "{text} ({id}) was held for quiet hours that have not begun"
        );
        let at = wait_for(
            &format!("{text} to reach the carrier"),
            Duration::from_secs(15),
            || async { at_carrier(&cluster, "gw", text) },
        )
        .await;
        assert!(
            at - submitted < LATE_BOUND_MS,
            "{text}: {} ms",
            at - submitted
        );
    }

    // The control: quiet hours are in force — a bulk message asked for 2 h from now (inside
    // them, by the true clock) waits.
    let control = submit_via(
        &cluster,
        steady,
        SubmitRequest {
            link: "gw".into(),
            priority: Priority::Bulk as i32,
            send_at_ms: (true_now_ms() + AHEAD_S * 1000) as u64,
            ..message("13800138004", "bulk in two hours")
        },
    )
    .await;
    assert_eq!(
        state_on(&cluster, steady, &control).await,
        Some(MessageState::Scheduled),
        "quiet hours are not in force: the test would prove nothing"
    );

    // Scheduled messages: released neither early nor more than the bound late.
    for (send_at, text, id) in &scheduled {
        let at = wait_for(
            &format!("{text} ({id}) to reach the carrier"),
            Duration::from_secs(40),
            || async { at_carrier(&cluster, "gw", text) },
        )
        .await;
        let off = at - send_at;
        eprintln!("{text}: at the carrier {off:+} ms from its send time");
        assert!(
            off >= -EARLY_BOUND_MS,
            "{text} ({id}) was released {} ms before its send time",
            -off
        );
        assert!(
            off <= LATE_BOUND_MS,
            "{text} ({id}) was released {off} ms after its send time"
        );
    }

    // The 40 s messages expire on time, by the true clock, and not early.
    for (t0, id) in &short_lived {
        let seen = wait_for(
            &format!("{id} (40 s validity) to expire"),
            Duration::from_secs(60),
            || async {
                (state_on(&cluster, steady, id).await == Some(MessageState::Expired))
                    .then(true_now_ms)
            },
        )
        .await;
        let off = seen - (t0 + 40_000);
        eprintln!("{id}: expired {off:+} ms from the end of its validity");
        assert!(off >= -EARLY_BOUND_MS, "{id} expired {} ms early", -off);
        assert!(off <= LATE_BOUND_MS, "{id} expired {off} ms late");
    }
    // The 90 s ones outlived all of that (about 40 s), still waiting for their gateway.
    for id in &long_lived {
        let state = state_on(&cluster, steady, id).await;
        assert!(
            !matches!(state, Some(MessageState::Expired) | None),
            "{id} (90 s validity) is {state:?} after about 40 s"
        );
    }

    // Restore: every node measures itself on time again, and the cluster still takes writes.
    let started = Instant::now();
    jump(&cluster, leader, 0).await;
    jump(&cluster, behind, 0).await;
    eprintln!("clocks restored in {:?}", started.elapsed());
    let after = submit_via(
        &cluster,
        behind,
        message("13800138005", "after the restore"),
    )
    .await;
    cluster
        .wait_all_delivered(steady, &[after], Duration::from_secs(15))
        .await;
}
