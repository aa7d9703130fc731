//! The standard gRPC health service (`grpc.health.v1.Health`) on the public port, for load
//! balancers and orchestrators that speak gRPC: service "" is liveness (serving while the
//! process answers), service "herald.v1.Messaging" is readiness ([`crate::health::readiness`]),
//! re-evaluated every [`PERIOD`] so `Watch` callers see changes.

use std::time::Duration;

use herald_api::v1::messaging_server::MessagingServer;
use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;

use crate::context::Ctx;
use crate::grpc::messaging::MessagingService;

/// How often readiness is re-evaluated for the health service.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Keeps the Messaging service's status following readiness until `shutdown`.
pub async fn follow_readiness(ctx: Ctx, reporter: HealthReporter, shutdown: CancellationToken) {
    let mut last = None;
    loop {
        let check = ctx.clone();
        let ready = tokio::task::spawn_blocking(move || crate::health::readiness(&check).is_ok())
            .await
            .unwrap_or(false);
        if last != Some(ready) {
            if ready {
                reporter
                    .set_serving::<MessagingServer<MessagingService>>()
                    .await;
            } else {
                reporter
                    .set_not_serving::<MessagingServer<MessagingService>>()
                    .await;
            }
            last = Some(ready);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PERIOD) => {}
        }
    }
}
