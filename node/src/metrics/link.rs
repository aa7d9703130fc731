//! The metric handles of one link slot, resolved once when the slot starts so that a submit or a
//! report costs atomic increments only (no label lookup, no allocation) on the hot path.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

use super::Metrics;

#[derive(Clone)]
pub struct LinkMetrics {
    pub submits: IntCounter,
    pub window_in_use: IntGauge,
    pub submit_rtt: Histogram,
    pub flow_control: IntCounter,
    pub reconnects: IntCounter,
    pub reports_delivered: IntCounter,
    pub reports_undelivered: IntCounter,
    pub replies_received: IntCounter,
    refusals: IntCounterVec,
    link: String,
}

impl LinkMetrics {
    pub fn new(m: &Metrics, link: &str) -> LinkMetrics {
        let l = [link];
        LinkMetrics {
            submits: m.link_submits.with_label_values(&l),
            window_in_use: m.link_window_in_use.with_label_values(&l),
            submit_rtt: m.link_submit_rtt.with_label_values(&l),
            flow_control: m.link_flow_control.with_label_values(&l),
            reconnects: m.link_reconnects.with_label_values(&l),
            reports_delivered: m.delivery_reports.with_label_values(&[link, "delivered"]),
            reports_undelivered: m.delivery_reports.with_label_values(&[link, "undelivered"]),
            replies_received: m.replies_received.with_label_values(&l),
            refusals: m.carrier_refusals.clone(),
            link: link.to_string(),
        }
    }

    /// A carrier refusal, by its normalised code (`protocol:number`, e.g. `cmpp:8`): bounded by
    /// the protocol's code space, never the carrier's text.
    pub fn refused(&self, protocol: &str, code: u32) {
        self.refusals
            .with_label_values(&[self.link.as_str(), &format!("{protocol}:{code}")])
            .inc();
    }

    /// A delivery report received on this slot.
    pub fn report(&self, delivered: bool) {
        if delivered {
            self.reports_delivered.inc();
        } else {
            self.reports_undelivered.inc();
        }
    }
}
