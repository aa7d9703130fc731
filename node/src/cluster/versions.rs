//! The cluster version during rolling upgrades: which build every member runs (asked over
//! `Internal.NodeInfo`, which writes nothing to the log, so an old node is never asked to apply
//! anything), whether the cluster version (the log format level in force) can be raised, and
//! raising it — by `herald cluster finalize` or by the leader once every member can apply the
//! new level (`[upgrades] auto-finalize`). It does not decide what a level allows: writers check
//! `Ctx::cluster_level()`.

use std::time::Duration;

use herald_raft::events::{event::Kind, ClusterVersionRaised, Event, Principal};
use herald_raft::network::{node_info_remote, PeerBuild};
use herald_raft::types::EventOutcome;
use openraft::async_runtime::WatchReceiver as _;
use openraft::ServerState;

use crate::context::Ctx;

/// How long a member has to answer `NodeInfo` (status calls wait for it: kept short; a member
/// down refuses the connection at once).
const ASK_TIMEOUT: Duration = Duration::from_millis(800);

/// How often the leader checks whether it may raise the cluster version.
const AUTO_FINALIZE_EVERY: Duration = Duration::from_secs(5);

/// One member's build as reported: `Err` when it could not be asked.
#[derive(Debug, Clone)]
pub struct MemberBuild {
    pub id: u64,
    pub build: Result<PeerBuild, String>,
}

impl MemberBuild {
    /// "0.1.0 (abc1234)", "older" (predates the report: format level 1) or "" (not asked).
    pub fn version_text(&self) -> String {
        match &self.build {
            Ok(PeerBuild::Known(info)) => format!("{} ({})", info.version, info.commit),
            Ok(PeerBuild::Older) => "older".into(),
            Err(_) => String::new(),
        }
    }

    /// 0: unknown.
    pub fn format_level(&self) -> u32 {
        self.build.as_ref().map(|b| b.format_level()).unwrap_or(0)
    }
}

/// Asks every member (this node answers for itself) for its build, all at once.
pub async fn member_builds(ctx: &Ctx) -> Vec<MemberBuild> {
    let metrics = ctx.raft.metrics().borrow_watched().clone();
    let members: Vec<(u64, herald_raft::types::Member)> = metrics
        .membership_config
        .membership()
        .nodes()
        .map(|(id, m)| (*id, m.clone()))
        .collect();
    let asks = members.into_iter().map(|(id, member)| async move {
        if id == ctx.id() {
            return MemberBuild {
                id,
                build: Ok(PeerBuild::Known(crate::version::node_info(id))),
            };
        }
        let addr = ctx.network.addr_of(id, &member);
        let build = match ctx.network.channel(id, &addr) {
            Ok(channel) => {
                let mut client = herald_api::v1::internal_client::InternalClient::new(channel);
                tokio::time::timeout(ASK_TIMEOUT, node_info_remote(&mut client, ASK_TIMEOUT))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {ASK_TIMEOUT:?}")))
            }
            Err(e) => Err(e),
        };
        MemberBuild { id, build }
    });
    futures::future::join_all(asks).await
}

/// Why the cluster version cannot be raised to a level every member applies.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotFinalizable {
    #[error(
        "members {nodes:?} run a version that applies only format level {level} (this build \
         applies {newest}): upgrade them first ({detail})"
    )]
    Older {
        nodes: Vec<u64>,
        level: u32,
        newest: u32,
        detail: String,
    },
    #[error(
        "members {nodes:?} could not be asked for their version ({detail}); retry when they are up"
    )]
    Unreachable { nodes: Vec<u64>, detail: String },
}

