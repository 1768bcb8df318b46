//! The operator's own Prometheus metrics, served on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::Phase;
use crate::error::Error;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub category: String,
}

/// Why a watch stream was restarted (CamelCase, like the error categories).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum WatchRestart {
    /// 410 Gone: the stream fell out of the API server's history and is listed again.
    Expired,
    /// Any other failure: connection lost, refused, forbidden.
    Failed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub reason: WatchRestart,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

pub struct Metrics {
    pub registry: Registry,
    reconciles: Counter,
    failures: Family<ErrorLabels, Counter>,
    duration: Histogram,
    instances: Family<PhaseLabels, Gauge>,
    watch_restarts: Family<WatchLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("penpot_operator");
        let reconciles = Counter::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed, by error category", failures.clone());
        registry.register("reconcile_duration_seconds", "Time one reconcile took", duration.clone());
        let instances = Family::<PhaseLabels, Gauge>::default();
        registry.register("instances", "Penpot instances by phase", instances.clone());
        let watch_restarts = Family::<WatchLabels, Counter>::default();
        // Both series exist from the start, so `rate()` and alerts see a zero, not nothing.
        for reason in [WatchRestart::Expired, WatchRestart::Failed] {
            drop(watch_restarts.get_or_create(&WatchLabels { reason }));
        }
        registry.register("watch_restarts", "Watch streams restarted, by reason", watch_restarts.clone());
        Metrics { registry, reconciles, failures, duration, instances, watch_restarts }
    }
}

impl Metrics {
    pub fn observe<T>(&self, result: &Result<T, Error>, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
        if let Err(e) = result {
            self.failures.get_or_create(&ErrorLabels { category: e.category().into() }).inc();
        }
    }

    /// Sets the per-phase instance counts from the controller's cache.
    pub fn set_phases(&self, phases: impl Iterator<Item = Option<Phase>>) {
        let mut counts: std::collections::BTreeMap<String, i64> =
            ["Active", "Blocked", "Waiting", "Maintenance", "Unknown"].iter().map(|p| (p.to_string(), 0)).collect();
        for phase in phases {
            let name = phase.map(|p| format!("{p:?}")).unwrap_or_else(|| "Unknown".into());
            *counts.entry(name).or_default() += 1;
        }
        for (phase, n) in counts {
            self.instances.get_or_create(&PhaseLabels { phase }).set(n);
        }
    }

    pub fn watch_restarted(&self, reason: WatchRestart) {
        self.watch_restarts.get_or_create(&WatchLabels { reason }).inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
