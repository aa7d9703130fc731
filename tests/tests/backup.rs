//! Backup and restore with real processes: a cluster's messages (delivered, refused by the
//! carrier, scheduled, canceled, queued, expired), subscribers' replies, the policy, client systems and their keys
//! survive `herald backup` → `herald restore` into a fresh cluster; a damaged backup is refused
//! with a clear error and writes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_api::v1::{
    AdminListRepliesRequest, CancelMessageRequest, GetPolicyRequest, ListAuditRequest,
    MessageState, SubmitRequest,
};
use herald_tests::{text, wait_for, Cluster, LinkSpec, Options, SimSpec};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn request(to: &str, key: &str) -> SubmitRequest {
    SubmitRequest {
        recipients: vec![to.into()],
        text: format!("backup {key}"),
        idempotency_key: key.into(),
        link: "cmpp-sim".into(),
        ..Default::default()
    }
}

fn link(name: &str, sim: &str) -> LinkSpec {
    LinkSpec {
        name: name.into(),
        sim: sim.into(),
        max_window: 16,
        max_per_second: 1000,
        connections: 1,
    }
}

/// Both clusters: a simulator that sends MOs and refuses 1390000…, and a link whose gateway is
/// gone (its messages wait, or expire).
fn options() -> Options {
    Options {
        sims: vec![
            SimSpec {
                name: "cmpp".into(),
                args: vec![
                    "--mo-every-ms".into(),
                    "300".into(),
                    // Nobody wrote to this subscriber: its replies are unrouted.
                    "--mo-from".into(),
                    "13700000000".into(),
                    "--reject-dest".into(),
                    "1390000=13".into(),
                ],
            },
            SimSpec {
                name: "gone".into(),
                args: Vec::new(),
            },
        ],
        links: vec![link("cmpp-sim", "cmpp"), link("nowhere", "gone")],
        ..Options::default()
    }
}

async fn state_of(cluster: &Cluster, node: u64, id: &str) -> Option<i32> {
    cluster.get_message(node, id).await.map(|m| m.state)
}