/// The level the cluster version can be raised to: the lowest level any member applies, and
/// only when every member answered. `Ok(level)` may be at or below the current version
/// (nothing to raise).
pub fn finalizable(builds: &[MemberBuild]) -> Result<u32, NotFinalizable> {
    let unreachable: Vec<&MemberBuild> = builds.iter().filter(|b| b.build.is_err()).collect();
    if !unreachable.is_empty() {
        return Err(NotFinalizable::Unreachable {
            nodes: unreachable.iter().map(|b| b.id).collect(),
            detail: unreachable
                .iter()
                .map(|b| {
                    format!(
                        "node {}: {}",
                        b.id,
                        b.build.as_ref().err().cloned().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    let lowest = builds
        .iter()
        .map(MemberBuild::format_level)
        .min()
        .unwrap_or(herald_raft::events::BASE_FORMAT_LEVEL);
    Ok(lowest)
}

/// The members below `level`, as an error naming them and their versions.
pub fn older_than(builds: &[MemberBuild], level: u32) -> Option<NotFinalizable> {
    let older: Vec<&MemberBuild> = builds.iter().filter(|b| b.format_level() < level).collect();
    if older.is_empty() {
        return None;
    }
    Some(NotFinalizable::Older {
        nodes: older.iter().map(|b| b.id).collect(),
        level: older.iter().map(|b| b.format_level()).min().unwrap_or(0),
        newest: level,
        detail: older
            .iter()
            .map(|b| format!("node {} runs {}", b.id, b.version_text()))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Raises the cluster version to this build's format level if every member applies it;
/// `principal` is who asked (None: the leader by itself). Returns (before, after).
pub async fn raise(ctx: &Ctx, principal: Option<Principal>) -> Result<(u32, u32), RaiseError> {
    let before = ctx.cluster_level();
    let builds = member_builds(ctx).await;
    let lowest = finalizable(&builds).map_err(RaiseError::Not)?;
    let target = crate::version::FORMAT_LEVEL;
    if before >= target {
        return Ok((before, before));
    }
    if lowest < target {
        return Err(RaiseError::Not(older_than(&builds, target).unwrap_or(
            NotFinalizable::Unreachable {
                nodes: Vec::new(),
                detail: "no member answered".into(),
            },
        )));
    }
    let mut event = Event::new(
        ctx.clock.now_ms(),
        Kind::ClusterVersionRaised(ClusterVersionRaised { level: target }),
    );
    if let Some(p) = principal {
        event = event.by(p);
    }
    let outcomes = ctx
        .proposer
        .propose(vec![event])
        .await
        .map_err(|e| RaiseError::NotCommitted(e.to_string()))?;
    match outcomes.first() {
        Some(EventOutcome::Applied) | Some(EventOutcome::Ignored { .. }) => {}
        other => {
            return Err(RaiseError::NotCommitted(format!(
                "unexpected outcome {other:?}"
            )))
        }
    }
    let after = ctx.cluster_level();
    Ok((before, after.max(target)))
}

#[derive(Debug, thiserror::Error)]
pub enum RaiseError {
    #[error("{0}")]
    Not(NotFinalizable),
    #[error("the cluster version change was not committed: {0}")]
    NotCommitted(String),
}

/// On the leader, with `[upgrades] auto-finalize` (the default): raises the cluster version as
/// soon as every member runs a build that applies this build's level.
pub async fn run_auto_finalize(ctx: Ctx) {
    if !ctx.config.upgrades.auto_finalize {
        return;
    }
    let mut tick = tokio::time::interval(AUTO_FINALIZE_EVERY);
    let mut metrics = ctx.raft.metrics();
    let mut was_leader = false;
    loop {
        // Every few seconds, and at once when this node becomes leader: a new cluster's first
        // leader raises the version as soon as it is elected, not a tick later.
        let became_leader = tokio::select! {
            _ = tick.tick() => false,
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                let leader = metrics.borrow_watched().state == ServerState::Leader;
                let became = leader && !was_leader;
                was_leader = leader;
                if !became {
                    continue;
                }
                true
            }
        };
        if ctx.is_stopping() {
            return;
        }
        let state = ctx.raft.metrics().borrow_watched().state;
        was_leader = state == ServerState::Leader;
        if !was_leader || ctx.cluster_level() >= crate::version::FORMAT_LEVEL {
            continue;
        }
        tracing::debug!(
            became_leader,
            "checking whether every member applies this build's level"
        );
        match raise(&ctx, None).await {
            Ok((before, after)) if after > before => {
                tracing::info!(
                    before,
                    after,
                    "every member applies it: cluster version raised"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("cluster version not raised yet: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_api::v1::NodeInfoReply;

    fn known(id: u64, level: u32) -> MemberBuild {
        MemberBuild {
            id,
            build: Ok(PeerBuild::Known(NodeInfoReply {
                node_id: id,
                version: "0.1.0".into(),
                commit: "abc".into(),
                format_level: level,
                wall_clock_ms: 0,
            })),
        }
    }

    #[test]
    fn the_cluster_version_rises_only_when_every_member_applies_it() {
        assert_eq!(finalizable(&[known(1, 2), known(2, 2), known(3, 2)]), Ok(2));
        let mixed = [
            known(1, 2),
            MemberBuild {
                id: 2,
                build: Ok(PeerBuild::Older),
            },
            known(3, 2),
        ];
        assert_eq!(finalizable(&mixed), Ok(1));
        let e = older_than(&mixed, 2).expect("node 2 is older").to_string();
        assert!(
            e.starts_with("members [2] run a version that applies only format level 1"),
            "{e}"
        );
        assert!(e.contains("node 2 runs older"), "{e}");
        let down = [
            known(1, 2),
            MemberBuild {
                id: 3,
                build: Err("connection refused".into()),
            },
        ];
        let e = finalizable(&down).unwrap_err().to_string();
        assert!(e.contains("members [3] could not be asked"), "{e}");
        assert!(e.contains("node 3: connection refused"), "{e}");
    }
}
