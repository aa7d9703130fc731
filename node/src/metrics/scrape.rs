//! Values read from the node's state when `/metrics` is scraped: queue depths and ages,
//! scheduled and in-flight counts (bounded key scans of the projection, see [`SCAN_CAP`]), link
//! state, RocksDB sizes, disk space, certificate expiry, draining. Runs on a blocking thread.

use crate::context::NodeContext;
use crate::policy::CLASS_NAMES;

/// The most keys one gauge counts per scrape. The projection keeps a count per queue, not per
/// class, and no count of scheduled or in-flight messages; a key-only scan is cheap, and capping
/// it keeps a scrape of a node with a huge backlog short. A gauge at the cap reads "at least".
pub const SCAN_CAP: u64 = 100_000;

/// Refreshes every scrape-time value.
pub fn refresh(ctx: &NodeContext) {
    let m = &ctx.metrics;
    let now_ms = ctx.clock.now_ms();
    let table = ctx.reader.links().ok();
    for link in &ctx.config.links {
        let name = link.name.as_str();
        queue_gauges(ctx, name, name, now_ms);
        match ctx.reader.inflight_count(name, SCAN_CAP) {
            Ok(n) => m.inflight_messages.with_label_values(&[name]).set(gauge(n)),
            Err(e) => tracing::warn!(link = name, "metrics: counting in-flight messages: {e}"),
        }
        let slots = link.slots();
        let up = slots.iter().any(|s| ctx.is_link_connected(s));
        m.link_up.with_label_values(&[name]).set(i64::from(up));
        let held = table.as_ref().is_some_and(|t| {
            slots
                .iter()
                .any(|s| t.holder(s).is_some_and(|h| h.node == ctx.id()))
        });
        m.link_held.with_label_values(&[name]).set(i64::from(held));
    }
    for route in &ctx.policy().routes {
        let queue = herald_raft::records::queue_name(&route.name, "");
        queue_gauges(ctx, &queue, &format!("route:{}", route.name), now_ms);
    }
    match ctx.reader.scheduled_count(SCAN_CAP) {
        Ok(n) => m.scheduled_messages.set(gauge(n)),
        Err(e) => tracing::warn!("metrics: counting scheduled messages: {e}"),
    }
    let sizes = ctx.reader.storage_sizes();
    for (kind, v) in [
        ("live_sst", sizes.live_sst),
        ("total_sst", sizes.total_sst),
        ("memtable", sizes.memtable),
    ] {
        m.rocksdb_size.with_label_values(&[kind]).set(gauge(v));
    }
    // The disk watcher's last measurement (every 250 ms), the one the write refusals act on.
    let total = ctx.disk.total();
    if total > 0 {
        m.disk_free.set(gauge(ctx.disk.free()));
        m.disk_total.set(gauge(total));
    }
    if let Some(tls) = &ctx.tls {
        let loaded = tls.current();
        m.tls_certificate_expiry
            .with_label_values(&["internal"])
            .set(loaded.node_not_after);
        m.tls_certificate_expiry
            .with_label_values(&["public"])
            .set(loaded.public_not_after);
    }
    m.node_draining.set(i64::from(crate::health::draining(ctx)));
    m.set_cluster_version(u64::from(ctx.cluster_level()));
}

/// Depth and oldest age of each class of one queue (a link's or a route's).
fn queue_gauges(ctx: &NodeContext, queue: &str, label: &str, now_ms: u64) {
    let m = &ctx.metrics;
    for (priority, class) in CLASS_NAMES.iter().enumerate() {
        let (count, oldest) = match ctx.reader.class_depth(queue, priority as u32, SCAN_CAP) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(queue = label, "metrics: counting a queue: {e}");
                continue;
            }
        };
        let age = oldest
            .and_then(|id| ctx.reader.message(id).ok().flatten())
            .map(|r| now_ms.saturating_sub(r.submitted_at_ms) as f64 / 1000.0)
            .unwrap_or(0.0);
        m.queue_messages
            .with_label_values(&[class, label])
            .set(gauge(count));
        m.queue_oldest_age
            .with_label_values(&[class, label])
            .set(age);
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
