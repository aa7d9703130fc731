//! The cluster clock: the "now" every decision of this node reads (event stamps, expiry, release
//! of scheduled messages, quiet hours, send-time validation, link retries, placement). It is the
//! **median of the voters' wall clocks** (this node's included), each measured as an offset
//! against this node's *monotonic* clock, NTP-style: the time a peer's `Internal.NodeInfo`
//! answer carries, against the midpoint of the call (error: half the round trip). Between samples
//! it runs on the monotonic clock, so a step of this node's wall clock (NTP step, VM resume,
//! operator error) moves only this node's own vote, which a majority of sane clocks outvotes.
//!
//! Until it holds fresh samples from a majority of the voters (the first second after start, or
//! while cut off from the majority), it reads this node's own wall clock, as before.
//!
//! It is not a source of true time (it never corrects the system clock) and not used for
//! durations: timeouts, leases, rate limits and Raft's timers run on the monotonic clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herald_raft::network::{node_info_remote, PeerBuild};
use herald_raft::types::NodeId;
use openraft::async_runtime::WatchReceiver as _;

use crate::context::Ctx;

/// How often every voter's clock is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// A sample older than this no longer votes (its node is down or unreachable): a clock that has
/// stepped since cannot be seen, so it must not count toward the majority.
pub const SAMPLE_MAX_AGE: Duration = Duration::from_secs(10);

/// How long a peer has to answer; a slower answer would make a poor sample (error RTT/2).
const ASK_TIMEOUT: Duration = Duration::from_millis(800);

/// The wall clock of this machine, milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    herald_raft::events::now_ms()
}

/// One peer's clock against ours.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The peer's wall clock minus this node's monotonic clock (ms).
    offset_ms: i64,
    /// Half the round trip of the call that measured it (ms).
    error_ms: u64,
    taken: Instant,
}

/// The clock a node's decisions read; see the module doc.
pub struct ClusterClock {
    id: NodeId,
    /// The monotonic origin, and this node's wall clock then: the monotonic clock in ms is
    /// `origin_wall_ms + origin.elapsed()`.
    origin: Instant,
    origin_wall_ms: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The voters, as of the last sampling round (empty: not known yet).
    voters: BTreeSet<NodeId>,
    samples: BTreeMap<NodeId, Sample>,
    /// Voters that answered without a clock (a build before the cluster clock, during a rolling
    /// upgrade): they cannot vote, so the majority is counted without them.
    without_clock: BTreeSet<NodeId>,
}

/// How "now" was read, for the metric and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// The cluster's now (ms since the epoch).
    pub now_ms: u64,
    /// This node's wall clock minus the cluster's now (ms): how far its own clock is off.
    pub own_offset_ms: i64,
    /// Whether a majority of voters voted (false: this node's own wall clock was used).
    pub majority: bool,
}

impl ClusterClock {
    pub fn new(id: NodeId) -> Self {
        ClusterClock {
            id,
            origin: Instant::now(),
            origin_wall_ms: wall_ms(),
            state: Mutex::new(State::default()),
        }
    }

    /// The monotonic clock at `at`, in ms, anchored on the wall clock at start.
    fn mono_ms(&self, at: Instant) -> i64 {
        let elapsed = at.saturating_duration_since(self.origin).as_millis() as i64;
        self.origin_wall_ms as i64 + elapsed
    }

