//! TLS against real processes, one test per row of the matrix: what each port admits
//! (plaintext to TLS, TLS to plaintext), which peers the internal port refuses (another CA, an
//! expired certificate, a node that is not a member, a node of another cluster), certificates
//! reloaded under load and a broken replacement refused, and the transport limits (an oversize
//! request, a stream flood, a connection flood).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_api::v1::cluster_client::ClusterClient;
use herald_api::v1::internal_client::InternalClient;
use herald_api::v1::messaging_client::MessagingClient;
use herald_api::v1::{ClusterStatusRequest, RaftRequest, SubmitRequest, SubscribeRepliesRequest};
use herald_node::cli::connect::ClientChannel;
use herald_node::cli::connect::Connector;
use herald_node::tls::certs::Validity;
use herald_node::tls::{client, NodeIdentity};
use herald_tests::{herald_bin, tls_section, wait_for, Cluster, Options, TestCa};

fn one_node(insecure: bool) -> Cluster {
    Cluster::start(Options {
        nodes: 1,
        insecure,
        ..Options::default()
    })
}

fn host_of(addr: &str) -> String {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string()
}

fn submit(text: &str) -> SubmitRequest {
    SubmitRequest {
        recipients: vec!["13800138000".into()],
        text: text.into(),
        ..Default::default()
    }
}