async fn unrouted_replies(cluster: &Cluster, node: u64) -> Vec<String> {
    let mut admin = cluster.admin(node).await.expect("admin");
    admin
        .list_replies(AdminListRepliesRequest {
            unrouted: true,
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("replies")
        .into_inner()
        .replies
        .into_iter()
        .map(|r| format!("{} {} {}", r.reply_id, r.from, r.text))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_into_a_fresh_cluster_keeps_messages_replies_policy_and_clients() {
    let old = Cluster::start(options());
    old.kill_sim("gone");
    old.wait_for_leader(Duration::from_secs(30)).await;
    let policy_version = old.set_policy(1, "[classes.bulk]\nweight = 3\n").await;
    let erp_key = old.create_client(1, "erp", "sender").await;

    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    for (name, to) in [("delivered", "13800138000"), ("refused", "13900001234")] {
        let id = old
            .submit_until_acked(&request(to, name), 0, Duration::from_secs(30))
            .await
            .expect("acknowledged");
        ids.insert(name, id);
    }
    let mut scheduled = request("13800138001", "scheduled");
    scheduled.send_at_ms = now_ms() + 3_600_000;
    let mut canceled = request("13800138002", "canceled");
    canceled.send_at_ms = now_ms() + 3_600_000;
    for (name, req) in [("scheduled", scheduled), ("canceled", canceled)] {
        let id = old
            .submit_until_acked(&req, 0, Duration::from_secs(30))
            .await
            .expect("acknowledged");
        ids.insert(name, id);
    }
    // Queued on a link nobody can run, and one that expires there.
    let queued = SubmitRequest {
        link: "nowhere".into(),
        ..request("13800138004", "queued")
    };
    let expiring = SubmitRequest {
        link: "nowhere".into(),
        validity_seconds: 2,
        ..request("13800138005", "expired")
    };
    for (name, req) in [("queued", queued), ("expired", expiring)] {
        let id = old
            .submit_until_acked(&req, 0, Duration::from_secs(30))
            .await
            .expect("acknowledged");
        ids.insert(name, id);
    }
    let mut erp = old
        .messaging_as(1, &erp_key)
        .await
        .expect("the client's connection");
    let erp_id = erp
        .submit(request("13800138003", "erp-1"))
        .await
        .expect("the client submits")
        .into_inner()
        .message_id;
    ids.insert("erp", erp_id.clone());
    old.messaging(1)
        .await
        .expect("client")
        .cancel_message(CancelMessageRequest {
            message_id: ids["canceled"].clone(),
        })
        .await
        .expect("canceled");
    old.wait_all_delivered(
        1,
        &[ids["delivered"].clone(), erp_id.clone()],
        Duration::from_secs(60),
    )
    .await;
    wait_for(
        "the refusal, the expiry and some replies",
        Duration::from_secs(60),
        || async {
            let refused = state_of(&old, 1, &ids["refused"]).await?;
            let terminal =
                ![MessageState::Accepted as i32, MessageState::Sending as i32].contains(&refused);
            let expired = state_of(&old, 1, &ids["expired"]).await? == MessageState::Expired as i32;
            (terminal && expired && !unrouted_replies(&old, 1).await.is_empty()).then_some(())
        },
    )
    .await;

    // What the backup must hold, read before it is taken.
    let mut states = BTreeMap::new();
    for (name, id) in &ids {
        states.insert(*name, state_of(&old, 1, id).await.expect("readable"));
    }
    // Every state a message can rest in here (SENDING lasts milliseconds).
    let distinct: std::collections::BTreeSet<i32> = states.values().copied().collect();
    assert!(distinct.len() >= 6, "states {states:?}");
    let replies_before = unrouted_replies(&old, 1).await;
    let dir = old.dir.path().to_path_buf();
    let backup = dir.join("cluster.backup");
    let out = old.herald(&[
        "backup",
        "--endpoint",
        &old.node(2).grpc,
        "--out",
        backup.to_str().expect("a UTF-8 path"),
    ]);
    assert!(
        out.status.success(),
        "herald backup: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("sha256"),
        "{}",
        text(&out.stdout)
    );
    let actions: Vec<String> = old
        .admin(1)
        .await
        .expect("admin")
        .list_audit(ListAuditRequest {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner()
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.iter().any(|a| a == "cluster.backup"), "{actions:?}");

    // Damaged copies are refused, naming the problem, and leave no data directory behind.
    let bytes = std::fs::read(&backup).expect("the backup");
    let damaged = [
        (
            "truncated",
            bytes[..bytes.len() - 100].to_vec(),
            "truncated or extended",
        ),
        (
            "flipped",
            {
                let mut b = bytes.clone();
                let middle = b.len() / 2;
                b[middle] ^= 0x55;
                b
            },
            "checksum mismatch",
        ),
        (
            "foreign",
            b"not a backup at all".to_vec(),
            "not a Herald backup",
        ),
    ];
    for (name, content, why) in damaged {
        let file = dir.join(format!("{name}.backup"));
        std::fs::write(&file, content).expect("writing a damaged copy");
        let target = dir.join(format!("restored-{name}"));
        let out = old.herald(&[
            "restore",
            "--from",
            file.to_str().expect("UTF-8"),
            "--data-dir",
            target.to_str().expect("UTF-8"),
            "--node-id",
            "1",
            "--raft",
            "127.0.0.1:1",
        ]);
        assert!(!out.status.success(), "{name} accepted");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(why), "{name}: {stderr}");
        assert!(
            !target.exists(),
            "{name}: the restore wrote {}",
            target.display()
        );
    }

    // A fresh cluster (new addresses, its own simulator) from the backup.
    let new = Cluster::start(Options {
        nodes: 1,
        restore_from: Some(backup.clone()),
        ..options()
    });
    new.kill_sim("gone");
    let leader = new.wait_for_leader(Duration::from_secs(30)).await;
    assert_eq!(leader, 1);
    for (name, id) in &ids {
        let state = state_of(&new, 1, id).await;
        assert_eq!(
            state,
            Some(states[name]),
            "message {name} ({id}) after the restore"
        );
    }
    let replies_after = unrouted_replies(&new, 1).await;
    for reply in &replies_before {
        assert!(
            replies_after.contains(reply),
            "reply {reply} lost: {replies_after:?}"
        );
    }
    let policy = new
        .admin(1)
        .await
        .expect("admin")
        .get_policy(GetPolicyRequest {})
        .await
        .expect("policy")
        .into_inner();
    assert_eq!(policy.version, policy_version);
    // The client's key still works there, and the message is still its own.
    let mut erp = new
        .messaging_as(1, &erp_key)
        .await
        .expect("the client's connection");
    let mine = erp
        .get_message(herald_api::v1::GetMessageRequest {
            message_id: erp_id.clone(),
        })
        .await
        .expect("the restored client reads its message")
        .into_inner();
    assert_eq!(mine.state, MessageState::Delivered as i32);
    // And the restored cluster takes new work.
    let fresh = new
        .submit_until_acked(
            &request("13800138009", "after-restore"),
            0,
            Duration::from_secs(30),
        )
        .await
        .expect("the restored cluster acknowledges");
    new.wait_all_delivered(1, &[fresh], Duration::from_secs(60))
        .await;
}
