//! API keys, roles and the audit trail against real `herald` processes, one test per row of the
//! issue's matrix: no key, a wrong key and a revoked key are UNAUTHENTICATED; a sender changing
//! the policy, draining a node or reading another client's message or replies is
//! PERMISSION_DENIED naming the permission; a rotated key works and the old one stops when
//! revoked, on every node; `herald audit` on another node names who changed what; a flood of bad
//! keys is throttled while a good client is served; keys appear in no log and no stored event.

use std::time::{Duration, Instant};

use herald_api::v1::{
    AdminListRepliesRequest, DrainNodeRequest, FinalizeUpgradeRequest, GetMessageRequest,
    GetPolicyRequest, ListRepliesRequest, RevokeKeyRequest, RotateKeyRequest, SetPolicyRequest,
    SubmitRequest, SubscribeRepliesRequest,
};
use herald_tests::{channel, herald_bin, wait_for, Cluster, Options};
use secrecy::{ExposeSecret as _, SecretString};

fn cluster(nodes: u64) -> Cluster {
    Cluster::start(Options {
        nodes,
        ..Options::default()
    })
}

fn message(text: &str) -> SubmitRequest {
    SubmitRequest {
        recipients: vec!["13800138000".into()],
        text: text.into(),
        ..Default::default()
    }
}

/// The key id of a key (`hrd_<id>_…`).
fn key_id(key: &SecretString) -> String {
    key.expose_secret()[4..16].to_string()
}

/// The secret part of a key: what must never be printed.
fn secret_of(key: &SecretString) -> String {
    key.expose_secret()[17..].to_string()
}

/// Submits one message through `node` with `key`.
async fn submit(
    cluster: &Cluster,
    node: u64,
    key: &SecretString,
    text: &str,
) -> Result<String, tonic::Status> {
    let mut client = cluster.messaging_as(node, key).await.expect("connects");
    client
        .submit(message(text))
        .await
        .map(|r| r.into_inner().message_id)
}

/// A second key for the client `name`, made by the admin through `node` (shown once).
async fn rotate_key(cluster: &Cluster, node: u64, name: &str) -> SecretString {
    let mut admin = cluster.admin(node).await.expect("admin");
    let key = admin
        .rotate_key(RotateKeyRequest { name: name.into() })
        .await
        .expect("rotated")
        .into_inner()
        .key;
    SecretString::from(key)
}

fn assert_unauthenticated(result: Result<String, tonic::Status>, says: &str, secret: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status}");
    assert!(status.message().contains(says), "{status}");
    assert!(
        secret.is_empty() || !status.message().contains(secret),
        "the refusal quotes the key: {status}"
    );
}

