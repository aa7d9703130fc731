//! `Messaging.SubscribeReplies` as a gRPC stream: the service's subscription (its stored
//! replies, then each new one as this node applies it) with every item converted to protobuf.
//! The stream ends when the client goes away (tonic drops it).

use std::pin::Pin;

use futures::{Stream, StreamExt};
use herald_api::v1::Reply;
use tonic::Status;

use crate::grpc::convert;
use crate::service::replies::ReplyStream as ServiceReplies;

pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<Reply, Status>> + Send>>;

pub fn stream(replies: ServiceReplies) -> ReplyStream {
    Box::pin(replies.map(|item| item.map(convert::reply).map_err(convert::status)))
}
