//! The Raft network over gRPC: a client per peer (openraft's `RaftNetworkV2`) and the node-to-node
//! `herald.v1.Internal` service that answers it and accepts writes forwarded to the leader.
//!
//! openraft's messages travel as bincode inside protobuf `bytes`: they are internal to a cluster and
//! never seen by clients. Writes forwarded to the leader carry an encoded `EventBatch`.

use std::future::Future;
use std::time::Duration;

use herald_api::v1::internal_client::InternalClient;
use herald_api::v1::internal_server::Internal;
use herald_api::v1::{ProposeReply, ProposeRequest, RaftReply, RaftRequest};
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::OptionalSend;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::types::{
    ApplyResponse, EventsPayload, Member, NodeId, Raft, Snapshot, TypeConfig, Vote,
};

/// Largest gRPC message between nodes: snapshots travel whole.
pub const MAX_INTERNAL_MESSAGE: usize = 1 << 30;

/// bincode's original wire format (fixed-width integers, trailing bytes allowed), which nodes of
/// every version speak to each other.
fn wire() -> impl bincode::Options {
    use bincode::Options as _;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::Error> {
    use bincode::Options as _;
    wire().serialize(value)
}

/// Bounded by the payload's own length, so a corrupt length prefix from a peer fails instead of
/// allocating.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    use bincode::Options as _;
    wire().with_limit(bytes.len() as u64).deserialize(bytes)
}

/// Opens a lazily connecting channel to a node's internal service.
pub fn internal_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .connect_lazy())
}

pub fn internal_client(channel: Channel) -> InternalClient<Channel> {
    InternalClient::new(channel)
        .max_decoding_message_size(MAX_INTERNAL_MESSAGE)
        .max_encoding_message_size(MAX_INTERNAL_MESSAGE)
}

/// Creates one [`PeerClient`] per target node.
///
/// A peer is reached at the address this node's own configuration gives for it when there is one,
/// else at the address recorded in the membership. The local view wins so that an operator (or a
/// fault-injection test) can route each node's traffic to a peer through its own path — a proxy, a
/// NAT — without changing what the cluster has agreed on.
#[derive(Clone, Default)]
pub struct NetworkFactory {
    peer_addrs: std::sync::Arc<std::collections::HashMap<NodeId, String>>,
}

impl NetworkFactory {
    pub fn new(peer_addrs: std::collections::HashMap<NodeId, String>) -> Self {
        NetworkFactory {
            peer_addrs: std::sync::Arc::new(peer_addrs),
        }
    }

    /// Where this node reaches `target`.
    pub fn addr_of(&self, target: NodeId, member: &Member) -> String {
        self.peer_addrs
            .get(&target)
            .cloned()
            .unwrap_or_else(|| member.raft_addr.clone())
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> PeerClient {
        let addr = self.addr_of(target, node);
        PeerClient {
            target,
            client: internal_channel(&addr).ok().map(internal_client),
            addr,
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    addr: String,
    client: Option<InternalClient<Channel>>,
}

impl PeerClient {
    async fn call<Req, Resp>(
        &mut self,
        method: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::from_string(format!(
                "node {} has an invalid address {:?}",
                self.target, self.addr
            ))));
        };
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = Request::new(RaftRequest {
            method: method.to_string(),
            payload,
        });
        request.set_timeout(option.hard_ttl());
        let reply = match client.raft(request).await {
            Ok(r) => r.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)));
            }
            Err(status) => return Err(RPCError::Network(NetworkError::new(&status))),
        };
        let result: Result<Resp, RaftError<TypeConfig>> =
            decode(&reply.payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        // A remote RaftError here means the peer is shutting down or failed: back off from it.
        result.map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = crate::types::SnapshotData;

    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("append", &req, &option).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("vote", &req, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = (vote, snapshot.meta, snapshot.snapshot.into_inner());
        tokio::pin!(cancel);
        tokio::select! {
            closed = &mut cancel => Err(StreamingError::Closed(closed)),
            res = self.call::<_, SnapshotResponse<TypeConfig>>("snapshot", &req, &option) => {
                res.map_err(StreamingError::from)
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call("transfer-leader", &req, &option).await
    }
}

/// The server side of [`PeerClient`] plus write forwarding.
pub struct InternalService {
    raft: Raft,
}

impl InternalService {
    pub fn new(raft: Raft) -> Self {
        InternalService { raft }
    }
}

fn reply<T: Serialize>(result: &T) -> Result<Response<RaftReply>, Status> {
    encode(result)
        .map(|payload| Response::new(RaftReply { payload }))
        .map_err(|e| Status::internal(format!("encoding a Raft reply: {e}")))
}

fn bad_payload(e: bincode::Error) -> Status {
    Status::invalid_argument(format!("payload: undecodable Raft request: {e}"))
}

#[tonic::async_trait]
impl Internal for InternalService {
    async fn raft(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        match req.method.as_str() {
            "append" => {
                let rpc = decode(&req.payload).map_err(bad_payload)?;
                reply(&self.raft.append_entries(rpc).await)
            }
            "vote" => {
                let rpc = decode(&req.payload).map_err(bad_payload)?;
                reply(&self.raft.vote(rpc).await)
            }
            "snapshot" => {
                let (vote, meta, data): (Vote, crate::types::SnapshotMeta, Vec<u8>) =
                    decode(&req.payload).map_err(bad_payload)?;
                let snapshot = Snapshot {
                    meta,
                    snapshot: std::io::Cursor::new(data),
                };
                let result: Result<SnapshotResponse<TypeConfig>, RaftError<TypeConfig>> = self
                    .raft
                    .install_full_snapshot(vote, snapshot)
                    .await
                    .map_err(RaftError::Fatal);
                reply(&result)
            }
            "transfer-leader" => {
                let rpc = decode(&req.payload).map_err(bad_payload)?;
                let result: Result<TransferLeaderResponse<TypeConfig>, RaftError<TypeConfig>> =
                    self.raft
                        .handle_transfer_leader(rpc)
                        .await
                        .map_err(RaftError::Fatal);
                reply(&result)
            }
            other => Err(Status::invalid_argument(format!(
                "method: unknown Raft method {other:?}"
            ))),
        }
    }

    async fn propose(
        &self,
        request: Request<ProposeRequest>,
    ) -> Result<Response<ProposeReply>, Status> {
        let batch = request.into_inner().event_batch;
        let outcome = propose_local(&self.raft, batch).await;
        Ok(Response::new(match outcome {
            Ok(response) => ProposeReply {
                response: encode(&response).map_err(|e| Status::internal(e.to_string()))?,
                ..Default::default()
            },
            Err(ProposeError::NotLeader { leader }) => ProposeReply {
                leader_hint: leader.unwrap_or(0),
                error: "not the leader".into(),
                ..Default::default()
            },
            Err(ProposeError::Discarded { leader }) => ProposeReply {
                leader_hint: leader.unwrap_or(0),
                error: DISCARDED_REPLY.into(),
                ..Default::default()
            },
            Err(e) => ProposeReply {
                error: e.to_string(),
                ..Default::default()
            },
        }))
    }
}

/// Why a proposal did not commit.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("no leader is known; the cluster may be electing one or lack a majority")]
    NoLeader,
    #[error("the leader could not be reached: {0}")]
    Unreachable(String),
    /// The entry was appended by a leader that lost leadership before it committed: it may still
    /// commit through the next leader, or not. Retrying is safe because every event Herald
    /// proposes is idempotent under replay (a submission by its idempotency key).
    #[error("the entry was discarded on a leader change and may or may not commit (leader now: {leader:?})")]
    Discarded { leader: Option<NodeId> },
    #[error("the proposal failed: {0}")]
    Failed(String),
}

/// `ProposeReply.error` for [`ProposeError::Discarded`], so a forwarding node can tell it apart.
const DISCARDED_REPLY: &str = "entry discarded on a leader change";

impl ProposeError {
    /// Whether the same proposal may succeed if tried again (on another node or later).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProposeError::Failed(_))
    }
}