fn assert_denied<T: std::fmt::Debug>(result: Result<T, tonic::Status>, permission: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    assert!(
        status
            .message()
            .contains(&format!("needs the permission {permission}")),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_a_wrong_key_and_a_revoked_key_are_unauthenticated() {
    let cluster = cluster(1);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let endpoint = cluster.node(1).grpc.clone();

    // No key at all: a client connecting without one (over TLS, trusting the cluster's CA).
    let mut anonymous = herald_api::v1::messaging_client::MessagingClient::new(
        herald_node::cli::connect::Connector::new(&endpoint)
            .ca_pem(herald_tests::test_ca().ca_pem())
            .channel()
            .await
            .expect("connects"),
    );
    let started = Instant::now();
    let refused = anonymous
        .submit(message("no key"))
        .await
        .map(|_| String::new());
    assert_unauthenticated(refused, "no API key", "");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "a failed authentication is answered after a delay"
    );

    // A known key id with a wrong secret.
    let erp = cluster.create_client(1, "erp", "sender").await;
    let wrong = SecretString::from(format!("hrd_{}_{}", key_id(&erp), "B".repeat(43)));
    assert_unauthenticated(
        submit(&cluster, 1, &wrong, "wrong secret").await,
        &format!("wrong secret for key id {}", key_id(&erp)),
        &"B".repeat(43),
    );

    // The right key works, then stops once revoked.
    submit(&cluster, 1, &erp, "with its key")
        .await
        .expect("a good key is served");
    let mut admin = cluster.admin(1).await.expect("admin");
    admin
        .revoke_key(RevokeKeyRequest {
            name: "erp".into(),
            key_id: key_id(&erp),
        })
        .await
        .expect("revoked");
    assert_unauthenticated(
        submit(&cluster, 1, &erp, "revoked").await,
        &format!("key {} was revoked", key_id(&erp)),
        &secret_of(&erp),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_setting_the_policy_or_draining_a_node_is_denied_naming_the_permission() {
    let cluster = cluster(1);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let sender = cluster.create_client(1, "erp", "sender").await;
    let channel = channel(&cluster.node(1).grpc, &sender)
        .await
        .expect("connects");
    let mut admin = herald_api::v1::admin_client::AdminClient::new(channel);
    assert_denied(
        admin
            .set_policy(SetPolicyRequest {
                document: String::new(),
                expected_version: 0,
            })
            .await,
        "policy.set",
    );
    assert_denied(
        admin
            .drain_node(DrainNodeRequest {
                node: 1,
                drained: true,
                force: true,
            })
            .await,
        "nodes.drain",
    );
    assert_denied(
        admin.finalize_upgrade(FinalizeUpgradeRequest {}).await,
        "cluster.finalize",
    );
    assert_denied(admin.get_policy(GetPolicyRequest {}).await, "policy.read");
    // Nothing changed: the policy is still at version 0 and nobody is drained.
    let mut real_admin = cluster.admin(1).await.expect("admin");
    let policy = real_admin
        .get_policy(GetPolicyRequest {})
        .await
        .expect("the admin reads the policy")
        .into_inner();
    assert_eq!(policy.version, 0);
    let status = cluster.status(1).await.expect("status");
    assert!(status.drained.is_empty(), "{:?}", status.drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_reading_another_clients_message_or_replies_is_denied_naming_the_permission() {
    let cluster = cluster(1);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let erp = cluster.create_client(1, "erp", "sender").await;
    let crm = cluster.create_client(1, "crm", "sender").await;
    let id = submit(&cluster, 1, &erp, "erp's own")
        .await
        .expect("submitted");

    // Its owner reads it; another sender may not, nor cancel it.
    let mut as_erp = cluster.messaging_as(1, &erp).await.expect("connects");
    let own = as_erp
        .get_message(GetMessageRequest {
            message_id: id.clone(),
        })
        .await
        .expect("the owner reads its message")
        .into_inner();
    assert_eq!(own.message_id, id);
    let mut as_crm = cluster.messaging_as(1, &crm).await.expect("connects");
    assert_denied(
        as_crm
            .get_message(GetMessageRequest {
                message_id: id.clone(),
            })
            .await,
        "messages.read-all",
    );
    assert_denied(
        as_crm
            .cancel_message(herald_api::v1::CancelMessageRequest {
                message_id: id.clone(),
            })
            .await,
        "messages.cancel-all",
    );
    // Its own replies it may list; erp's (through the Admin API) it may not.
    as_crm
        .list_replies(ListRepliesRequest {
            after_id: 0,
            limit: 10,
        })
        .await
        .expect("its own replies");
    let mut admin_as_crm = herald_api::v1::admin_client::AdminClient::new(
        channel(&cluster.node(1).grpc, &crm)
            .await
            .expect("connects"),
    );
    assert_denied(
        admin_as_crm
            .list_replies(AdminListRepliesRequest {
                client_id: "erp".into(),
                ..Default::default()
            })
            .await,
        "replies.read-all",
    );
    // An operator reads every client's messages.
    let ops = cluster.create_client(1, "ops", "operator").await;
    let mut as_ops = cluster.messaging_as(1, &ops).await.expect("connects");
    as_ops
        .get_message(GetMessageRequest { message_id: id })
        .await
        .expect("an operator reads any message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_works_and_the_old_one_stops_on_every_node_when_revoked() {
    let cluster = cluster(3);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let old = cluster.create_client(1, "erp", "sender").await;
    let new = rotate_key(&cluster, 2, "erp").await;
    let mut admin = cluster.admin(2).await.expect("admin");
    // A third live key is refused: at most two.
    let third = admin
        .rotate_key(RotateKeyRequest { name: "erp".into() })
        .await
        .expect_err("a third key");
    assert_eq!(third.code(), tonic::Code::FailedPrecondition, "{third}");
    assert!(third.message().contains("at most 2"), "{third}");

    for node in 1..=3 {
        wait_for(
            &format!("both keys to work on node {node}"),
            Duration::from_secs(10),
            || async {
                let a = submit(&cluster, node, &old, "old key").await.ok()?;
                let b = submit(&cluster, node, &new, "new key").await.ok()?;
                Some((a, b))
            },
        )
        .await;
    }
    // A reply stream opened with the old key before the revocation does not outlive it.
    let mut open_stream = cluster
        .messaging_as(2, &old)
        .await
        .expect("connects")
        .subscribe_replies(SubscribeRepliesRequest { after_id: 0 })
        .await
        .expect("a sender may follow its replies")
        .into_inner();
    admin
        .revoke_key(RevokeKeyRequest {
            name: "erp".into(),
            key_id: key_id(&old),
        })
        .await
        .expect("revoked");
    let ended = tokio::time::timeout(Duration::from_secs(10), open_stream.message())
        .await
        .expect("the open stream ends within 10 s of the revocation")
        .expect_err("it ends with an error, not a reply");
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended}");
    assert!(ended.message().contains("was revoked"), "{ended}");
    for node in 1..=3 {
        wait_for(
            &format!("the old key to stop on node {node}"),
            Duration::from_secs(10),
            || async {
                let refused = submit(&cluster, node, &old, "old key").await.err()?;
                (refused.code() == tonic::Code::Unauthenticated).then_some(())
            },
        )
        .await;
        submit(&cluster, node, &new, "new key")
            .await
            .unwrap_or_else(|e| panic!("the new key works on node {node}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_audit_on_another_node_lists_who_changed_what_with_principal_and_key_id() {
    let cluster = cluster(3);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let erp = cluster.create_client(1, "erp", "sender").await;
    let ops = cluster.create_client(1, "ops", "operator").await;
    // The operator changes the policy and drains and undrains a node.
    let mut admin_as_ops = herald_api::v1::admin_client::AdminClient::new(
        channel(&cluster.node(1).grpc, &ops)
            .await
            .expect("connects"),
    );
    admin_as_ops
        .set_policy(SetPolicyRequest {
            document: "[[routes]]\nname = \"all\"\nlinks = [\"cmpp-sim\"]\n".into(),
            expected_version: 0,
        })
        .await
        .expect("the operator sets the policy");
    for drained in [true, false] {
        admin_as_ops
            .drain_node(DrainNodeRequest {
                node: 3,
                drained,
                force: false,
            })
            .await
            .expect("the operator drains");
    }
    // The sender cancels one of its scheduled messages.
    let mut as_erp = cluster.messaging_as(1, &erp).await.expect("connects");
    let later = as_erp
        .submit(SubmitRequest {
            send_at_ms: herald_raft_now() + 3_600_000,
            ..message("later")
        })
        .await
        .expect("scheduled")
        .into_inner()
        .message_id;
    as_erp
        .cancel_message(herald_api::v1::CancelMessageRequest {
            message_id: later.clone(),
        })
        .await
        .expect("canceled");
    // The admin rotates and revokes erp's key.
    let rotated = rotate_key(&cluster, 1, "erp").await;
    let mut admin = cluster.admin(1).await.expect("admin");
    admin
        .revoke_key(RevokeKeyRequest {
            name: "erp".into(),
            key_id: key_id(&erp),
        })
        .await
        .expect("revoked");

    // Node 2 lists it all, from its own copy of the log.
    let admin_key_id = key_id(cluster.admin_key());
    let expected = [
        (
            "bootstrap-admin",
            admin_key_id.clone(),
            "client.create",
            format!("client erp role sender key {}", key_id(&erp)),
        ),
        (
            "bootstrap-admin",
            admin_key_id.clone(),
            "client.key.add",
            format!("client erp key {}", key_id(&rotated)),
        ),
        ("ops", key_id(&ops), "policy.set", "version 1".to_string()),
        ("ops", key_id(&ops), "node.drain", "node 3".to_string()),
        ("ops", key_id(&ops), "node.undrain", "node 3".to_string()),
        (
            "erp",
            key_id(&erp),
            "message.cancel",
            format!("message {later}"),
        ),
        (
            "bootstrap-admin",
            admin_key_id.clone(),
            "client.key.revoke",
            format!("client erp key {}", key_id(&erp)),
        ),
    ];
    let entries = wait_for(
        "node 2's audit trail to hold every change",
        Duration::from_secs(15),
        || async {
            let out = std::process::Command::new(herald_bin())
                .args(["audit", "--endpoint", &cluster.node(2).grpc, "--json"])
                .envs(cluster.client_env())
                .env("HERALD_API_KEY", cluster.admin_key_text())
                .output()
                .ok()?;
            let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let seen = |(p, k, a, d): &(&str, String, &str, String)| {
                entries.iter().any(|e| {
                    e["principal"] == *p
                        && e["key_id"] == *k
                        && e["action"] == *a
                        && e["detail"] == *d
                })
            };
            expected.iter().all(seen).then_some(entries)
        },
    )
    .await;
    // In log order, and --principal keeps one principal's.
    let pos = |action: &str| entries.iter().position(|e| e["action"] == action);
    assert!(pos("client.create") < pos("policy.set"));
    assert!(pos("policy.set") < pos("message.cancel"));
    let out = std::process::Command::new(herald_bin())
        .args([
            "audit",
            "--endpoint",
            &cluster.node(3).grpc,
            "--principal",
            "ops",
        ])
        .envs(cluster.client_env())
        .env("HERALD_API_KEY", cluster.admin_key_text())
        .output()
        .expect("herald audit");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 3, "{printed}");
    assert!(
        printed
            .lines()
            .all(|l| l.contains(&format!("ops (key {})", key_id(&ops)))),
        "{printed}"
    );
    // A sender may not read it.
    let out = std::process::Command::new(herald_bin())
        .args(["audit", "--endpoint", &cluster.node(2).grpc])
        .envs(cluster.client_env())
        .env("HERALD_API_KEY", erp.expose_secret())
        .output()
        .expect("herald audit");
    assert!(!out.status.success());
}

fn herald_raft_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_bad_keys_is_throttled_and_a_good_client_is_still_served() {
    let cluster = cluster(1);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let good = cluster.create_client(1, "erp", "sender").await;
    let endpoint = cluster.node(1).grpc.clone();

    // 200 calls with bad keys, 50 at a time, from this one address.
    let flood = tokio::spawn(async move {
        let mut codes = Vec::new();
        for round in 0..4 {
            let calls = (0..50).map(|i| {
                let endpoint = endpoint.clone();
                async move {
                    let bad = SecretString::from(format!(
                        "hrd_{:012x}_{}",
                        round * 50 + i,
                        "C".repeat(43)
                    ));
                    let channel = channel(&endpoint, &bad).await?;
                    let mut client =
                        herald_api::v1::messaging_client::MessagingClient::new(channel);
                    client.submit(message("bad")).await.err().map(|s| s.code())
                }
            });
            codes.extend(futures::future::join_all(calls).await.into_iter().flatten());
        }
        codes
    });
    // Meanwhile the good client is served, promptly.
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let started = Instant::now();
        submit(&cluster, 1, &good, &format!("good {i}"))
            .await
            .expect("the good client is served during the flood");
        slowest = slowest.max(started.elapsed());
    }
    let codes = flood.await.expect("the flood ran");
    assert_eq!(codes.len(), 200, "every bad call was refused");
    let throttled = codes
        .iter()
        .filter(|c| **c == tonic::Code::ResourceExhausted)
        .count();
    let unauthenticated = codes
        .iter()
        .filter(|c| **c == tonic::Code::Unauthenticated)
        .count();
    assert_eq!(throttled + unauthenticated, 200, "{codes:?}");
    assert!(
        throttled >= 100,
        "most of the flood is throttled: {throttled} of 200"
    );
    assert!(
        unauthenticated >= 20,
        "the burst is answered as such: {unauthenticated}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a good call took {slowest:?}"
    );
    // The node logged the failures, a few lines only, and counted them.
    let log = cluster.log_of(1);
    let lines = log.matches("failed authentication from").count();
    assert!((1..=30).contains(&lines), "{lines} lines about failures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_appear_in_no_log_and_the_log_stores_only_their_hash() {
    let cluster = cluster(1);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let erp = cluster.create_client(1, "erp", "sender").await;
    let rotated = rotate_key(&cluster, 1, "erp").await;
    let mut admin = cluster.admin(1).await.expect("admin");
    submit(&cluster, 1, &erp, "hello").await.expect("submitted");
    // Failures too: a wrong secret for a known id, a revoked key.
    let _ = submit(
        &cluster,
        1,
        &SecretString::from(format!("hrd_{}_{}", key_id(&erp), "D".repeat(43))),
        "wrong",
    )
    .await;
    admin
        .revoke_key(RevokeKeyRequest {
            name: "erp".into(),
            key_id: key_id(&erp),
        })
        .await
        .expect("revoked");
    let _ = submit(&cluster, 1, &erp, "revoked").await;
    let out = std::process::Command::new(herald_bin())
        .args(["client", "show", "erp", "--endpoint", &cluster.node(1).grpc])
        .envs(cluster.client_env())
        .env("HERALD_API_KEY", cluster.admin_key_text())
        .output()
        .expect("herald client show");
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        shown.contains(&key_id(&erp)) && shown.contains("revoked"),
        "{shown}"
    );

    // `herald client create` prints the key alone on stdout: a script captures it and it works.
    let out = std::process::Command::new(herald_bin())
        .args([
            "client",
            "create",
            "billing",
            "--role",
            "sender",
            "--endpoint",
            &cluster.node(1).grpc,
        ])
        .envs(cluster.client_env())
        .env("HERALD_API_KEY", cluster.admin_key_text())
        .output()
        .expect("herald client create");
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(printed.lines().count(), 1, "{printed}");
    let billing = SecretString::from(printed.trim().to_string());
    assert!(billing.expose_secret().starts_with("hrd_"));
    submit(&cluster, 1, &billing, "from a script")
        .await
        .expect("the printed key works");
    let keys = [&erp, &rotated, &billing, cluster.admin_key()];

    let log = cluster.log_of(1);
    assert!(log.contains("failed authentication"), "failures are logged");
    for key in keys {
        let secret = secret_of(key);
        assert!(
            !log.contains(&secret),
            "a key's secret is in the node's log"
        );
        assert!(!shown.contains(&secret), "a key's secret is in client show");
    }

    // The stored log and projection: stop the node, read every value of its database.
    cluster.kill_node(1);
    let db = herald_raft::db::open_read_only(&cluster.dir.path().join("node1").join("db"))
        .expect("the stopped node's database");
    let mut values = 0;
    let mut hashes_found = 0;
    for cf in herald_raft::db::ALL_CFS {
        let handle = db.cf_handle(cf).expect("column family");
        for item in db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
            let (_, value) = item.expect("readable");
            values += 1;
            for key in keys {
                let secret = secret_of(key);
                assert!(
                    !value.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "column family {cf} holds a key's secret"
                );
            }
            for key in [&erp, &rotated] {
                let hash = herald_node::service::auth::sha256(key.expose_secret());
                if value.windows(32).any(|w| w == hash) {
                    hashes_found += 1;
                }
            }
        }
    }
    assert!(values > 0);
    assert!(
        hashes_found >= 2,
        "the log and the client list hold the keys' hashes ({hashes_found} values)"
    );
}
