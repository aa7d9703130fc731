//! The public gRPC services: `herald.v1.Messaging` for enterprise systems and `herald.v1.Cluster`
//! for operators. Protobuf types are converted to and from domain types here and nowhere else.

use openraft::async_runtime::WatchReceiver as _;
use std::time::Duration;

use herald_api::v1::cluster_server::Cluster;
use herald_api::v1::messaging_server::Messaging;
use herald_api::v1::{
    CancelMessageRequest, CancelMessageResponse, ClusterStatusRequest, ClusterStatusResponse,
    FanOutCopy, GetMessageRequest, GetMessageResponse, GetMessagesRequest, GetMessagesResponse,
    GetTraceRequest, GetTraceResponse, LinkPlacement, ListRepliesRequest, ListRepliesResponse,
    Member, Segment, SubmitBatchRequest, SubmitBatchResponse, SubmitRequest, SubmitResponse,
    SubmitResult, SubscribeRepliesRequest, TimelineEvent, TraceLine,
};
use herald_raft::events::{event::Kind, now_ms, Event, MessageCanceled, MessageSubmitted};
use herald_raft::network::ProposeError;
use herald_raft::records::{MessageRecord, MessageState, SegmentStatus};
use herald_raft::types::EventOutcome;
use tonic::{Request, Response, Status};

use crate::context::Ctx;
use crate::service::validate;

pub struct MessagingService {
    ctx: Ctx,
}

impl MessagingService {
    pub fn new(ctx: Ctx) -> Self {
        MessagingService { ctx }
    }
}

/// The calling system, from the `x-herald-client` metadata; idempotency keys are scoped by it.
pub fn client_id<T>(request: &Request<T>) -> String {
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
    type SubscribeRepliesStream = crate::grpc::replies::ReplyStream;

    async fn list_replies(
        &self,
        request: Request<ListRepliesRequest>,
    ) -> Result<Response<ListRepliesResponse>, Status> {
        let client = client_id(&request);
        let req = request.into_inner();
        crate::grpc::replies::list(&self.ctx, &client, req.after_id, req.limit).map(Response::new)
    }

    async fn subscribe_replies(
        &self,
        request: Request<SubscribeRepliesRequest>,
    ) -> Result<Response<Self::SubscribeRepliesStream>, Status> {
        let client = client_id(&request);
        let after_id = request.into_inner().after_id;
        Ok(Response::new(crate::grpc::replies::subscribe(
            self.ctx.clone(),
            client,
            after_id,
        )))
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        let client = client_id(&request);
        let req = request.into_inner();
        let policy = self.ctx.policy();
        let event = submitted_event(&req, &self.ctx.config, &policy, &client, now_ms())?;
        self.admit(&policy, &client, 1)?;
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
        let policy = self.ctx.policy();
        let mut results = vec![SubmitResult::default(); messages.len()];
        let mut events = Vec::with_capacity(messages.len());
        let mut positions = Vec::with_capacity(messages.len());
        for (i, req) in messages.iter().enumerate() {
            match submitted_event(req, &self.ctx.config, &policy, &client, now) {
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
            self.admit(&policy, &client, events.len() as u32)?;
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
        let id = parse_message_id(&request.into_inner().message_id)?;
        let record = self.read_known(id).await?;
        let mut response = message_response(&record, self.ctx.id(), *self.ctx.applied.borrow());
        for copy_id in &record.copies {
            if let Some(copy) = self.read(*copy_id)? {
                response.copies.push(FanOutCopy {
                    message_id: copy.id.to_string(),
                    link: copy.link.clone(),
                    state: copy.state as i32,
                    won: copy.id == record.won_by,
                    duplicate: copy.duplicate,
                });
            }
        }
        Ok(Response::new(response))
    }

    async fn get_messages(
        &self,
        request: Request<GetMessagesRequest>,
    ) -> Result<Response<GetMessagesResponse>, Status> {
        crate::grpc::statuses::answer(&self.ctx, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_trace(
        &self,
        request: Request<GetTraceRequest>,
    ) -> Result<Response<GetTraceResponse>, Status> {
        let id = parse_message_id(&request.into_inner().message_id)?;
        let record = self.read_known(id).await?;
        Ok(Response::new(trace_response(&record, self.ctx.id())))
    }

    async fn cancel_message(
        &self,
        request: Request<CancelMessageRequest>,
    ) -> Result<Response<CancelMessageResponse>, Status> {
        let id = parse_message_id(&request.into_inner().message_id)?;
        if self.read(id)?.is_none() {
            self.ctx.catch_up(Duration::from_secs(2)).await;
        }
        let record = self
            .read(id)?
            .ok_or_else(|| Status::not_found(format!("message_id: no message {id}")))?;
        if record.state() == MessageState::Canceled {
            return Ok(Response::new(CancelMessageResponse {
                state: MessageState::Canceled as i32,
            }));
        }
        let event = Event::new(now_ms(), Kind::Canceled(MessageCanceled { message_id: id }));
        let outcomes = self
            .ctx
            .proposer
            .propose(vec![event])
            .await
            .map_err(propose_status)?;
        match outcomes.first() {
            Some(EventOutcome::Applied) => Ok(Response::new(CancelMessageResponse {
                state: MessageState::Canceled as i32,
            })),
            Some(EventOutcome::Ignored { reason }) => {
                // A re-proposed cancellation whose first copy applied is ignored the second
                // time: the message is canceled all the same. The leader applied it; this node
                // may not have yet.
                let canceled = || {
                    self.read(id).ok().flatten().map(|m| m.state()) == Some(MessageState::Canceled)
                };
                if self
                    .ctx
                    .applied_until(Duration::from_secs(2), canceled)
                    .await
                {
                    return Ok(Response::new(CancelMessageResponse {
                        state: MessageState::Canceled as i32,
                    }));
                }
                Err(Status::failed_precondition(format!(
                    "message_id: message {id} cannot be canceled: {reason}"
                )))
            }
            other => Err(Status::internal(format!(
                "unexpected outcome of a cancellation: {other:?}"
            ))),
        }
    }
}

fn parse_message_id(raw: &str) -> Result<u64, Status> {
    raw.trim().parse().map_err(|_| {
        Status::invalid_argument(format!("message_id: {raw:?} is not a message id (digits)"))
    })
}

/// Most messages in one `SubmitBatch` call.
pub const MAX_BATCH: usize = 1000;

/// Validates one submission and turns it into its event.
fn submitted_event(
    req: &SubmitRequest,
    config: &crate::config::NodeConfig,
    policy: &crate::policy::DispatchPolicy,
    client: &str,
    now: u64,
) -> Result<Event, Status> {
    let valid = validate::submission(req, config, policy, client, now)?;
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
            // The validity counts from when the message may first be sent.
            expires_at_ms: now
                .max(valid.send_at_ms)
                .saturating_add(valid.validity_seconds.saturating_mul(1000)),
            route: valid.route,
            send_at_ms: valid.send_at_ms,
            deferred_because: valid.deferred_because,
            fan_out_links: valid.fan_out_links,
            split: valid.split,
        }),
    ))
}

