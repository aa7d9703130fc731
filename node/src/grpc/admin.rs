//! `herald.v1.Admin`: operators' changes to the running cluster, decoded and handed to the
//! service layer (`service/admin.rs`, `service/replies.rs`, `service/clients.rs`,
//! `service/audit.rs`).

use herald_api::v1::admin_server::Admin;
use herald_api::v1::{
    AddNodeProgress, AddNodeRequest, AdminListRepliesRequest, BackupChunk, BackupRequest,
    ClientInfo, CreateClientRequest, DeleteClientRequest, DeleteClientResponse, DrainNodeRequest,
    DrainNodeResponse, FinalizeUpgradeRequest, FinalizeUpgradeResponse, GetClientRequest,
    GetPolicyRequest, GetPolicyResponse, ListAuditRequest, ListAuditResponse, ListClientsRequest,
    ListClientsResponse, ListRepliesResponse, NewKeyResponse, RemoveNodeRequest,
    RemoveNodeResponse, RevokeKeyRequest, RevokeKeyResponse, RotateKeyRequest, SetPolicyRequest,
    SetPolicyResponse,
};
use tonic::{Request, Response, Status};

use crate::context::Ctx;
use crate::grpc::convert::{self, caller, status};
use crate::service::membership::{self, NewMember};
use crate::service::replies::{self, Addressee};
use crate::service::{admin, audit, backup, clients};

/// `Admin.Backup`'s answer: the backup file's bytes in chunks.
pub type BackupStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<BackupChunk, Status>> + Send>>;

/// Bytes per `BackupChunk`.
const BACKUP_CHUNK: usize = 1 << 20;

