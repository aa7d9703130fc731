//! `herald.v1.Admin`: operators' changes to the running cluster, decoded and handed to the
//! service layer (`service/admin.rs`, `service/replies.rs`).

use herald_api::v1::admin_server::Admin;
use herald_api::v1::{
    AdminListRepliesRequest, DrainNodeRequest, DrainNodeResponse, GetPolicyRequest,
    GetPolicyResponse, ListRepliesResponse, SetPolicyRequest, SetPolicyResponse,
};
use tonic::{Request, Response, Status};

use crate::context::Ctx;
use crate::grpc::convert::{self, caller, status};
use crate::service::admin;
use crate::service::replies::{self, Addressee};

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
        let caller = caller(&request)?;
        let req = request.into_inner();
        let whose = if req.unrouted {
            Addressee::Unrouted
        } else {
            Addressee::Client(&req.client_id)
        };
        replies::list_for(&self.ctx, &caller, whose, req.after_id, req.limit)
            .map(|page| Response::new(convert::replies(page)))
            .map_err(status)
    }

    async fn get_policy(
        &self,
        request: Request<GetPolicyRequest>,
    ) -> Result<Response<GetPolicyResponse>, Status> {
        let caller = caller(&request)?;
        let p = admin::get_policy(&self.ctx, &caller).map_err(status)?;
        Ok(Response::new(GetPolicyResponse {
            version: p.version,
            toml: p.policy.to_toml(),
            json: p.policy.to_json(),
            changed_at_ms: p.changed_at_ms,
            changed_by: p.changed_by,
        }))
    }

    async fn set_policy(
        &self,
        request: Request<SetPolicyRequest>,
    ) -> Result<Response<SetPolicyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let version = admin::set_policy(&self.ctx, &caller, &req.document, req.expected_version)
            .await
            .map_err(status)?;
        Ok(Response::new(SetPolicyResponse { version }))
    }

    async fn drain_node(
        &self,
        request: Request<DrainNodeRequest>,
    ) -> Result<Response<DrainNodeResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let drained = admin::drain(&self.ctx, &caller, req.node, req.drained, req.force)
            .await
            .map_err(status)?;
        Ok(Response::new(DrainNodeResponse { drained }))
    }
}
