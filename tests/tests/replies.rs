//! Replies (mobile-originated messages) end to end, with real processes: a three-node cluster,
//! one carrier link of two connections (placed on two different nodes), and a CMPP simulator that
//! injects a long MO every so often with its parts spread over both connections. Each reply is
//! joined once in the replicated projection, routed (unrouted, then to the last sender, then by
//! the policy's rule), and fetched by the client it belongs to — from any node, resuming after
//! the last id it saw.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use herald_api::v1::messaging_client::MessagingClient;
use herald_api::v1::{
    AdminListRepliesRequest, ListRepliesRequest, Reply, SubmitRequest, SubscribeRepliesRequest,
};
use herald_node::cli::connect::ClientChannel;
use herald_tests::{wait_for, Cluster, LinkSpec, Options, SimSpec};
use secrecy::{ExposeSecret as _, SecretString};

const SUBSCRIBER: &str = "13900139000";
/// The SP number 106900019 with extension 1.
const SP_EXTENSION: &str = "1069000191";

/// A reply of three UCS2 parts (67 characters each).
fn long_text() -> String {
    format!(
        "{}。请回复TD退订",
        "您好，这是一条很长的上行短信，".repeat(11)
    )
}

/// The key of the client system `name` of `cluster` (a sender), created on first use.
async fn key_of(cluster: &Cluster, name: &str) -> SecretString {
    static KEYS: Mutex<Vec<(PathBuf, String, SecretString)>> = Mutex::new(Vec::new());
    let dir = cluster.dir.path().to_path_buf();
    let known = |keys: &Vec<(PathBuf, String, SecretString)>| {
        keys.iter()
            .find(|(d, n, _)| *d == dir && n == name)
            .map(|(_, _, k)| k.clone())
    };
    if let Some(key) = known(&KEYS.lock().expect("keys")) {
        return key;
    }
    let key = cluster.create_client(1, name, "sender").await;
    KEYS.lock()
        .expect("keys")
        .push((dir, name.to_string(), key.clone()));
    key
}

/// A messaging client of `node` calling as the client system `name`.
async fn as_client(
    cluster: &Cluster,
    node: u64,
    name: &str,
) -> Option<MessagingClient<ClientChannel>> {
    let key = key_of(cluster, name).await;
    cluster.messaging_as(node, &key).await
}

async fn list(cluster: &Cluster, node: u64, client: &str, after_id: u64) -> Vec<Reply> {
    let Some(mut messaging) = as_client(cluster, node, client).await else {
        return Vec::new();
    };
    messaging
        .list_replies(ListRepliesRequest {
            after_id,
            limit: 1000,
        })
        .await
        .map(|r| r.into_inner().replies)
        .unwrap_or_default()
}

async fn unrouted(cluster: &Cluster, node: u64) -> Vec<Reply> {
    let Some(mut admin) = cluster.admin(node).await else {
        return Vec::new();
    };
    admin
        .list_replies(AdminListRepliesRequest {
            unrouted: true,
            limit: 1000,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().replies)
        .unwrap_or_default()
}

/// Waits until `client` has at least `n` replies (read from `node`); returns them.
async fn wait_replies(cluster: &Cluster, node: u64, client: &str, n: usize) -> Vec<Reply> {
    wait_for(
        &format!("{n} replies for {client:?}"),
        Duration::from_secs(60),
        || async {
            let replies = list(cluster, node, client, 0).await;
            (replies.len() >= n).then_some(replies)
        },
    )
    .await
}

/// The first `n` replies a subscription started after `after_id` delivers.
async fn subscribe(
    cluster: &Cluster,
    node: u64,
    client: &str,
    after_id: u64,
    n: usize,
) -> Vec<Reply> {
    let mut messaging = as_client(cluster, node, client)
        .await
        .expect("reaching a node");
    let mut stream = messaging
        .subscribe_replies(SubscribeRepliesRequest { after_id })
        .await
        .expect("subscribed")
        .into_inner();
    let mut got = Vec::new();
    while got.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("a reply within a minute")
            .expect("the stream stays open")
            .expect("a reply, not an error");
        got.push(next);
    }
    got
}

/// A three-node cluster with one link of two connections to a simulator that sends the long text
/// from [`SUBSCRIBER`] to [`SP_EXTENSION`] on each connection every `mo_every_ms`, its parts
/// spread over both connections.
fn start(mo_every_ms: u64) -> Cluster {
    let args = [
        "--mo-every-ms".to_string(),
        mo_every_ms.to_string(),
        "--mo-text".to_string(),
        long_text(),
        "--mo-from".to_string(),
        SUBSCRIBER.to_string(),
        "--mo-to".to_string(),
        SP_EXTENSION.to_string(),
        "--mo-spread".to_string(),
    ];
    Cluster::start(Options {
        sims: vec![SimSpec {
            name: "carrier".into(),
            args: args.to_vec(),
        }],
        links: vec![LinkSpec {
            name: "cmpp-mo".into(),
            sim: "carrier".into(),
            max_window: 16,
            max_per_second: 100,
            connections: 2,
        }],
        ..Options::default()
    })
}