/// Proposes an encoded event batch on this node, which must be the leader. Returns after the entry
/// is committed on a majority and applied here.
pub async fn propose_local(raft: &Raft, batch: Vec<u8>) -> Result<ApplyResponse, ProposeError> {
    use openraft::errors::ClientWriteError;
    match raft.client_write(EventsPayload(batch)).await {
        Ok(resp) => Ok(resp.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::NotLeader {
                leader: f.leader_id,
            })
        }
        Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
            Err(ProposeError::Discarded {
                leader: f.leader_id,
            })
        }
        Err(e) => Err(ProposeError::Failed(e.to_string())),
    }
}

/// Forwards an encoded event batch to a remote leader's internal service.
pub async fn propose_remote(
    client: &mut InternalClient<Channel>,
    batch: Vec<u8>,
    timeout: Duration,
) -> Result<ApplyResponse, ProposeError> {
    let mut request = Request::new(ProposeRequest { event_batch: batch });
    request.set_timeout(timeout);
    let reply = client
        .propose(request)
        .await
        .map_err(|s| ProposeError::Unreachable(s.message().to_string()))?
        .into_inner();
    if reply.error.is_empty() {
        decode(&reply.response).map_err(|e| ProposeError::Failed(e.to_string()))
    } else if reply.error == DISCARDED_REPLY {
        Err(ProposeError::Discarded {
            leader: (reply.leader_hint != 0).then_some(reply.leader_hint),
        })
    } else if reply.leader_hint != 0 || reply.error == "not the leader" {
        Err(ProposeError::NotLeader {
            leader: (reply.leader_hint != 0).then_some(reply.leader_hint),
        })
    } else {
        Err(ProposeError::Failed(reply.error))
    }
}

#[cfg(test)]
mod propose_error_tests {
    use super::*;

    #[test]
    fn a_discarded_entry_is_retried_not_given_up() {
        // An entry discarded on a leader change may still commit; callers must retry it (safe,
        // every event is idempotent) rather than drop it — found by the chaos harness, seed
        // 20261125: delivery reports were dropped after an isolated leader rejoined.
        assert!(ProposeError::Discarded { leader: Some(2) }.is_retryable());
        assert!(!ProposeError::Failed("x".into()).is_retryable());
    }
}

#[cfg(test)]
mod wire_tests {
    use super::{decode, encode};

    #[test]
    fn the_wire_format_is_bincodes_original_one() {
        let value = (7u64, String::from("herald"), vec![1u32, 2, 3]);
        assert_eq!(encode(&value).unwrap(), bincode::serialize(&value).unwrap());
        assert_eq!(
            decode::<(u64, String, Vec<u32>)>(&encode(&value).unwrap()).unwrap(),
            value
        );
    }

    #[test]
    fn a_length_prefix_beyond_the_payload_is_an_error() {
        // A Vec<u64> claiming 2^40 elements in a 16-byte payload.
        let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        assert!(decode::<Vec<u64>>(&bytes).is_err());
    }
}
