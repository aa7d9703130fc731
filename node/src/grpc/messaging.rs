//! `herald.v1.Messaging`, for enterprise systems: each call decodes its request, calls the
//! service layer with the caller and converts the answer (`convert.rs`). No rule lives here.

use herald_api::v1::messaging_server::Messaging;
use herald_api::v1::{
    CancelMessageRequest, CancelMessageResponse, GetMessageRequest, GetMessageResponse,
    GetMessagesRequest, GetMessagesResponse, GetTraceRequest, GetTraceResponse, ListRepliesRequest,
    ListRepliesResponse, SubmitBatchRequest, SubmitBatchResponse, SubmitRequest, SubmitResponse,
    SubscribeRepliesRequest,
};
use tonic::{Request, Response, Status};

use crate::context::Ctx;
use crate::grpc::convert::{self, caller, status};
use crate::service::{messages, replies, submit};

pub struct MessagingService {
    ctx: Ctx,
}

impl MessagingService {
    pub fn new(ctx: Ctx) -> Self {
        MessagingService { ctx }
    }
}

#[tonic::async_trait]
impl Messaging for MessagingService {
    type SubscribeRepliesStream = crate::grpc::replies::ReplyStream;

    async fn list_replies(
        &self,
        request: Request<ListRepliesRequest>,
    ) -> Result<Response<ListRepliesResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let req = request.into_inner();
        replies::list_own(&self.ctx, &caller, req.after_id, req.limit)
            .map(|page| Response::new(convert::replies(page)))
            .map_err(status)
    }

    async fn subscribe_replies(
        &self,
        request: Request<SubscribeRepliesRequest>,
    ) -> Result<Response<Self::SubscribeRepliesStream>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let after_id = request.into_inner().after_id;
        let replies = replies::subscribe(self.ctx.clone(), &caller, after_id).map_err(status)?;
        Ok(Response::new(crate::grpc::replies::stream(replies)))
    }

    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let submission = convert::submission(request.into_inner());
        submit::submit(&self.ctx, &caller, submission)
            .await
            .map(|s| Response::new(convert::submit_response(s)))
            .map_err(status)
    }

    async fn submit_batch(
        &self,
        request: Request<SubmitBatchRequest>,
    ) -> Result<Response<SubmitBatchResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let submissions = request
            .into_inner()
            .messages
            .into_iter()
            .map(convert::submission)
            .collect();
        let results = submit::submit_batch(&self.ctx, &caller, submissions)
            .await
            .map_err(status)?;
        Ok(Response::new(SubmitBatchResponse {
            results: results.into_iter().map(convert::submit_result).collect(),
        }))
    }

    async fn get_message(
        &self,
        request: Request<GetMessageRequest>,
    ) -> Result<Response<GetMessageResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let id = request.into_inner().message_id;
        messages::get(&self.ctx, &caller, &id)
            .await
            .map(|m| Response::new(convert::message(m)))
            .map_err(status)
    }

    async fn get_messages(
        &self,
        request: Request<GetMessagesRequest>,
    ) -> Result<Response<GetMessagesResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let ids = request.into_inner().message_ids;
        messages::get_many(&self.ctx, &caller, &ids)
            .await
            .map(|s| Response::new(convert::statuses(s)))
            .map_err(status)
    }

    async fn get_trace(
        &self,
        request: Request<GetTraceRequest>,
    ) -> Result<Response<GetTraceResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let id = request.into_inner().message_id;
        messages::trace(&self.ctx, &caller, &id)
            .await
            .map(|t| Response::new(convert::trace(t)))
            .map_err(status)
    }

    async fn cancel_message(
        &self,
        request: Request<CancelMessageRequest>,
    ) -> Result<Response<CancelMessageResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let id = request.into_inner().message_id;
        messages::cancel(&self.ctx, &caller, &id)
            .await
            .map(|state| {
                Response::new(CancelMessageResponse {
                    state: state as i32,
                })
            })
            .map_err(status)
    }
}
