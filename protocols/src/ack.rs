//! Deferred acknowledgements of what a carrier delivers to us: delivery reports and
//! mobile-originated (MO) messages or their parts.
//!
//! A carrier forgets what it delivered once we acknowledge it (CMPP DELIVER_RESP, SMPP
//! deliver_sm_resp, …). If we acknowledged on receipt and the node died before the item was
//! durably recorded, it would be lost: a report's message would never reach a terminal state, a
//! subscriber's reply (or one part of it) would vanish. So the item travels to the application
//! with an [`Ack`]; the protocol's response is sent only when the application completes it. An ack
//! that is dropped, or not completed in time, sends no response: the carrier keeps the item and
//! delivers it again (to whichever node holds the link by then).

use std::fmt;
use std::time::Duration;

use tokio::sync::oneshot;

/// Completed by the application once it has made the delivered item durable.
#[derive(Default)]
pub struct Ack(Option<oneshot::Sender<()>>);

/// The engine's half of an [`Ack`].
pub struct AckWaiter(oneshot::Receiver<()>);

impl Ack {
    pub fn pair() -> (Ack, AckWaiter) {
        let (tx, rx) = oneshot::channel();
        (Ack(Some(tx)), AckWaiter(rx))
    }

    /// An ack nobody waits for: for items the protocol acknowledged already.
    pub fn none() -> Ack {
        Ack(None)
    }

    /// Lets the protocol send its acknowledgement.
    pub fn done(mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A copy cannot acknowledge: only the original, held by whoever persists the item, can.
impl Clone for Ack {
    fn clone(&self) -> Self {
        Ack(None)
    }
}

/// Acks carry no data: two events that differ only in their ack are equal.
impl PartialEq for Ack {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Ack {}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Ack(pending)"
        } else {
            "Ack(none)"
        })
    }
}

impl AckWaiter {
    /// True when the application completed the ack within `limit`.
    pub async fn wait(self, limit: Duration) -> bool {
        matches!(tokio::time::timeout(limit, self.0).await, Ok(Ok(())))
    }
}
