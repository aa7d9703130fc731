//! Where a simulator's status reports go, for every simulator that sends them on the client's
//! own connections (CMPP, SMPP, SMGP, CNGP): the open connections of each account, and the
//! reports waiting for one. A report goes to the connection its submit came on if it is still
//! open, else to any other of the account, else waits; a closing connection hands back what it
//! still owes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::mpsc;

/// What a connection's task is handed besides its own inbound PDUs.
pub(crate) enum ConnMsg<R, P> {
    /// A status report to send (type `R`, each simulator's own).
    Report(R),
    /// A PDU to send as it is: a response held back by a fault setting (it frees a slot of the
    /// connection's window).
    Send(P),
}

pub(crate) type ConnTx<R, P> = mpsc::UnboundedSender<ConnMsg<R, P>>;

/// A connection that takes reports: its id and its task's queue.
type Conn<R, P> = (u64, ConnTx<R, P>);

pub(crate) struct ReportRouter<R, P> {
    state: Mutex<State<R, P>>,
}

struct State<R, P> {
    /// Connections that take reports, per account.
    conns: HashMap<String, Vec<Conn<R, P>>>,
    /// Reports waiting for a connection of their account.
    queued: HashMap<String, VecDeque<R>>,
}

impl<R, P> Default for ReportRouter<R, P> {
    fn default() -> Self {
        ReportRouter {
            state: Mutex::new(State {
                conns: HashMap::new(),
                queued: HashMap::new(),
            }),
        }
    }
}

impl<R, P> ReportRouter<R, P> {
    /// Registers connection `id` of `account` and hands it the reports queued for the account.
    /// Returns how many connections the account now has open.
    pub(crate) fn attach(&self, account: &str, id: u64, tx: ConnTx<R, P>) -> usize {
        let Ok(mut state) = self.state.lock() else {
            return 0;
        };
        if let Some(queued) = state.queued.remove(account) {
            for report in queued {
                // The receiver is alive: this connection has not even started reading.
                let _ = tx.send(ConnMsg::Report(report));
            }
        }
        let list = state.conns.entry(account.to_string()).or_default();
        list.push((id, tx));
        list.len()
    }

    /// The ids of the account's open connections, in the order they logged in.
    pub(crate) fn connections(&self, account: &str) -> Vec<u64> {
        self.state
            .lock()
            .map(|state| {
                state
                    .conns
                    .get(account)
                    .map(|list| list.iter().map(|(id, _)| *id).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    pub(crate) fn detach(&self, account: &str, id: u64) {
        if let Ok(mut state) = self.state.lock() {
            if let Some(list) = state.conns.get_mut(account) {
                list.retain(|(c, _)| *c != id);
            }
        }
    }

    /// Sends a report to the preferred connection if it is still open, else to any connection
    /// of the account, else queues it.
    pub(crate) fn dispatch(&self, account: &str, preferred: Option<u64>, report: R) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let mut msg = ConnMsg::Report(report);
        if let Some(list) = state.conns.get(account) {
            let ordered = list
                .iter()
                .filter(|(id, _)| Some(*id) == preferred)
                .chain(list.iter().filter(|(id, _)| Some(*id) != preferred));
            for (_, tx) in ordered {
                match tx.send(msg) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(back)) => msg = back,
                }
            }
        }
        if let ConnMsg::Report(report) = msg {
            state
                .queued
                .entry(account.to_string())
                .or_default()
                .push_back(report);
        }
    }

    /// A connection closed: whatever it still owes its account — reports sent but not
    /// acknowledged (`unacked`, by sequence number, first) and reports not yet sent — goes to
    /// another connection or the queue, unless the simulator is shutting down.
    pub(crate) fn hand_back(
        &self,
        account: &str,
        id: u64,
        mut rx: mpsc::UnboundedReceiver<ConnMsg<R, P>>,
        unacked: HashMap<u32, R>,
        shutting_down: bool,
    ) {
        self.detach(account, id);
        rx.close();
        let mut unacked: Vec<(u32, R)> = unacked.into_iter().collect();
        unacked.sort_by_key(|(seq, _)| *seq);
        let mut leftovers: Vec<R> = unacked.into_iter().map(|(_, r)| r).collect();
        while let Ok(msg) = rx.try_recv() {
            if let ConnMsg::Report(r) = msg {
                leftovers.push(r);
            }
        }
        if !shutting_down {
            for report in leftovers {
                self.dispatch(account, None, report);
            }
        }
    }
}

/// YYMMDDhhmm, now: the done time of a simulated report.
pub(crate) fn yymmddhhmm() -> String {
    chrono::Local::now().format("%y%m%d%H%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(rx: &mut mpsc::UnboundedReceiver<ConnMsg<u32, ()>>) -> Vec<u32> {
        let mut out = Vec::new();
        while let Ok(ConnMsg::Report(r)) = rx.try_recv() {
            out.push(r);
        }
        out
    }

    #[test]
    fn reports_prefer_their_connection_then_any_then_wait() {
        let router = ReportRouter::<u32, ()>::default();
        router.dispatch("a", None, 1);
        let (tx1, mut rx1) = mpsc::unbounded_channel();
        assert_eq!(router.attach("a", 1, tx1), 1);
        assert_eq!(reports(&mut rx1), vec![1]);
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        assert_eq!(router.attach("a", 2, tx2), 2);
        router.dispatch("a", Some(2), 2);
        router.dispatch("a", Some(9), 3);
        assert_eq!(reports(&mut rx2), vec![2]);
        assert_eq!(reports(&mut rx1), vec![3]);
    }

    #[test]
    fn a_closing_connection_hands_back_unacked_reports_first() {
        let router = ReportRouter::<u32, ()>::default();
        let (tx1, rx1) = mpsc::unbounded_channel();
        router.attach("a", 1, tx1.clone());
        router.dispatch("a", Some(1), 30);
        drop(tx1);
        router.hand_back("a", 1, rx1, HashMap::from([(7, 20), (3, 10)]), false);
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        router.attach("a", 2, tx2);
        assert_eq!(reports(&mut rx2), vec![10, 20, 30]);

        let (tx3, rx3) = mpsc::unbounded_channel();
        router.attach("b", 3, tx3);
        router.hand_back("b", 3, rx3, HashMap::from([(1, 40)]), true);
        let (tx4, mut rx4) = mpsc::unbounded_channel();
        router.attach("b", 4, tx4);
        assert!(reports(&mut rx4).is_empty());
    }
}