/// `Admin.AddNode`'s answer: progress reports, then the end (or an error).
pub type AddNodeStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<AddNodeProgress, Status>> + Send>>;

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
    type AddNodeStream = AddNodeStream;
    type BackupStream = BackupStream;

    async fn backup(
        &self,
        request: Request<BackupRequest>,
    ) -> Result<Response<BackupStream>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let taken = backup::take(&self.ctx, &caller).await.map_err(status)?;
        let mut head = Vec::new();
        herald_raft::snapshot::backup::write_header(&mut head, &taken.header)
            .map_err(|e| Status::internal(format!("backup header: {e}")))?;
        let (tx, rx) = futures::channel::mpsc::channel(2);
        // Read off the runtime; the temporary file goes with `taken` once sent (or abandoned).
        tokio::task::spawn_blocking(move || {
            use futures::SinkExt as _;
            use std::io::Read as _;
            let mut tx = tx;
            let send = |tx: &mut futures::channel::mpsc::Sender<_>, item| {
                futures::executor::block_on(tx.send(item)).is_ok()
            };
            if !send(&mut tx, Ok(BackupChunk { data: head })) {
                return;
            }
            let mut file = match std::fs::File::open(&taken.data) {
                Ok(f) => f,
                Err(e) => {
                    send(&mut tx, Err(Status::internal(format!("backup: {e}"))));
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; BACKUP_CHUNK];
                match file.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if !send(&mut tx, Ok(BackupChunk { data: buf })) {
                            return;
                        }
                    }
                    Err(e) => {
                        send(&mut tx, Err(Status::internal(format!("backup: {e}"))));
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(rx)))
    }

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<AddNodeStream>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let req = request.into_inner();
        let catch_up = match req.timeout_ms {
            0 => membership::DEFAULT_CATCH_UP,
            ms => std::time::Duration::from_millis(ms),
        };
        let new = NewMember {
            node: req.node,
            raft_addr: req.raft_addr,
            grpc_addr: req.grpc_addr,
        };
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let ctx = self.ctx.clone();
        // The change goes on when the caller goes away: a half-made change is worse than an
        // unwatched one.
        tokio::spawn(async move {
            let progress_tx = tx.clone();
            let result = membership::add_node(&ctx, &caller, new, catch_up, |p| {
                let _ = progress_tx.unbounded_send(Ok(AddNodeProgress {
                    stage: p.stage.name().to_string(),
                    node_index: p.node_index,
                    leader_index: p.leader_index,
                }));
            })
            .await;
            if let Err(e) = result {
                let _ = tx.unbounded_send(Err(status(e)));
            }
        });
        Ok(Response::new(Box::pin(rx)))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let req = request.into_inner();
        let view = membership::remove_node(&self.ctx, &caller, req.node, req.force)
            .await
            .map_err(status)?;
        Ok(Response::new(RemoveNodeResponse {
            voters: view.voters,
            learners: view.learners,
        }))
    }

    async fn list_replies(
        &self,
        request: Request<AdminListRepliesRequest>,
    ) -> Result<Response<ListRepliesResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
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
        let caller = caller(&self.ctx, &request).await?;
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
        let caller = caller(&self.ctx, &request).await?;
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
        let caller = caller(&self.ctx, &request).await?;
        let req = request.into_inner();
        let drained = admin::drain(&self.ctx, &caller, req.node, req.drained, req.force)
            .await
            .map_err(status)?;
        Ok(Response::new(DrainNodeResponse { drained }))
    }

    async fn finalize_upgrade(
        &self,
        request: Request<FinalizeUpgradeRequest>,
    ) -> Result<Response<FinalizeUpgradeResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let (previous_version, cluster_version) =
            admin::finalize(&self.ctx, &caller).await.map_err(status)?;
        Ok(Response::new(FinalizeUpgradeResponse {
            previous_version,
            cluster_version,
        }))
    }

    async fn create_client(
        &self,
        request: Request<CreateClientRequest>,
    ) -> Result<Response<NewKeyResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let req = request.into_inner();
        let key = clients::create(&self.ctx, &caller, &req.name, &req.role)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::new_key(&req.name, key)))
    }

    async fn list_clients(
        &self,
        request: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let clients = clients::list(&self.ctx, &caller).map_err(status)?;
        Ok(Response::new(ListClientsResponse {
            clients: clients.into_iter().map(convert::client_info).collect(),
        }))
    }

    async fn get_client(
        &self,
        request: Request<GetClientRequest>,
    ) -> Result<Response<ClientInfo>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let req = request.into_inner();
        let client = clients::get(&self.ctx, &caller, &req.name)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::client_info(client)))
    }

    async fn rotate_key(
        &self,
        request: Request<RotateKeyRequest>,
    ) -> Result<Response<NewKeyResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let req = request.into_inner();
        let key = clients::rotate_key(&self.ctx, &caller, &req.name)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::new_key(&req.name, key)))
    }

    async fn revoke_key(
        &self,
        request: Request<RevokeKeyRequest>,
    ) -> Result<Response<RevokeKeyResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let req = request.into_inner();
        clients::revoke_key(&self.ctx, &caller, &req.name, &req.key_id)
            .await
            .map_err(status)?;
        Ok(Response::new(RevokeKeyResponse {}))
    }

    async fn delete_client(
        &self,
        request: Request<DeleteClientRequest>,
    ) -> Result<Response<DeleteClientResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let req = request.into_inner();
        clients::delete(&self.ctx, &caller, &req.name)
            .await
            .map_err(status)?;
        Ok(Response::new(DeleteClientResponse {}))
    }

    async fn list_audit(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditResponse>, Status> {
        let caller = caller(&self.ctx, &request).await?;
        let req = request.into_inner();
        let query = audit::AuditQuery {
            principal: req.principal,
            since_ms: req.since_ms,
            after_seq: req.after_seq,
            limit: req.limit,
        };
        let entries = audit::list(&self.ctx, &caller, &query).map_err(status)?;
        Ok(Response::new(ListAuditResponse {
            entries: entries.into_iter().map(convert::audit_entry).collect(),
        }))
    }
}
