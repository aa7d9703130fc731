//! `herald.v1.Cluster`, for operators: the cluster's status as the answering node sees it.

use herald_api::v1::cluster_server::Cluster;
use herald_api::v1::{ClusterStatusRequest, ClusterStatusResponse};
use tonic::{Request, Response, Status};

use crate::context::Ctx;
use crate::grpc::convert::{self, caller, status};
use crate::service::cluster;

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
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        cluster::status(&self.ctx, &caller)
            .await
            .map(|c| Response::new(convert::cluster(c)))
            .map_err(status)
    }
}
