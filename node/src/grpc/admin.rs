//! `herald.v1.Admin`: operators' changes to the running cluster, each one an event in the log.

use herald_api::v1::admin_server::Admin;
use herald_api::v1::{
    AdminListRepliesRequest, DrainNodeRequest, DrainNodeResponse, GetPolicyRequest,
    GetPolicyResponse, ListRepliesResponse, SetPolicyRequest, SetPolicyResponse,
};
use herald_raft::events::{event::Kind, now_ms, Event, NodeDrainChanged, PolicyChanged};
use herald_raft::types::EventOutcome;
use openraft::async_runtime::WatchReceiver as _;
use tonic::{Request, Response, Status};

use crate::context::Ctx;
use crate::grpc::messaging::{client_id, propose_status};
use crate::policy::DispatchPolicy;

pub struct AdminService {
    ctx: Ctx,
}

impl AdminService {
    pub fn new(ctx: Ctx) -> Self {
        AdminService { ctx }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn list_replies(
        &self,
        request: Request<AdminListRepliesRequest>,
    ) -> Result<Response<ListRepliesResponse>, Status> {
        let req = request.into_inner();
        let client = if req.unrouted {
            ""
        } else if req.client_id.is_empty() {
            return Err(Status::invalid_argument(
                "client_id: name a client, or ask for the unrouted replies",
            ));
        } else {
            req.client_id.as_str()
        };
        crate::grpc::replies::list(&self.ctx, client, req.after_id, req.limit).map(Response::new)
    }

    async fn get_policy(
        &self,
        _request: Request<GetPolicyRequest>,
    ) -> Result<Response<GetPolicyResponse>, Status> {
        let record = self
            .ctx
            .reader
            .policy()
            .map_err(|e| Status::internal(e.to_string()))?;
        let policy = DispatchPolicy::from_stored(&record.document)
            .map_err(|e| Status::internal(format!("the stored policy is unreadable here: {e}")))?;
        Ok(Response::new(GetPolicyResponse {
            version: record.version,
            toml: policy.to_toml(),
            json: policy.to_json(),
            changed_at_ms: record.changed_at_ms,
            changed_by: record.changed_by,
        }))
    }

    async fn set_policy(
        &self,
        request: Request<SetPolicyRequest>,
    ) -> Result<Response<SetPolicyResponse>, Status> {
        let changed_by = client_id(&request);
        let req = request.into_inner();
        let policy = DispatchPolicy::parse(&req.document, &self.ctx.link_names())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let version = req.expected_version.checked_add(1).ok_or_else(|| {
            Status::invalid_argument("expected_version: not a version this cluster can have")
        })?;
        let event = Event::new(
            now_ms(),
            Kind::PolicyChanged(PolicyChanged {
                version,
                document: policy.to_json(),
                changed_by,
            }),
        );
        let outcomes = self
            .ctx
            .proposer
            .propose(vec![event])
            .await
            .map_err(propose_status)?;
        match outcomes.first() {
            Some(EventOutcome::Applied) => Ok(Response::new(SetPolicyResponse { version })),
            Some(EventOutcome::Ignored { reason }) => Err(Status::aborted(format!(
                "expected_version: {reason}; read the policy again and reapply your change"
            ))),
            other => Err(Status::internal(format!(
                "unexpected outcome of a policy change: {other:?}"
            ))),
        }
    }

    async fn drain_node(
        &self,
        request: Request<DrainNodeRequest>,
    ) -> Result<Response<DrainNodeResponse>, Status> {
        let req = request.into_inner();
        let members: Vec<u64> = {
            let metrics = self.ctx.raft.metrics().borrow_watched().clone();
            metrics
                .membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect()
        };
        if !members.contains(&req.node) {
            return Err(Status::invalid_argument(format!(
                "node: {} is not a member (members: {members:?})",
                req.node
            )));
        }
        let event = Event::new(
            now_ms(),
            Kind::NodeDrain(NodeDrainChanged {
                node: req.node,
                drained: req.drained,
            }),
        );
        self.ctx
            .proposer
            .propose(vec![event])
            .await
            .map_err(propose_status)?;
        let applied_here = || {
            self.ctx
                .reader
                .links()
                .is_ok_and(|t| t.is_drained(req.node) == req.drained)
        };
        self.ctx
            .applied_until(std::time::Duration::from_secs(2), applied_here)
            .await;
        let drained = self
            .ctx
            .reader
            .links()
            .map_err(|e| Status::internal(e.to_string()))?
            .drained;
        Ok(Response::new(DrainNodeResponse { drained }))
    }
}
