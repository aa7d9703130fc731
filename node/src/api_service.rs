//! The public gRPC services: `herald.v1.Messaging` for enterprise systems and `herald.v1.Cluster`
//! for operators. Protobuf types are converted to and from domain types here and nowhere else.

use openraft::async_runtime::WatchReceiver as _;
use std::time::Duration;

use herald_api::v1::cluster_server::Cluster;
use herald_api::v1::messaging_server::Messaging;
use herald_api::v1::{
    ClusterStatusRequest, ClusterStatusResponse, GetMessageRequest, GetMessageResponse,
    LinkPlacement, Member, Segment, SubmitBatchRequest, SubmitBatchResponse, SubmitRequest,
    SubmitResponse, SubmitResult, TimelineEvent,
};
use herald_raft::events::{event::Kind, now_ms, Event, MessageSubmitted};
use herald_raft::network::ProposeError;
use herald_raft::records::{MessageRecord, SegmentStatus};
use herald_raft::types::EventOutcome;
use tonic::{Request, Response, Status};

use crate::context::Ctx;
use crate::validate;

pub struct MessagingService {
    ctx: Ctx,
}

impl MessagingService {
    pub fn new(ctx: Ctx) -> Self {
        MessagingService { ctx }
    }
}

/// The calling system, from the `x-herald-client` metadata; idempotency keys are scoped by it.
fn client_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get("x-herald-client")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .unwrap_or("anonymous")
        .to_string()
}

pub fn propose_status(e: ProposeError) -> Status {
    if e.is_retryable() {
        Status::unavailable(format!(
            "not committed: {e}; nothing was acknowledged, retry (with the same idempotency key)"
        ))
    } else {
        Status::internal(format!("not committed: {e}"))
    }
}

#[tonic::async_trait]
impl Messaging for MessagingService {
    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        let client = client_id(&request);
        let req = request.into_inner();
        let event = submitted_event(&req, &self.ctx.config, &client, now_ms())?;
        let outcomes = self
            .ctx
            .proposer
            .propose(vec![event])
            .await
            .map_err(propose_status)?;
        match outcomes.first() {
            Some(EventOutcome::Submitted {
                message_id,
                created,
            }) => Ok(Response::new(SubmitResponse {
                message_id: message_id.to_string(),
                created: *created,
            })),
            other => Err(Status::internal(format!(
                "unexpected outcome of a submission: {other:?}"
            ))),
        }
    }

    async fn submit_batch(
        &self,
        request: Request<SubmitBatchRequest>,
    ) -> Result<Response<SubmitBatchResponse>, Status> {
        let client = client_id(&request);
        let messages = request.into_inner().messages;
        if messages.is_empty() || messages.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "messages: between 1 and {MAX_BATCH} messages per call, got {}",
                messages.len()
            )));
        }
        let now = now_ms();
        let mut results = vec![SubmitResult::default(); messages.len()];
        let mut events = Vec::with_capacity(messages.len());
        let mut positions = Vec::with_capacity(messages.len());
        for (i, req) in messages.iter().enumerate() {
            match submitted_event(req, &self.ctx.config, &client, now) {
                Ok(event) => {
                    events.push(event);
                    positions.push(i);
                }
                Err(status) => {
                    results[i].error_code = status.code() as i32;
                    results[i].error = format!("messages[{i}].{}", status.message());
                }
            }
        }
        if !events.is_empty() {
            let outcomes = self
                .ctx
                .proposer
                .propose(events)
                .await
                .map_err(propose_status)?;
            for (i, outcome) in positions.into_iter().zip(outcomes) {
                match outcome {
                    EventOutcome::Submitted {
                        message_id,
                        created,
                    } => {
                        results[i].message_id = message_id.to_string();
                        results[i].created = created;
                    }
                    other => {
                        results[i].error_code = tonic::Code::Internal as i32;
                        results[i].error = format!("unexpected outcome of a submission: {other:?}");
                    }
                }
            }
        }
        Ok(Response::new(SubmitBatchResponse { results }))
    }

    async fn get_message(
        &self,
        request: Request<GetMessageRequest>,
    ) -> Result<Response<GetMessageResponse>, Status> {
        let raw = request.into_inner().message_id;
        let id: u64 = raw.trim().parse().map_err(|_| {
            Status::invalid_argument(format!("message_id: {raw:?} is not a message id (digits)"))
        })?;
        let mut record = self.read(id)?;
        if record.is_none() {
            // The message may be committed but not applied here yet: wait for this node to catch up
            // with what it knows is committed, then look again.
            self.catch_up(Duration::from_secs(2)).await;
            record = self.read(id)?;
        }
        let record =
            record.ok_or_else(|| Status::not_found(format!("message_id: no message {id}")))?;
        Ok(Response::new(message_response(
            &record,
            self.ctx.id(),
            *self.ctx.applied.borrow(),
        )))
    }
}

/// Most messages in one `SubmitBatch` call.
pub const MAX_BATCH: usize = 1000;