/// The injected messages the simulator recorded: the parts' carrier ids of each, by number.
fn injected(cluster: &Cluster) -> HashMap<BTreeSet<String>, u64> {
    let mut by_parts = HashMap::new();
    for line in cluster
        .sim_lines("carrier")
        .iter()
        .filter(|l| l["kind"] == "mo")
    {
        let ids: BTreeSet<String> = line["msg_ids"]
            .as_array()
            .expect("msg_ids")
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        by_parts.insert(ids, line["mo"].as_u64().expect("mo number"));
    }
    by_parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_reply_over_two_connections_on_two_nodes_is_joined_once_and_reaches_its_client() {
    let text = long_text();
    let cluster = start(1500);
    cluster.wait_for_leader(Duration::from_secs(30)).await;

    // Nobody has written to the subscriber and no rule matches: the replies are unrouted, and an
    // operator sees them. Some reply's parts came over both connections, held by two nodes.
    let spread = wait_for(
        "an unrouted reply whose parts came on two connections of two nodes",
        Duration::from_secs(60),
        || async {
            unrouted(&cluster, 3).await.into_iter().find(|r| {
                let slots: HashSet<&str> = r.parts.iter().map(|p| p.slot.as_str()).collect();
                let nodes: HashSet<u64> = r.parts.iter().map(|p| p.node).collect();
                slots.len() == 2 && nodes.len() == 2
            })
        },
    )
    .await;
    assert_eq!(spread.text, text);
    assert!(spread.complete);
    assert_eq!((spread.total_parts, spread.received_parts), (3, 3));
    assert_eq!(
        (spread.from.as_str(), spread.to.as_str()),
        (SUBSCRIBER, SP_EXTENSION)
    );
    assert_eq!(
        (spread.client_id.as_str(), spread.routed_by.as_str()),
        ("", "")
    );
    println!(
        "reply {} joined from parts on slots {:?}",
        spread.reply_id,
        spread
            .parts
            .iter()
            .map(|p| (p.slot.clone(), p.node))
            .collect::<Vec<_>>()
    );

    // The "ops" system writes to the subscriber: the next replies are routed to it.
    let mut messaging = as_client(&cluster, 1, "ops")
        .await
        .expect("reaching node 1");
    messaging
        .submit(SubmitRequest {
            recipients: vec![format!("+86{SUBSCRIBER}")],
            text: "Your ticket is closed; reply to reopen".into(),
            ..Default::default()
        })
        .await
        .expect("submitted");
    let ops = wait_replies(&cluster, 2, "ops", 1).await;
    assert!(ops
        .iter()
        .all(|r| r.client_id == "ops" && r.routed_by == "last-sender"));

    // A rule sends replies to this SP extension to "crm", whoever wrote last.
    cluster
        .set_policy(
            1,
            &format!("[[replies.rules]]\ndest-prefix = \"{SP_EXTENSION}\"\nclient = \"crm\"\n"),
        )
        .await;
    let crm = wait_replies(&cluster, 3, "crm", 3).await;
    assert!(crm
        .iter()
        .all(|r| r.client_id == "crm" && r.routed_by == "rule"));
    assert!(crm.iter().all(|r| r.text == text && r.complete));

    // A client sees only its own replies.
    let ops_ids: HashSet<u64> = list(&cluster, 1, "ops", 0)
        .await
        .iter()
        .map(|r| r.reply_id)
        .collect();
    assert!(crm.iter().all(|r| !ops_ids.contains(&r.reply_id)));
    assert!(list(&cluster, 1, "nobody", 0).await.is_empty());

    // The crm system follows its replies on node 2, sees the first, goes away, and comes back on
    // node 3 with the last id it saw: it gets the next one, and nothing it had already.
    let first = subscribe(&cluster, 2, "crm", 0, 1).await;
    assert_eq!(first[0].reply_id, crm[0].reply_id);
    let resumed = subscribe(&cluster, 3, "crm", first[0].reply_id, 2).await;
    assert_eq!(resumed[0].reply_id, crm[1].reply_id);
    assert!(resumed[1].reply_id > resumed[0].reply_id);
    let listed_after = list(&cluster, 1, "crm", first[0].reply_id).await;
    assert!(listed_after.iter().all(|r| r.reply_id > first[0].reply_id));
    assert_eq!(listed_after[0].reply_id, crm[1].reply_id);

    // The command line shows the same thing: `herald replies --after ID` with crm's key.
    let crm_key = key_of(&cluster, "crm").await;
    let output = std::process::Command::new(herald_tests::herald_bin())
        .args(["replies", "--endpoint", &cluster.node(2).grpc, "--json"])
        .envs(cluster.client_env())
        .env("HERALD_API_KEY", crm_key.expose_secret())
        .args(["--after", &first[0].reply_id.to_string()])
        .output()
        .expect("running herald replies");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines[0]["reply_id"].as_u64(), Some(crm[1].reply_id));
    assert!(lines
        .iter()
        .all(|l| l["text"] == text.as_str() && l["client_id"] == "crm"));

    // Every reply is one MO the carrier sent, joined once: its parts' carrier ids are exactly
    // one injected message's, and no two replies share a message.
    let mut all: Vec<Reply> = unrouted(&cluster, 1).await;
    all.extend(list(&cluster, 1, "ops", 0).await);
    all.extend(list(&cluster, 1, "crm", 0).await);
    let by_parts = injected(&cluster);
    let mut seen = HashSet::new();
    for r in &all {
        let ids: BTreeSet<String> = r.parts.iter().map(|p| p.carrier_id.clone()).collect();
        let Some(mo) = by_parts.get(&ids) else {
            panic!("reply {} is no injected message: {ids:?}", r.reply_id);
        };
        assert!(seen.insert(*mo), "message {mo} became two replies");
    }
    let ids: Vec<u64> = {
        let mut ids: Vec<u64> = all.iter().map(|r| r.reply_id).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "reply ids run without gaps"
    );
    println!("{} replies, each one injected message", all.len());
}

