//! Counters the worker keeps and `psn up` serves as Prometheus text on `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The engine's counters (monotonic) and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    pub claimed: AtomicU64,
    pub published: AtomicU64,
    pub segments_published: AtomicU64,
    pub retried: AtomicU64,
    pub rate_limited: AtomicU64,
    pub unconfirmed: AtomicU64,
    pub reconciled_found: AtomicU64,
    pub reconciled_not_found: AtomicU64,
    pub needs_attention: AtomicU64,
    pub failed: AtomicU64,
    pub recovered: AtomicU64,
    pub token_refreshes: AtomicU64,
    in_flight: Mutex<BTreeMap<String, usize>>,
}

impl Metrics {
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_in_flight(&self, hub: &str, n: usize) {
        if let Ok(mut map) = self.in_flight.lock() {
            map.insert(hub.to_string(), n);
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 12] = [
            (
                "psn_deliveries_claimed_total",
                "Deliveries claimed by this worker",
                &self.claimed,
            ),
            (
                "psn_deliveries_published_total",
                "Deliveries published",
                &self.published,
            ),
            (
                "psn_segments_published_total",
                "Thread segments (posts) created on platforms",
                &self.segments_published,
            ),
            (
                "psn_deliveries_retried_total",
                "Deliveries put back to wait after a transient failure",
                &self.retried,
            ),
            (
                "psn_rate_limited_total",
                "Calls refused by a platform rate limit",
                &self.rate_limited,
            ),
            (
                "psn_deliveries_unconfirmed_total",
                "Calls whose outcome was unknown",
                &self.unconfirmed,
            ),
            (
                "psn_reconciled_found_total",
                "Unknown outcomes found on the platform",
                &self.reconciled_found,
            ),
            (
                "psn_reconciled_not_found_total",
                "Unknown outcomes shown not to exist",
                &self.reconciled_not_found,
            ),
            (
                "psn_deliveries_needs_attention_total",
                "Deliveries a human must check",
                &self.needs_attention,
            ),
            (
                "psn_deliveries_failed_total",
                "Deliveries failed for good",
                &self.failed,
            ),
            (
                "psn_leases_recovered_total",
                "Deliveries recovered from a dead worker's lease",
                &self.recovered,
            ),
            (
                "psn_token_refreshes_total",
                "Access tokens refreshed",
                &self.token_refreshes,
            ),
        ];
        for (name, help, value) in counters {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out.push_str("# HELP psn_deliveries_in_flight Deliveries being published now\n# TYPE psn_deliveries_in_flight gauge\n");
        if let Ok(map) = self.in_flight.lock() {
            for (hub, n) in map.iter() {
                out.push_str(&format!("psn_deliveries_in_flight{{hub=\"{hub}\"}} {n}\n"));
            }
        }
        out
    }
}