    /// The cluster's now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.read().now_ms
    }

    /// The cluster's now and how it was had.
    pub fn read(&self) -> Reading {
        let at = Instant::now();
        let wall = wall_ms();
        let mono = self.mono_ms(at);
        let own = wall as i64 - mono;
        let offsets: Option<Vec<i64>> = self.state.lock().ok().and_then(|s| {
            let mut offsets = vec![own];
            for (id, sample) in &s.samples {
                if *id != self.id
                    && s.voters.contains(id)
                    && at.saturating_duration_since(sample.taken) <= SAMPLE_MAX_AGE
                {
                    offsets.push(sample.offset_ms);
                }
            }
            // A majority of the voters, this node counted once whether it votes or not. Before
            // the first sampling round the voters are not known: no majority.
            let voters = s.voters.difference(&s.without_clock).count();
            (voters > 0 && offsets.len() > voters / 2).then_some(offsets)
        });
        match offsets {
            Some(offsets) => {
                let now = mono + median(offsets);
                let now_ms = u64::try_from(now).unwrap_or(0);
                Reading {
                    now_ms,
                    own_offset_ms: wall as i64 - now_ms as i64,
                    majority: true,
                }
            }
            None => Reading {
                now_ms: wall,
                own_offset_ms: 0,
                majority: false,
            },
        }
    }

    /// Records peer `id`'s wall clock `peer_wall_ms`, answered to a call sent at `sent` and
    /// answered at `received` (both on the monotonic clock).
    pub fn record(&self, id: NodeId, sent: Instant, received: Instant, peer_wall_ms: u64) {
        let rtt = received.saturating_duration_since(sent).as_millis() as i64;
        let midpoint = self.mono_ms(sent) + rtt / 2;
        let sample = Sample {
            offset_ms: peer_wall_ms as i64 - midpoint,
            error_ms: (rtt / 2) as u64,
            taken: received,
        };
        if let Ok(mut s) = self.state.lock() {
            s.samples.insert(id, sample);
            s.without_clock.remove(&id);
        }
    }

    /// Peer `id` answered but reports no clock (a build before the cluster clock).
    pub fn record_without_clock(&self, id: NodeId) {
        if let Ok(mut s) = self.state.lock() {
            s.samples.remove(&id);
            s.without_clock.insert(id);
        }
    }

    /// The voters whose clocks vote (this node need not be one).
    pub fn set_voters(&self, voters: BTreeSet<NodeId>) {
        if let Ok(mut s) = self.state.lock() {
            s.samples.retain(|id, _| voters.contains(id));
            s.without_clock.retain(|id| voters.contains(id));
            s.voters = voters;
        }
    }

    /// Whether a majority of the voters' clocks votes now (false: "now" is this node's own wall
    /// clock). The leader's timers wait for it, so a leader elected in the first second after a
    /// start with a stepped clock does not expire or release by that clock.
    pub fn has_majority(&self) -> bool {
        self.read().majority
    }

    /// The largest measurement error (half a round trip) among the fresh samples, in ms.
    pub fn sample_error_ms(&self) -> u64 {
        let at = Instant::now();
        self.state
            .lock()
            .map(|s| {
                s.samples
                    .values()
                    .filter(|x| at.saturating_duration_since(x.taken) <= SAMPLE_MAX_AGE)
                    .map(|x| x.error_ms)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }
}

/// The median; of an even count, the mean of the two middle values.
fn median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    let n = values.len();
    if n == 0 {
        return 0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2
    }
}

/// Samples every other voter's clock every [`SAMPLE_EVERY`], all at once, for as long as the
/// node runs; sets the offset gauge.
pub async fn run(ctx: Ctx) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned_at: Option<Instant> = None;
    loop {
        tick.tick().await;
        let membership = ctx
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone();
        let voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
        let members: Vec<(NodeId, herald_raft::types::Member)> = membership
            .membership()
            .nodes()
            .filter(|(id, _)| **id != ctx.id() && voters.contains(id))
            .map(|(id, m)| (*id, m.clone()))
            .collect();
        ctx.clock.set_voters(voters);
        let asks = members.into_iter().map(|(id, member)| {
            let ctx = ctx.clone();
            async move { sample(&ctx, id, &member).await }
        });
        futures::future::join_all(asks).await;
        let reading = ctx.clock.read();
        ctx.metrics
            .clock_offset
            .set(reading.own_offset_ms as f64 / 1000.0);
        if reading.own_offset_ms.unsigned_abs() > 5_000
            && warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(60))
        {
            warned_at = Some(Instant::now());
            tracing::warn!(
                offset_ms = reading.own_offset_ms,
                "this node's wall clock is {:.1} s off the median of the voters' clocks; \
                 decisions use the cluster clock, but fix the node's time source",
                reading.own_offset_ms as f64 / 1000.0
            );
        }
    }
}