/// Which injected message each part belongs to.
fn message_of_part(injected: &HashMap<BTreeSet<String>, u64>) -> HashMap<String, u64> {
    injected
        .iter()
        .flat_map(|(ids, mo)| ids.iter().map(move |id| (id.clone(), *mo)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_message_loses_no_acknowledged_part_and_duplicates_no_reply() {
    let text = long_text();
    let cluster = start(400);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    cluster
        .set_policy(
            1,
            &format!(
                "[replies]\nincomplete-after-ms = 3000\n[[replies.rules]]\n\
                 dest-prefix = \"{SP_EXTENSION}\"\nclient = \"crm\"\n"
            ),
        )
        .await;
    let before = wait_replies(&cluster, 1, "crm", 3).await;

    // SIGKILL the node holding the second connection while parts keep arriving on both.
    let holder = wait_for(
        "the second connection's holder",
        Duration::from_secs(30),
        || async {
            let status = cluster.status(1).await?;
            status
                .links
                .iter()
                .find(|l| l.link == "cmpp-mo#1" && l.node != 0)
                .map(|l| l.node)
        },
    )
    .await;
    cluster.kill_node(holder);
    let alive = *cluster.running().first().expect("two nodes still run");
    println!(
        "killed node {holder} holding cmpp-mo#1 after {} replies",
        before.len()
    );
    wait_replies(&cluster, alive, "crm", before.len() + 6).await;

    // The carrier vanishes: what it sent and never had acknowledged is gone with it. Messages
    // left missing parts are closed by the leader after 3 s, marked incomplete.
    cluster.kill_sim("carrier");
    let injected = injected(&cluster);
    let part_to_message = message_of_part(&injected);
    let acked: HashSet<String> = cluster
        .sim_lines("carrier")
        .iter()
        .filter(|l| l["kind"] == "mo_acked")
        .filter_map(|l| l["msg_id"].as_str().map(String::from))
        .collect();
    let messages_acked: BTreeSet<u64> = acked
        .iter()
        .filter_map(|id| part_to_message.get(id).copied())
        .collect();
    let replies = wait_for(
        "a reply for every message the carrier had any part of acknowledged",
        Duration::from_secs(60),
        || async {
            let mut all = unrouted(&cluster, alive).await;
            all.extend(list(&cluster, alive, "crm", 0).await);
            let replied: BTreeSet<u64> = all
                .iter()
                .filter_map(|r| r.parts.first())
                .filter_map(|p| part_to_message.get(&p.carrier_id).copied())
                .collect();
            messages_acked.is_subset(&replied).then_some(all)
        },
    )
    .await;

    let mut replied_messages = HashSet::new();
    let mut incomplete = 0;
    for r in &replies {
        let ids: BTreeSet<String> = r.parts.iter().map(|p| p.carrier_id.clone()).collect();
        let messages: BTreeSet<u64> = ids
            .iter()
            .filter_map(|id| part_to_message.get(id).copied())
            .collect();
        assert_eq!(
            messages.len(),
            1,
            "reply {} mixes messages {messages:?}",
            r.reply_id
        );
        let mo = *messages.first().expect("one message");
        assert!(
            replied_messages.insert(mo),
            "message {mo} became two replies"
        );
        let all_parts = injected
            .iter()
            .find(|(_, m)| **m == mo)
            .map(|(ids, _)| ids)
            .expect("injected");
        // Every part the carrier saw acknowledged is in the reply.
        for id in all_parts.iter().filter(|id| acked.contains(*id)) {
            assert!(
                ids.contains(id),
                "message {mo}: acknowledged part {id} lost"
            );
        }
        assert_eq!(r.complete, ids == *all_parts, "reply {}", r.reply_id);
        if r.complete {
            assert_eq!(r.text, text);
        } else {
            incomplete += 1;
        }
    }
    println!(
        "{} messages with an acknowledged part, {} replies ({incomplete} incomplete), none twice",
        messages_acked.len(),
        replies.len()
    );
}
