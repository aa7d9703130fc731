//! Mobile-originated messages the simulators inject on their own ([`SimFaults::mo_every`]):
//! which text, from which subscriber, to which SP number, recorded whole and then sent in parts.
//! Every simulator injects them the same way so a reply test can run against any protocol; each
//! only cuts the text the way its protocol does and builds its own deliver for a part.
//!
//! The simulators that answer on the client's own connections (CMPP, SMPP, SMGP, CNGP) send the
//! parts through their [`ReportRouter`] with [`inject`], so an MO part, like a report, is kept
//! until acknowledged and sent again on another connection of the account when its connection
//! closes first. SGIP's gateway sends them on its own connection to the SP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::time::{Interval, MissedTickBehavior};

use super::faults::SimFaults;
use super::now_ms;
use super::router::ReportRouter;

/// The subscriber injected MOs come from unless [`SimFaults::mo_from`] names one.
pub const MO_SUBSCRIBER: &str = "13800138000";

/// One injected MO before it is cut into parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InjectedMo {
    /// 1-based, over the simulator's life.
    pub n: u64,
    pub src: String,
    pub dest: String,
    pub text: String,
}

/// Counts the MOs a simulator injected.
#[derive(Debug, Default)]
pub(crate) struct MoInjector {
    seen: AtomicU64,
}

impl MoInjector {
    /// The next MO: the configured text (default "MO n"), sender (default [`MO_SUBSCRIBER`])
    /// and destination (default `sp_number`, the SP's own number as the simulator knows it).
    pub(crate) fn next(&self, settings: &SimFaults, sp_number: &str) -> InjectedMo {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        InjectedMo {
            n,
            text: settings
                .mo_text
                .clone()
                .unwrap_or_else(|| format!("MO {n}")),
            src: settings
                .mo_from
                .clone()
                .unwrap_or_else(|| MO_SUBSCRIBER.to_string()),
            dest: settings
                .mo_to
                .clone()
                .unwrap_or_else(|| sp_number.to_string()),
        }
    }
}

/// The period of a connection's MO injection, and its timer (which never fires when there is
/// none: the caller guards its `select!` branch with the period).
pub(crate) fn ticker(settings: &SimFaults) -> (Option<Duration>, Interval) {
    let every = settings.mo_every.filter(|d| !d.is_zero());
    let mut tick = tokio::time::interval(every.unwrap_or(Duration::from_secs(3600)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.reset();
    (every, tick)
}

/// The connection each of `parts` parts goes out on: all on `conn`, or with `spread` one per
/// connection of `open` (the account's, in login order) in turn, starting with `conn`.
pub(crate) fn spread_over(conn: u64, open: &[u64], spread: bool, parts: usize) -> Vec<u64> {
    if !spread || open.is_empty() {
        return vec![conn; parts];
    }
    let start = open.iter().position(|c| *c == conn).unwrap_or(0);
    open.iter()
        .cycle()
        .skip(start)
        .take(parts)
        .copied()
        .collect()
}

/// Injects one MO, its turn coming on connection `conn` of `account`: `parts` cuts it into the
/// protocol's delivers (each with the id it is recorded under), the whole is recorded, and the
/// parts go to the router (see [`spread_over`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn inject<R, P>(
    injector: &MoInjector,
    settings: &SimFaults,
    router: &ReportRouter<R, P>,
    record: impl Fn(serde_json::Value),
    account: &str,
    conn: u64,
    sp_number: &str,
    parts: impl FnOnce(&InjectedMo) -> Vec<(String, R)>,
) {
    let mo = injector.next(settings, sp_number);
    let parts = parts(&mo);
    record(json!({
        "kind": "mo",
        "account": account,
        "mo": mo.n,
        "msg_ids": parts.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        "src": mo.src,
        "dest": mo.dest,
        "text": mo.text,
        "at_ms": now_ms(),
    }));
    let conns = spread_over(
        conn,
        &router.connections(account),
        settings.mo_spread,
        parts.len(),
    );
    for ((_, part), to) in parts.into_iter().zip(conns) {
        router.dispatch(account, Some(to), part);
    }
}

/// The record line of an MO part sent on a connection.
pub(crate) fn part_record(
    account: &str,
    conn: u64,
    msg_id: &str,
    sequence: u32,
) -> serde_json::Value {
    json!({
        "kind": "mo_part",
        "account": account,
        "conn": conn,
        "msg_id": msg_id,
        "seq": sequence,
        "at_ms": now_ms(),
    })
}

/// The record line of an MO part the client acknowledged.
pub(crate) fn acked_record(msg_id: &str) -> serde_json::Value {
    json!({
        "kind": "mo_acked",
        "msg_id": msg_id,
        "at_ms": now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_on_their_connection_or_spread_from_it() {
        assert_eq!(spread_over(7, &[3, 7, 9], false, 3), [7, 7, 7]);
        assert_eq!(spread_over(7, &[3, 7, 9], true, 4), [7, 9, 3, 7]);
        assert_eq!(spread_over(5, &[], true, 2), [5, 5]);
    }

    #[test]
    fn defaults_name_the_mo_and_the_sp() {
        let injector = MoInjector::default();
        let plain = injector.next(&SimFaults::default(), "10690001");
        assert_eq!(
            plain,
            InjectedMo {
                n: 1,
                src: MO_SUBSCRIBER.into(),
                dest: "10690001".into(),
                text: "MO 1".into(),
            }
        );
        let set = SimFaults {
            mo_text: Some("hi".into()),
            mo_from: Some("13900000000".into()),
            mo_to: Some("1069000188".into()),
            ..SimFaults::default()
        };
        let next = injector.next(&set, "10690001");
        assert_eq!((next.n, next.text.as_str()), (2, "hi"));
        assert_eq!(
            (next.src.as_str(), next.dest.as_str()),
            ("13900000000", "1069000188")
        );
    }
}
