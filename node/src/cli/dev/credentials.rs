//! The dev cluster's demo client: a sender named `demo`, created through the Admin API with the
//! run's bootstrap admin key once the cluster is up. A cluster started again on its data already
//! has it: its live keys are revoked and a new one is made, since keys are shown only once.

use herald_api::v1::admin_client::AdminClient;
use herald_api::v1::{CreateClientRequest, GetClientRequest, RevokeKeyRequest, RotateKeyRequest};
use secrecy::SecretString;

use crate::cli::connect::Connector;

pub const DEMO: &str = "demo";

/// A fresh key of the `demo` sender, made with the `admin` key through `endpoint`.
pub async fn demo_key(node: &Connector, admin: &SecretString) -> anyhow::Result<SecretString> {
    let channel = node
        .clone()
        .api_key(admin.clone())
        .request_timeout(std::time::Duration::from_secs(10))
        .channel()
        .await?;
    let mut client = AdminClient::new(channel);
    let created = client
        .create_client(CreateClientRequest {
            name: DEMO.into(),
            role: "sender".into(),
        })
        .await;
    match created {
        Ok(answer) => return Ok(SecretString::from(answer.into_inner().key)),
        Err(status) if status.code() == tonic::Code::Aborted => {}
        Err(status) => anyhow::bail!("creating the demo client: {}", status.message()),
    }
    let existing = client
        .get_client(GetClientRequest { name: DEMO.into() })
        .await
        .map_err(|s| anyhow::anyhow!("reading the demo client: {}", s.message()))?
        .into_inner();
    for key in existing.keys.iter().filter(|k| k.revoked_at_ms == 0) {
        client
            .revoke_key(RevokeKeyRequest {
                name: DEMO.into(),
                key_id: key.key_id.clone(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("revoking the demo client's old key: {}", s.message()))?;
    }
    let rotated = client
        .rotate_key(RotateKeyRequest { name: DEMO.into() })
        .await
        .map_err(|s| anyhow::anyhow!("making the demo client's key: {}", s.message()))?;
    Ok(SecretString::from(rotated.into_inner().key))
}