/// Waits until node `id`'s log contains `needle`; returns the log.
async fn log_says(cluster: &Cluster, id: u64, needle: &str) -> String {
    wait_for(
        &format!("node {id}'s log to say {needle:?}"),
        Duration::from_secs(20),
        || async {
            let log = cluster.log_of(id);
            log.contains(needle).then_some(log)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_refused_by_a_tls_port() {
    let cluster = one_node(false);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let addr = cluster.node(1).grpc.clone();
    // Without a CA the connector speaks plaintext HTTP/2: the node answers no call of it.
    let plain = Connector::new(&addr)
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(5));
    let refused = match plain.channel().await {
        Err(_) => true,
        Ok(channel) => ClusterClient::new(channel)
            .status(ClusterStatusRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "a plaintext call to a TLS port was answered");
    log_says(&cluster, 1, "TLS connection refused").await;
    // The same node answers a TLS client.
    assert!(cluster.status(1).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_is_refused_by_a_plaintext_port() {
    let cluster = one_node(true);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let temp = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new(temp.path(), "test");
    let result = Connector::new(&cluster.node(1).grpc)
        .ca_pem(ca.ca_pem())
        .connect_timeout(Duration::from_secs(2))
        .channel()
        .await;
    let error = result.expect_err("a TLS handshake with a plaintext port succeeded");
    let printed = format!("{:#}", anyhow::Error::from(error));
    assert!(printed.starts_with("cannot reach"), "{printed}");
    // The insecure node says so at start.
    let log = cluster.log_of(1);
    assert!(log.contains("insecure = true"), "{log}");
}

/// Calls `Internal.Raft` on node 1 as a peer presenting `cert`/`key`; Ok if the node answered
/// (even with an error status about the payload), Err with why the call failed in transport
/// or was refused by the peer check.
async fn raft_call_as(
    cluster: &Cluster,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(), String> {
    let ca = cluster.tls.as_ref().expect("a TLS cluster");
    let config =
        client::client_config_with_cert(&ca.ca_pem(), cert, key).map_err(|e| e.to_string())?;
    let server = NodeIdentity::new(&ca.cluster, 1)
        .expect("identity")
        .dns_name();
    let channel = client::channel_to(
        &cluster.node(1).raft,
        config,
        &server,
        Duration::from_secs(5),
    )
    .await?;
    let reply = InternalClient::new(channel)
        .raft(RaftRequest {
            method: "vote".into(),
            payload: Vec::new(),
        })
        .await;
    match reply {
        Ok(_) => Ok(()),
        // The node read the request: the payload (empty) is what it refused, not the caller.
        Err(status) if status.code() == tonic::Code::InvalidArgument => Ok(()),
        Err(status) => Err(status.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_certificate_is_let_in_and_one_from_another_ca_is_refused() {
    let cluster = one_node(false);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let tls_dir = cluster.dir.path().join("tls");
    // Control: node 1's own certificate (a member) reaches the Raft service.
    let (cert, key) = (tls_dir.join("node1.pem"), tls_dir.join("node1.key"));
    raft_call_as(&cluster, &cert, &key)
        .await
        .expect("a member's call is answered");

    // The same identity (herald://test/node/1) from another CA.
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other = TestCa::new(other_dir.path(), "test");
    let (cert, key) = other.node_cert(
        other_dir.path(),
        1,
        &[],
        Validity::days(30).expect("days"),
        None,
    );
    let error = raft_call_as(&cluster, &cert, &key)
        .await
        .expect_err("a certificate from another CA was let in");
    eprintln!("refused as it should be: {error}");
    // Its issuer's name is this CA's, its signature is not: refused either way.
    let log = log_says(&cluster, 1, "TLS connection refused").await;
    assert!(
        log.contains("invalid peer certificate: BadSignature")
            || log.contains("invalid peer certificate: UnknownIssuer"),
        "the log says why: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_peer_certificate_is_refused() {
    let cluster = one_node(false);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let ca = cluster.tls.as_ref().expect("TLS");
    let tls_dir = cluster.dir.path().join("tls");
    let (cert, key) = ca.node_cert(&tls_dir, 1, &[], Validity::expired(), Some("expired"));
    raft_call_as(&cluster, &cert, &key)
        .await
        .expect_err("an expired certificate was let in");
    let log = log_says(&cluster, 1, "TLS connection refused").await;
    assert!(
        log.contains("invalid peer certificate: certificate expired"),
        "the log says why: {log}"
    );

    // A node given an expired certificate refuses to start, naming the file.
    let config = cluster.dir.path().join("expired.toml");
    let node = cluster.node(1);
    std::fs::write(
        &config,
        format!(
            "node-id = 1\ngrpc-listen = \"127.0.0.1:1\"\nraft-listen = \"127.0.0.1:2\"\n\
             data-dir = \"{}\"\npeers = [{{ id = 1, grpc = \"{}\", raft = \"{}\" }}]\n{}",
            cluster.dir.path().join("never").display(),
            node.grpc,
            node.raft,
            tls_section("test", &ca.ca_path(), &cert, &key)
        ),
    )
    .expect("writing a config");
    let out = std::process::Command::new(herald_bin())
        .args(["node", "--config"])
        .arg(&config)
        .output()
        .expect("herald node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("expired at") && stderr.contains("expired.pem"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_identity_is_not_a_member_is_refused() {
    let cluster = one_node(false);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let ca = cluster.tls.as_ref().expect("TLS");
    // Node 9: the right CA, the right cluster, not a member.
    let (cert, key) = ca.node_cert(
        &cluster.dir.path().join("tls"),
        9,
        &[],
        Validity::days(30).expect("days"),
        None,
    );
    raft_call_as(&cluster, &cert, &key)
        .await
        .expect_err("a non-member was let in");
    let log = log_says(&cluster, 1, "is not a member of this cluster").await;
    assert!(log.contains("herald://test/node/9"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_with_another_clusters_certificates_cannot_join() {
    let cluster = Cluster::start(Options::default());
    let (leader, term) = cluster
        .wait_for_settled_leader(Duration::from_secs(30))
        .await;

    // Node 4 of cluster "other" (its own CA) names the three members and itself as peers and
    // starts with --bootstrap: it initialises and asks the members for votes.
    let dir = cluster.dir.path().join("other");
    let other = TestCa::new(&dir, "other");
    let host = host_of(&cluster.node(1).grpc);
    let ip = format!(
        "{}.9",
        host.rsplit_once('.').map_or(host.as_str(), |(net, _)| net)
    );
    let (grpc, raft) = (format!("{ip}:7101"), format!("{ip}:7151"));
    let (cert, key) = other.node_cert(
        &dir,
        4,
        std::slice::from_ref(&ip),
        Validity::days(30).expect("days"),
        None,
    );
    let mut peers = String::new();
    for n in &cluster.nodes {
        peers.push_str(&format!(
            "[[peers]]\nid = {}\ngrpc = \"{}\"\nraft = \"{}\"\n\n",
            n.id, n.grpc, n.raft
        ));
    }
    peers.push_str(&format!(
        "[[peers]]\nid = 4\ngrpc = \"{grpc}\"\nraft = \"{raft}\"\n\n"
    ));
    let config = dir.join("node4.toml");
    std::fs::write(
        &config,
        format!(
            "node-id = 4\ngrpc-listen = \"{grpc}\"\nraft-listen = \"{raft}\"\ndata-dir = \"{}\"\n\n\
             [raft]\nheartbeat-ms = 150\nelection-timeout-min-ms = 1000\nelection-timeout-max-ms = 2000\n\n\
             {peers}{}",
            dir.join("data").display(),
            tls_section("other", &other.ca_path(), &cert, &key)
        ),
    )
    .expect("writing node 4's config");
    let log_path = dir.join("node4.log");
    let mut intruder = std::process::Command::new(herald_bin())
        .args(["node", "--config"])
        .arg(&config)
        .arg("--bootstrap")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("starting node 4");

    // Every member refuses its handshakes and says why (the intruder's certificate is not from
    // this cluster's CA, nor are the members' from the intruder's: whichever side notices first).
    for id in 1..=3 {
        let log = log_says(&cluster, id, "TLS connection refused: handshake failed").await;
        assert!(
            log.contains("UnknownIssuer")
                || log.contains("UnknownCA")
                || log.contains("BadCertificate"),
            "node {id}: {log}"
        );
    }
    // It was never let in: the members still are the three, under the same leader and term.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = cluster.status(leader).await.expect("status");
    assert_eq!(status.members.len(), 3, "{status:?}");
    assert_eq!((status.leader, status.term), (leader, term), "{status:?}");
    assert!(
        status.members.iter().all(|m| m.id != 4),
        "the intruder became a member: {status:?}"
    );
    let _ = intruder.kill();
    let _ = intruder.wait();
}

/// The expiry of the certificate node `addr` serves to a new connection now.
async fn served_not_after(ca: &TestCa, addr: &str) -> i64 {
    let config = client::client_config(&ca.ca_pem(), std::path::Path::new("ca")).expect("config");
    client::served_certificate(addr, config, &host_of(addr))
        .await
        .expect("a TLS handshake")
        .not_after_unix
}

/// Submits through one long-lived connection and through a new connection every few calls,
/// until stopped; counts the calls and the failures.
fn load(
    cluster: &Cluster,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (
    Arc<AtomicU64>,
    Arc<AtomicU64>,
    tokio::task::JoinHandle<Vec<String>>,
) {
    let connector = cluster.connector(&cluster.node(1).grpc);
    let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (c, f) = (calls.clone(), failures.clone());
    let task = tokio::spawn(async move {
        let mut errors = Vec::new();
        let mut steady = MessagingClient::new(connector.channel().await.expect("a channel"));
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let result = if n.is_multiple_of(5) {
                match connector.channel().await {
                    Ok(channel) => MessagingClient::new(channel)
                        .submit(submit(&format!("reload {n}")))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(format!("{e:#}")),
                }
            } else {
                steady
                    .submit(submit(&format!("reload {n}")))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            c.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = result {
                f.fetch_add(1, Ordering::SeqCst);
                errors.push(e);
            }
        }
        errors
    });
    (calls, failures, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reloaded_under_load_fail_no_call_and_serve_new_connections() {
    let cluster = one_node(false);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let ca = cluster.tls.as_ref().expect("TLS");
    let addr = cluster.node(1).grpc.clone();
    let before = served_not_after(ca, &addr).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (calls, failures, task) = load(&cluster, stop.clone());
    wait_for("calls under way", Duration::from_secs(20), || async {
        (calls.load(Ordering::SeqCst) > 20).then_some(())
    })
    .await;
    // A new certificate for node 1, valid longer, replaces the files in place.
    ca.node_cert(
        &cluster.dir.path().join("tls"),
        1,
        &[host_of(&addr)],
        Validity::days(90).expect("days"),
        None,
    );
    log_says(&cluster, 1, "TLS files reloaded").await;
    let after = wait_for(
        "the new certificate served",
        Duration::from_secs(20),
        || async {
            let now = served_not_after(ca, &addr).await;
            (now > before + 30 * 86_400).then_some(now)
        },
    )
    .await;
    let at_reload = calls.load(Ordering::SeqCst);
    wait_for(
        "calls after the reload",
        Duration::from_secs(20),
        || async { (calls.load(Ordering::SeqCst) > at_reload + 20).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let errors = task.await.expect("the load task");
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "failed calls: {errors:?}"
    );
    assert!(calls.load(Ordering::SeqCst) > 40);
    // cluster status shows the new expiry too.
    let status = cluster.status(1).await.expect("status");
    assert_eq!(status.tls_not_after_ms as i64 / 1000, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_replacement_certificate_is_refused_and_the_old_one_kept() {
    let cluster = one_node(false);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let ca = cluster.tls.as_ref().expect("TLS");
    let addr = cluster.node(1).grpc.clone();
    let before = served_not_after(ca, &addr).await;
    std::fs::write(
        cluster.dir.path().join("tls").join("node1.pem"),
        "-----BEGIN CERTIFICATE-----\nbroken\n",
    )
    .expect("breaking the certificate");
    let log = log_says(&cluster, 1, "TLS files not reloaded").await;
    assert!(log.contains("node1.pem"), "the log names the file: {log}");
    assert!(log.contains("ERROR"), "{log}");
    // New connections still get the old certificate, and calls work.
    assert_eq!(served_not_after(ca, &addr).await, before);
    let mut client = cluster.messaging(1).await.expect("a client");
    client
        .submit(submit("still served"))
        .await
        .expect("a call after the broken file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_request_is_refused_at_the_limit() {
    let cluster = one_node(false);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let limit = herald_node::transport_limits::public_max_request(
        &herald_node::config::MessageLimits::default(),
    );
    let mut client = cluster.messaging(1).await.expect("a client");
    let status = client
        .submit(submit(&"x".repeat(limit + 1)))
        .await
        .expect_err("an oversize request was accepted");
    assert!(
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{status:?}"
    );
    assert!(
        status.message().contains(&limit.to_string()),
        "names the limit: {status:?}"
    );
    // A request at a valid size still goes through on a new call.
    client.submit(submit("small")).await.expect("a small call");
}

/// Another client connects and is served at once, five times over.
async fn another_client_is_served(cluster: &Cluster) {
    let start = Instant::now();
    for n in 0..5 {
        let mut other = cluster.messaging(1).await.expect("another client");
        other
            .submit(submit(&format!("beside the flood {n}")))
            .await
            .expect("another client's call");
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_flood_from_one_client_leaves_the_node_serving_another() {
    let cluster = one_node(false);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    // One connection opens far more long-lived streams than a connection may hold at once.
    let flooder: ClientChannel = cluster
        .connector(&cluster.node(1).grpc)
        .connect_timeout(Duration::from_secs(5))
        .channel()
        .await
        .expect("a channel");
    let limit = herald_node::transport_limits::MAX_CONCURRENT_STREAMS as usize;
    let opened = Arc::new(AtomicUsize::new(0));
    let mut held = Vec::new();
    for _ in 0..2 * limit {
        let mut client = MessagingClient::new(flooder.clone());
        let opened = opened.clone();
        held.push(tokio::spawn(async move {
            // Held open (the stream waits for replies that never come) until the test ends.
            let stream = client
                .subscribe_replies(SubscribeRepliesRequest { after_id: 0 })
                .await;
            opened.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(stream);
        }));
    }
    // Once the flood holds every stream its connection may open, another client is served.
    wait_for(
        "the flood to hold its connection's streams",
        Duration::from_secs(30),
        || async { (opened.load(Ordering::SeqCst) >= limit).then_some(()) },
    )
    .await;
    another_client_is_served(&cluster).await;
    for task in held {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_that_never_handshakes_leaves_the_node_serving_another() {
    let cluster = one_node(false);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let addr = cluster.node(1).grpc.clone();
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("a TCP connection"),
        );
    }
    another_client_is_served(&cluster).await;
    // The silent connections are closed once the handshake timeout has passed.
    let mut first = flood.swap_remove(0);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        herald_node::transport_limits::HANDSHAKE_TIMEOUT + Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut first, &mut buf),
    )
    .await
    .expect("the node closed a connection that never handshook");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    log_says(&cluster, 1, "no TLS handshake within").await;
    drop(flood);
}