/// Validates one submission and turns it into its event.
fn submitted_event(
    req: &SubmitRequest,
    config: &crate::config::NodeConfig,
    client: &str,
    now: u64,
) -> Result<Event, Status> {
    let valid = validate::submission(req, config)?;
    // Without a caller's key, the node makes one: a forwarded write that is retried after a lost
    // answer must not create the message twice.
    let idempotency_key = if req.idempotency_key.is_empty() {
        format!("auto:{}", uuid::Uuid::new_v4())
    } else {
        req.idempotency_key.clone()
    };
    Ok(Event::new(
        now,
        Kind::Submitted(MessageSubmitted {
            client_id: client.to_string(),
            idempotency_key,
            client_ref: req.client_ref.clone(),
            recipients: valid.recipients,
            text: valid.text,
            priority: valid.priority,
            link: valid.link,
            expires_at_ms: now + valid.validity_seconds * 1000,
        }),
    ))
}

impl MessagingService {
    fn read(&self, id: u64) -> Result<Option<MessageRecord>, Status> {
        self.ctx
            .reader
            .message(id)
            .map_err(|e| Status::internal(e.to_string()))
    }

    async fn catch_up(&self, limit: Duration) {
        let committed = self
            .ctx
            .raft
            .metrics()
            .borrow_watched()
            .local_committed
            .map(|l| l.index)
            .unwrap_or(0);
        let mut applied = self.ctx.applied.clone();
        let _ = tokio::time::timeout(limit, applied.wait_for(|a| *a >= committed)).await;
    }
}

fn message_response(m: &MessageRecord, node: u64, applied: u64) -> GetMessageResponse {
    let parts = if m.recipients.is_empty() {
        1
    } else {
        (m.segments.len() / m.recipients.len()).max(1)
    };
    let segments = m
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| Segment {
            recipient: m.recipients.get(i / parts).cloned().unwrap_or_default(),
            part: (i % parts) as u32 + 1,
            carrier_id: s.carrier_id.clone(),
            status: match s.status() {
                SegmentStatus::Pending => "PENDING",
                SegmentStatus::Accepted => "ACCEPTED",
                SegmentStatus::Delivered => "DELIVERED",
                SegmentStatus::Undelivered => "UNDELIVERED",
            }
            .to_string(),
            report_status: s.report_status.clone(),
        })
        .collect();
    GetMessageResponse {
        message_id: m.id.to_string(),
        state: m.state as i32,
        recipients: m.recipients.clone(),
        text: m.text.clone(),
        priority: m.priority as i32 + 1,
        link: m.link.clone(),
        client_ref: m.client_ref.clone(),
        attempts: m.attempts,
        last_error: m.last_error.clone(),
        submitted_at_ms: m.submitted_at_ms,
        segments,
        timeline: m.timeline.iter().map(timeline_event).collect(),
        answered_by: node,
        applied_index: applied,
    }
}

fn timeline_event(e: &Event) -> TimelineEvent {
    let detail = match &e.kind {
        Some(Kind::Submitted(s)) => format!(
            "to {} via {} priority {}{}",
            s.recipients.join(","),
            s.link,
            s.priority,
            if s.client_ref.is_empty() {
                String::new()
            } else {
                format!(" ref {}", s.client_ref)
            }
        ),
        Some(Kind::Dispatched(d)) => format!(
            "link {} node {} epoch {} attempt {} segments {}",
            d.link, d.node, d.epoch, d.attempt, d.segments
        ),
        Some(Kind::CarrierAccepted(a)) => {
            format!(
                "link {} segment {} carrier id {}",
                a.link, a.segment, a.carrier_id
            )
        }
        Some(Kind::CarrierRejected(r)) => format!(
            "link {} segment {} code {} ({}) {}",
            r.link,
            r.segment,
            r.code,
            if r.retryable {
                "retryable"
            } else {
                "permanent"
            },
            r.description
        ),
        Some(Kind::DeliveryReported(r)) => format!(
            "link {} carrier id {} to {} status {} at {}",
            r.link, r.carrier_id, r.dest, r.status, r.carrier_time
        ),
        Some(Kind::Expired(_)) => "validity ran out".into(),
        Some(Kind::Canceled(_)) => "canceled".into(),
        Some(Kind::LinkAssigned(l)) => {
            format!("link {} to node {} epoch {}", l.link, l.node, l.epoch)
        }
        None => String::new(),
    };
    TimelineEvent {
        at_ms: e.at_ms,
        kind: e.name().to_string(),
        detail,
    }
}

pub struct ClusterService {
    ctx: Ctx,
}

impl ClusterService {
    pub fn new(ctx: Ctx) -> Self {
        ClusterService { ctx }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(
        &self,
        _request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let m = self.ctx.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                grpc_addr: node.grpc_addr.clone(),
                raft_addr: node.raft_addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let table = self
            .ctx
            .reader
            .links()
            .map_err(|e| Status::internal(e.to_string()))?;
        let links = self
            .ctx
            .config
            .links
            .iter()
            .map(|l| {
                let holder = table.holder(&l.name);
                let node = holder.map(|h| h.node).unwrap_or(0);
                LinkPlacement {
                    link: l.name.clone(),
                    node,
                    epoch: holder.map(|h| h.epoch).unwrap_or(0),
                    connected: node == self.ctx.id() && self.ctx.is_link_connected(&l.name),
                }
            })
            .collect();
        Ok(Response::new(ClusterStatusResponse {
            node_id: self.ctx.id(),
            leader: m.current_leader.unwrap_or(0),
            term: m.current_term,
            commit_index: m
                .cluster_committed
                .or(m.local_committed)
                .map(|l| l.index)
                .unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            members,
            links,
            state: format!("{:?}", m.state),
        }))
    }
}
