//! Starts one node: opens its RocksDB, starts Raft, serves the public and internal gRPC services,
//! joins or initialises the cluster, and runs the leader's placement and this node's links.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald_api::v1::admin_server::AdminServer;
use herald_api::v1::cluster_server::ClusterServer;
use herald_api::v1::internal_server::InternalServer;
use herald_api::v1::messaging_server::MessagingServer;
use herald_raft::admission::Admission;
use herald_raft::log_store::LogStore;
use herald_raft::network::{plaintext_channels, ChannelFactory, InternalService, NetworkFactory};
use herald_raft::reader::ProjectionReader;
use herald_raft::state_machine::StateMachineStore;
use herald_raft::types::{Member, Raft};
use openraft::async_runtime::WatchReceiver as _;
use tokio_util::sync::CancellationToken;

use crate::build_info;
use crate::cluster::proposer::{ProposalMetrics, Proposer};
use crate::cluster::{clock, drain, placement, timers, versions};
use crate::config::NodeConfig;
use crate::context::NodeContext;
use crate::grpc::admin::AdminService;
use crate::grpc::cluster::ClusterService;
use crate::grpc::messaging::MessagingService;
use crate::links::worker as link_worker;
use crate::metrics::observer::MetricsObserver;
use crate::metrics::{Labels as MetricLabels, Metrics};
use crate::tls::acceptor::{self, ListenerSettings, MemberCheck, PeerNode, PeerRegistry, Port};
use crate::tls::store::TlsStore;
use crate::tls::NodeIdentity;
use crate::transport_limits as limits;

pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let log_sync = crate::log_sync::from_env()?;
    if log_sync == herald_raft::log_store::LogSync::UnsafeSkip {
        tracing::error!(
            "UNSAFE: {}={} is set: the raft log is never fsynced, so a power loss LOSES \
             ACKNOWLEDGED MESSAGES; this switch exists only for the power-loss test's teeth",
            herald_raft::log_store::UNSAFE_SKIP_LOG_FSYNC_ENV,
            herald_raft::log_store::UNSAFE_SKIP_LOG_FSYNC_VALUE
        );
    }
    // The data directory and the database's own, durably (RocksDB syncs what is inside its
    // directory, never that directory's entry): a power loss must not take the whole store.
    herald_raft::durable_fs::create_dir_durable(&config.data_dir.join("db")).map_err(|e| {
        anyhow::anyhow!(
            "creating the data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let disk =
        crate::disk_space::DiskSpace::new(config.node_id, &config.data_dir, config.min_free_space);
    if let Err(low) = disk.check() {
        tracing::error!("{low}");
    }
    let db = herald_raft::db::open(&config.data_dir.join("db"))
        .map_err(|e| anyhow::anyhow!("opening RocksDB in {}: {e}", config.data_dir.display()))?;
    let link_names: Vec<&str> = config.links.iter().map(|l| l.name.as_str()).collect();
    let metrics = Arc::new(
        Metrics::new(&MetricLabels {
            links: &link_names,
            classes: &crate::policy::CLASS_NAMES,
            version: build_info::VERSION,
            commit: build_info::COMMIT,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let observer: herald_raft::observe::SharedObserver =
        Arc::new(MetricsObserver::new(metrics.clone()));
    let log_store = LogStore::with_sync(db.clone(), observer.clone(), log_sync);
    let state_machine = StateMachineStore::new(db.clone(), &config.data_dir.join("snapshots"))?
        .with_observer(observer);
    // RocksDB fsyncs its own directory, not the entry naming it: without this, a power cut soon
    // after the first start loses `db/` and `snapshots/` whole (and the node its whole log).
    // What the node created is durable already (durable_fs); a data directory made by someone
    // else (an operator, a mount) is synced here too, with its entry in its parent.
    herald_raft::durable_fs::fsync_dir(&config.data_dir)
        .and_then(|()| herald_raft::durable_fs::sync_parent(&config.data_dir))
        .map_err(|e| {
            anyhow::anyhow!(
                "fsyncing the data directory {} and its parent: {e}",
                config.data_dir.display()
            )
        })?;
    let applied = state_machine.subscribe_applied();
    let snapshot_dir = state_machine.snapshot_dir();

    let raft_config = openraft::Config {
        cluster_name: "herald".into(),
        heartbeat_interval: config.raft.heartbeat_ms,
        election_timeout_min: config.raft.election_timeout_min_ms,
        election_timeout_max: config.raft.election_timeout_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.raft.snapshot_logs),
        max_in_snapshot_log_to_keep: config.raft.keep_logs,
        purge_batch_size: 256,
        // A voter whose data directory was lost comes back with an empty log (it then waits to
        // be re-added and does not vote: `herald_raft::admission`). The leader must start its
        // replication over instead of treating the shorter log as a bug.
        allow_log_reversion: Some(true),
        // A leader that restarts must win an election again rather than resume at once: a
        // resumed leader's commit index comes from storage, where it is not fsynced, so after a
        // power loss its read index could lie below writes it had acknowledged, and a follower
        // reading through it would call an acknowledged message unknown. An elected leader
        // commits a fresh entry of its own term first, and its read index covers everything.
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    let raft_config = Arc::new(raft_config.validate()?);
    let tls = match &config.tls {
        Some(section) => {
            let me = NodeIdentity::new(&section.cluster, config.node_id)?;
            let store = TlsStore::open(section.files(std::path::Path::new(".")), me)
                .map_err(|e| anyhow::anyhow!("tls: {e}"))?;
            Some(store)
        }
        None => {
            tracing::warn!(
                "insecure = true: both ports are plaintext (no TLS); \
                 never run a node like this on a network others can reach"
            );
            None
        }
    };
    let channels: ChannelFactory = match &tls {
        Some(store) => {
            let store = store.clone();
            Arc::new(move |target, addr: &str| {
                crate::tls::client::peer_channel(store.clone(), target, addr)
            })
        }
        None => plaintext_channels(),
    };
    let admission = Admission::open(&config.data_dir);
    let network = NetworkFactory::new(
        config
            .peers
            .iter()
            .map(|p| (p.id, p.route.clone().unwrap_or_else(|| p.raft.clone())))
            .collect(),
        channels,
    )
    .with_admission(admission.clone());
    let raft: Raft = openraft::Raft::new(
        config.node_id,
        raft_config,
        network.clone(),
        log_store,
        state_machine,
    )
    .await?;

    let proposer = Proposer::start(
        raft.clone(),
        network.clone(),
        Duration::from_secs(10),
        ProposalMetrics {
            batch_events: metrics.raft_proposal_batch.clone(),
            commit_seconds: metrics.raft_commit_duration.clone(),
        },
    );
    let ctx = Arc::new(NodeContext {
        config: config.clone(),
        raft: raft.clone(),
        proposer,
        reader: ProjectionReader::new(db.clone()),
        applied,
        link_connected: Default::default(),
        policy_cache: Default::default(),
        client_rates: Default::default(),
        auth: crate::service::auth::Authenticator::new(
            config.insecure,
            crate::service::auth::parse_admin_hashes(&config.auth.admin_key_sha256)?,
        )
        .counting_failures(metrics.auth_failures.clone()),
        tls: tls.clone(),
        metrics: metrics.clone(),
        stopping: Default::default(),
        network,
        clock: crate::cluster::clock::ClusterClock::new(config.node_id),
        disk: disk.clone(),
    });
    if config.insecure {
        tracing::warn!(
            "insecure = true: no API keys are checked; every caller is an admin (for a laptop or \
             a benchmark only)"
        );
    }
    let shutdown = CancellationToken::new();

    if let Some(store) = &tls {
        store.spawn_watcher(shutdown.clone());
    }
    let registry = PeerRegistry::default();
    let members = member_check(&config, raft.clone());
    let internal_listener = tokio::net::TcpListener::bind(config.raft_listen)
        .await
        .map_err(|e| anyhow::anyhow!("raft-listen {}: {e}", config.raft_listen))?;
    let public_listener = tokio::net::TcpListener::bind(config.grpc_listen)
        .await
        .map_err(|e| anyhow::anyhow!("grpc-listen {}: {e}", config.grpc_listen))?;
    let internal_incoming = acceptor::incoming(
        internal_listener,
        ListenerSettings {
            port: Port::Internal,
            tls: tls.clone(),
            max_connections: limits::INTERNAL_MAX_CONNECTIONS,
            handshake_timeout: limits::HANDSHAKE_TIMEOUT,
            members: tls.as_ref().map(|_| (members.clone(), registry.clone())),
        },
    );
    let public_incoming = acceptor::incoming(
        public_listener,
        ListenerSettings {
            port: Port::Public,
            tls: tls.clone(),
            max_connections: limits::PUBLIC_MAX_CONNECTIONS,
            handshake_timeout: limits::HANDSHAKE_TIMEOUT,
            members: None,
        },
    );
    let internal_service = InternalServer::new(
        InternalService::new(raft.clone(), snapshot_dir)
            .with_admission(admission.clone())
            .with_write_gate({
                let disk = disk.clone();
                Arc::new(move || disk.check().map_err(|low| low.to_string()))
            })
            .with_node_info(crate::version::node_info(config.node_id)),
    )
    .max_decoding_message_size(limits::INTERNAL_MAX_MESSAGE)
    .max_encoding_message_size(limits::INTERNAL_MAX_MESSAGE);
    let peer_gate = peer_interceptor(tls.is_some(), registry, members);
    let internal = server_builder()
        .add_service(tonic::service::interceptor::InterceptedService::new(
            internal_service,
            peer_gate,
        ))
        .serve_with_incoming_shutdown(internal_incoming, shutdown.clone().cancelled_owned());
    let max_request = limits::public_max_request(&config.messages);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    tokio::spawn(crate::grpc::health::follow_readiness(
        ctx.clone(),
        health_reporter,
        shutdown.clone(),
    ));
    tokio::spawn(crate::disk_space::watch(ctx.clone(), shutdown.clone()));
    tokio::spawn(crate::metrics::raft_watch::run(
        raft.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let http_task = match config.http_listen {
        Some(addr) => {
            let serve = crate::http::serve(ctx.clone(), addr, shutdown.clone()).await?;
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    let public = server_builder()
        .timeout(Duration::from_secs(30))
        .add_service(health_service)
        .add_service(
            MessagingServer::new(MessagingService::new(ctx.clone()))
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(limits::PUBLIC_MAX_RESPONSE),
        )
        .add_service(
            ClusterServer::new(ClusterService::new(ctx.clone()))
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(limits::PUBLIC_MAX_RESPONSE),
        )
        .add_service(
            AdminServer::new(AdminService::new(ctx.clone()))
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(limits::PUBLIC_MAX_RESPONSE),
        )
        .serve_with_incoming_shutdown(public_incoming, shutdown.clone().cancelled_owned());
    let internal_task = tokio::spawn(internal);
    let public_task = tokio::spawn(public);

    start_or_wait(&config, &raft, &admission).await?;
    if admission.is_awaiting() {
        tokio::spawn(watch_admission(
            config.node_id,
            raft.clone(),
            admission.clone(),
        ));
    }

    tokio::spawn(clock::run(ctx.clone()));
    tokio::spawn(placement::run(ctx.clone()));
    tokio::spawn(drain::undrain_after_restart(ctx.clone()));
    tokio::spawn(versions::run_auto_finalize(ctx.clone()));
    tokio::spawn(timers::run(ctx.clone()));
    let links = tokio::spawn(link_worker::run_manager(ctx.clone(), shutdown.clone()));
    tracing::info!(
        node = config.node_id,
        grpc = %config.grpc_listen,
        http = ?config.http_listen,
        raft = %config.raft_listen,
        version = %crate::version::describe(),
        rocksdb = herald_raft::db::ROCKSDB_VERSION,
        format_level = crate::version::FORMAT_LEVEL,
        cluster_version = ctx.cluster_level(),
        "herald node started"
    );

    // A server that stops on its own (e.g. its address is taken) ends the node with an error, so a
    // supervisor sees the failure instead of a node that is up but unreachable.
    let mut internal_task = internal_task;
    let mut public_task = public_task;
    let failure = tokio::select! {
        r = &mut internal_task => Some(format!("internal gRPC server on {} stopped: {r:?}", config.raft_listen)),
        r = &mut public_task => Some(format!("public gRPC server on {} stopped: {r:?}", config.grpc_listen)),
        r = async { match http_task { Some(t) => t.await, None => std::future::pending().await } } => {
            Some(format!("HTTP listener on {:?} stopped: {r:?}", config.http_listen))
        }
        _ = shutdown_signal() => None,
        fatal = raft_stopped(raft.clone()) => Some(format!(
            "Raft stopped (herald {}, format level {}, data directory {}): {fatal}",
            crate::version::describe(),
            crate::version::FORMAT_LEVEL,
            config.data_dir.display()
        )),
    };
    match &failure {
        Some(reason) => tracing::error!("{reason}"),
        None => {
            // Both servers keep serving while the node drains: peers replicate to it and the
            // successor's election needs its vote.
            tracing::info!("told to stop: draining first");
            drain::before_stop(&ctx).await;
            tracing::info!("shutting down");
        }
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), links).await;
    let _ = raft.shutdown().await;
    match failure {
        Some(reason) => Err(anyhow::anyhow!(reason)),
        None => Ok(()),
    }
}

/// On an empty log: initialises the cluster of `peers` when told to bootstrap (every founding
/// member proposes the same membership; openraft accepts it once and the rest learn it by
/// replication), else records that this node waits to be added. A node with a log does neither.
async fn start_or_wait(
    config: &NodeConfig,
    raft: &Raft,
    admission: &Admission,
) -> anyhow::Result<()> {
    if raft.is_initialized().await? {
        if config.bootstrap && !admission.is_awaiting() {
            tracing::info!("bootstrap ignored: this data directory already holds a cluster");
        }
        return Ok(());
    }
    if admission.is_awaiting() {
        tracing::info!(
            node = config.node_id,
            "still waiting to be added to the cluster; it votes once added \
             (herald cluster add-node {} on any member)",
            config.node_id
        );
        return Ok(());
    }
    if !config.bootstrap {
        admission.begin_waiting()?;
        tracing::info!(
            node = config.node_id,
            "empty data directory and no bootstrap: waiting to be added to the existing cluster \
             (herald cluster add-node {} --raft {} on any member); this node votes only once \
             added. A brand-new cluster is started with --bootstrap on its first start",
            config.node_id,
            config.raft_listen
        );
        return Ok(());
    }
    let members: BTreeMap<u64, Member> = config
        .peers
        .iter()
        .map(|p| {
            (
                p.id,
                Member {
                    raft_addr: p.raft.clone(),
                    grpc_addr: p.grpc.clone(),
                },
            )
        })
        .collect();
    tracing::info!(node = config.node_id, members = ?members.keys().collect::<Vec<_>>(), "bootstrapping a new cluster");
    if let Err(e) = raft.initialize(members).await {
        tracing::info!("cluster initialisation left to another member: {e}");
    }
    Ok(())
}

/// Clears the admission marker once this node's membership names it as a learner: the cluster
/// has added it (again), and from now on it votes when promoted.
async fn watch_admission(me: u64, raft: Raft, admission: Arc<Admission>) {
    let mut metrics = raft.metrics();
    loop {
        let learner = {
            let m = metrics.borrow_watched();
            let membership = m.membership_config.membership();
            let known = membership.nodes().any(|(id, _)| *id == me);
            let voter = membership.voter_ids().any(|id| id == me);
            known && !voter
        };
        if learner {
            match admission.admitted() {
                Ok(()) => tracing::info!(node = me, "added to the cluster as a learner"),
                Err(e) => tracing::error!(node = me, "{e}"),
            }
            return;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves when Raft stops on its own with a fatal error, e.g. an entry this build cannot apply
/// (written by a newer version): the node must stop rather than serve a projection that no
/// longer follows the log.
async fn raft_stopped(raft: Raft) -> String {
    let mut metrics = raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_watched().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "its metrics channel closed".into();
        }
    }
}

/// A tonic server with the per-connection limits both ports share.
fn server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(limits::MAX_CONCURRENT_STREAMS)
        .http2_keepalive_interval(Some(limits::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(limits::KEEPALIVE_TIMEOUT))
}

/// Who may use the internal port: a node of this cluster that is a member now (in the Raft
/// membership, or — before the log has one — among the configured peers).
fn member_check(config: &NodeConfig, raft: Raft) -> MemberCheck {
    let cluster = config
        .tls
        .as_ref()
        .map(|t| t.cluster.clone())
        .unwrap_or_default();
    let configured: Vec<u64> = config.peers.iter().map(|p| p.id).collect();
    Arc::new(move |peer: &NodeIdentity| {
        if peer.cluster != cluster {
            return Err(format!(
                "{peer} is a node of cluster {:?}, this is cluster {cluster:?}",
                peer.cluster
            ));
        }
        let metrics = raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        let mut members: Vec<u64> = membership.nodes().map(|(id, _)| *id).collect();
        if members.is_empty() {
            members = configured.clone();
        }
        if members.contains(&peer.node_id) {
            Ok(())
        } else {
            Err(format!(
                "{peer} is not a member of this cluster (members: {members:?})"
            ))
        }
    })
}

/// Puts the verified peer's node id ([`PeerNode`]) into each internal call, and refuses a call
/// from a connection without one or from a node that stopped being a member.
fn peer_interceptor(
    tls: bool,
    registry: PeerRegistry,
    members: MemberCheck,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |mut request: tonic::Request<()>| {
        if !tls {
            return Ok(request);
        }
        let peer = request
            .remote_addr()
            .and_then(|addr| registry.get(&addr))
            .ok_or_else(|| {
                tonic::Status::unauthenticated("internal port: no verified peer certificate")
            })?;
        members(&peer).map_err(|why| {
            tracing::warn!("internal call refused: {why}");
            tonic::Status::permission_denied(format!("internal port: {why}"))
        })?;
        request.extensions_mut().insert(PeerNode(peer.node_id));
        Ok(request)
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = parent_gone() => {
            tracing::warn!("the supervising process is gone ({EXIT_WITH_PARENT} is set): shutting down");
        }
    }
}

/// Set by `herald dev` on its children: a child whose supervisor died (SIGKILL leaves it no
/// chance to stop them) shuts down instead of holding the dev cluster's ports and folder.
pub const EXIT_WITH_PARENT: &str = "HERALD_EXIT_WITH_PARENT";

/// Completes once this process has been re-parented (its parent died), when started with
/// [`EXIT_WITH_PARENT`]; never otherwise. Polls, because the kernel's parent-death signal
/// follows the thread that spawned the child, not the process, and a tokio worker may end.
async fn parent_gone() {
    if std::env::var_os(EXIT_WITH_PARENT).is_none() {
        return std::future::pending().await;
    }
    let parent = std::os::unix::process::parent_id();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if std::os::unix::process::parent_id() != parent {
            return;
        }
    }
}