impl MessagingService {
    fn admit(
        &self,
        policy: &crate::policy::DispatchPolicy,
        client: &str,
        count: u32,
    ) -> Result<(), Status> {
        self.ctx.client_rates.admit(policy, client, count, || {
            self.ctx.reader.pending_of(client).unwrap_or(0)
        })
    }

    fn read(&self, id: u64) -> Result<Option<MessageRecord>, Status> {
        self.ctx
            .reader
            .message(id)
            .map_err(|e| Status::internal(e.to_string()))
    }

    /// The message, or NOT_FOUND. It may be committed but not applied here yet: the node first
    /// catches up with what it knows is committed, then looks again.
    async fn read_known(&self, id: u64) -> Result<MessageRecord, Status> {
        if let Some(record) = self.read(id)? {
            return Ok(record);
        }
        self.ctx.catch_up(Duration::from_secs(2)).await;
        self.read(id)?
            .ok_or_else(|| Status::not_found(format!("message_id: no message {id}")))
    }
}

fn trace_response(m: &MessageRecord, node: u64) -> GetTraceResponse {
    let trace = herald_raft::trace::trace_of(m);
    GetTraceResponse {
        message_id: m.id.to_string(),
        state: m.state as i32,
        lines: trace
            .lines
            .into_iter()
            .map(|l| TraceLine {
                at_ms: l.at_ms,
                link: l.link,
                node: l.node,
                direction: l.direction.as_str().to_string(),
                command: l.command,
                sequence: l.sequence,
                segment: l.segment,
                status: l.status,
                meaning: l.meaning,
                carrier_id: l.carrier_id,
            })
            .collect(),
        reason: trace.reason,
        attempts: m.attempts,
        last_code: m.last_code,
        expires_at_ms: m.expires_at_ms,
        dropped_events: trace.dropped_events,
        answered_by: node,
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
        route: m.route.clone(),
        not_before_ms: m.not_before_ms,
        last_code: m.last_code,
        copies: Vec::new(),
        copy_of: if m.copy_of == 0 {
            String::new()
        } else {
            m.copy_of.to_string()
        },
        duplicate_deliveries: m.duplicates,
    }
}