async fn sample(ctx: &Ctx, id: NodeId, member: &herald_raft::types::Member) {
    let addr = ctx.network.addr_of(id, member);
    let Ok(channel) = ctx.network.channel(id, &addr) else {
        return;
    };
    let mut client = herald_api::v1::internal_client::InternalClient::new(channel);
    let sent = Instant::now();
    let answer =
        tokio::time::timeout(ASK_TIMEOUT, node_info_remote(&mut client, ASK_TIMEOUT)).await;
    let received = Instant::now();
    // A peer that predates the field answers 0 (or predates NodeInfo): its clock is not known,
    // and it does not vote — nor count toward the majority, so that during a rolling upgrade
    // the upgraded nodes keep deciding (by their own clocks, as the old build does).
    match answer {
        Ok(Ok(PeerBuild::Known(info))) if info.wall_clock_ms > 0 => {
            ctx.clock.record(id, sent, received, info.wall_clock_ms);
        }
        Ok(Ok(_)) => ctx.clock.record_without_clock(id),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock_with(voters: &[NodeId]) -> ClusterClock {
        let c = ClusterClock::new(1);
        c.set_voters(voters.iter().copied().collect());
        c
    }

    /// Records a peer whose wall clock is `skew_ms` off this machine's, measured now.
    fn peer(c: &ClusterClock, id: NodeId, skew_ms: i64) {
        let at = Instant::now();
        c.record(id, at, at, (wall_ms() as i64 + skew_ms) as u64);
    }

    fn close(a: u64, b: u64, within: u64) -> bool {
        a.abs_diff(b) <= within
    }

    #[test]
    fn without_a_majority_of_samples_it_reads_the_own_wall_clock() {
        let c = clock_with(&[1, 2, 3, 4, 5]);
        peer(&c, 2, 3_600_000);
        let r = c.read();
        assert!(!r.majority);
        assert!(close(r.now_ms, wall_ms(), 50));
    }

    #[test]
    fn before_the_voters_are_known_there_is_no_majority() {
        let c = ClusterClock::new(1);
        assert!(!c.has_majority());
        c.set_voters([1].into_iter().collect());
        assert!(
            c.has_majority(),
            "a single-voter cluster is its own majority"
        );
    }

    #[test]
    fn peers_without_a_clock_do_not_count_toward_the_majority() {
        // One upgraded node among two of an older build: it decides by its own clock.
        let c = clock_with(&[1, 2, 3]);
        assert!(!c.has_majority());
        c.record_without_clock(2);
        c.record_without_clock(3);
        assert!(c.has_majority());
        // Node 2 upgraded: its clock votes again, and two of two voters with clocks agree.
        peer(&c, 2, 10);
        assert!(c.has_majority());
        assert!(close(c.now_ms(), wall_ms(), 100));
    }

    #[test]
    fn one_skewed_peer_of_three_is_outvoted() {
        let c = clock_with(&[1, 2, 3]);
        peer(&c, 2, 2 * 3_600_000);
        peer(&c, 3, 40);
        let r = c.read();
        assert!(r.majority);
        // The median is this node's clock or node 3's, both within 40 ms of the wall clock.
        assert!(close(r.now_ms, wall_ms(), 100), "{r:?}");
    }

    #[test]
    fn a_skewed_own_clock_is_outvoted_and_its_offset_reported() {
        // This node's wall clock is right; both peers read 3 h later: the majority says so.
        let c = clock_with(&[1, 2, 3]);
        peer(&c, 2, 3 * 3_600_000);
        peer(&c, 3, 3 * 3_600_000 + 20);
        let r = c.read();
        assert!(close(r.now_ms, wall_ms() + 3 * 3_600_000, 100), "{r:?}");
        assert!((r.own_offset_ms + 3 * 3_600_000).abs() < 100, "{r:?}");
    }

    #[test]
    fn samples_of_non_voters_and_stale_samples_do_not_vote() {
        let c = clock_with(&[1, 2, 3]);
        peer(&c, 7, 3_600_000);
        let old = Instant::now() - SAMPLE_MAX_AGE - Duration::from_secs(1);
        c.record(2, old, old, wall_ms() + 3_600_000);
        assert!(!c.read().majority);
    }

    #[test]
    fn the_round_trip_splits_at_its_midpoint() {
        let c = clock_with(&[1, 2]);
        let sent = Instant::now();
        let received = sent + Duration::from_millis(400);
        // The peer answered with its clock at the midpoint: it reads 1 s ahead of ours.
        let peer_wall = c.mono_ms(sent) + 200 + 1000;
        c.record(2, sent, received, peer_wall as u64);
        assert_eq!(c.sample_error_ms(), 200);
        let s = c.state.lock().map(|s| s.samples[&2]).expect("sample");
        assert_eq!(s.offset_ms, 1000);
    }

    #[test]
    fn median_of_even_counts_is_the_middle_mean() {
        assert_eq!(median(vec![5, 1, 3]), 3);
        assert_eq!(median(vec![4, 1, 3, 100]), 3);
        assert_eq!(median(vec![7]), 7);
    }
}