fn timeline_event(e: &Event) -> TimelineEvent {
    let detail = match &e.kind {
        Some(Kind::Submitted(s)) => format!(
            "to {} via {} class {}{}{}{}{}",
            s.recipients.join(","),
            if s.route.is_empty() {
                format!("link {}", s.link)
            } else {
                format!("route {}", s.route)
            },
            crate::policy::CLASS_NAMES
                .get(s.priority as usize)
                .unwrap_or(&"bulk"),
            if s.client_ref.is_empty() {
                String::new()
            } else {
                format!(" ref {}", s.client_ref)
            },
            if s.send_at_ms == 0 {
                String::new()
            } else {
                format!(" not before {} ({})", s.send_at_ms, s.deferred_because)
            },
            if s.fan_out_links.is_empty() {
                String::new()
            } else {
                format!(" fanned out over {}", s.fan_out_links.join(","))
            },
            if s.split.is_empty() {
                String::new()
            } else {
                format!(
                    " split by route: {}",
                    s.split
                        .iter()
                        .map(|p| format!(
                            "{} via {}",
                            p.recipients.join(","),
                            if p.route.is_empty() {
                                &p.link
                            } else {
                                &p.route
                            }
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ),
        Some(Kind::Dispatched(d)) => format!(
            "link {}{} node {} epoch {} attempt {} segments {}",
            d.link,
            if d.slot.is_empty() {
                String::new()
            } else {
                format!(" slot {}", d.slot)
            },
            d.node,
            d.epoch,
            d.attempt,
            d.segments
        ),
        Some(Kind::CarrierAccepted(a)) => {
            format!(
                "link {} segment {} carrier id {}",
                a.link, a.segment, a.carrier_id
            )
        }
        Some(Kind::CarrierRejected(r)) => format!(
            "link {} segment {} code {} ({}) {}; {}",
            r.link,
            r.segment,
            r.code,
            if r.retryable {
                "retryable"
            } else {
                "permanent"
            },
            r.description,
            match (r.policy_decided, r.retry_at_ms) {
                (false, _) => "retried while attempts remain".to_string(),
                (true, 0) => "not retried: the message fails".to_string(),
                (true, at) if r.retry_link.is_empty() => format!("retry at {at}"),
                (true, at) => format!("retry at {at} through link {}", r.retry_link),
            }
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
        Some(Kind::Released(_)) => "send time reached: queued".into(),
        Some(Kind::Requeued(r)) => format!("given back by link {}: {}", r.link, r.reason),
        Some(Kind::LinkStatus(l)) => format!(
            "link {} {}{}: {}",
            l.link,
            if l.up { "up" } else { "down" },
            if l.congested { ", congested" } else { "" },
            l.reason
        ),
        Some(Kind::PolicyChanged(p)) => format!("policy version {} by {}", p.version, p.changed_by),
        Some(Kind::CarrierUnanswered(u)) => format!(
            "link {} segment {} no answer: {}",
            u.link, u.segment, u.failure
        ),
        Some(Kind::NodeDrain(n)) => format!(
            "node {} {}",
            n.node,
            if n.drained { "drained" } else { "undrained" }
        ),
        // Never in a message's timeline: replies have their own records.
        Some(Kind::MoReceived(_) | Kind::MoAssemblyClosed(_)) => String::new(),
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
            .flat_map(|l| l.slots())
            .map(|slot| {
                let holder = table.holder(&slot);
                let node = holder.map(|h| h.node).unwrap_or(0);
                LinkPlacement {
                    node,
                    epoch: holder.map(|h| h.epoch).unwrap_or(0),
                    connected: node == self.ctx.id() && self.ctx.is_link_connected(&slot),
                    down: holder.is_some_and(|h| h.down),
                    congested: holder.is_some_and(|h| h.congested),
                    status_reason: holder.map(|h| h.status_reason.clone()).unwrap_or_default(),
                    link: slot,
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
            drained: table.drained.clone(),
        }))
    }
}
