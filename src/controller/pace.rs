//! How often a Penpot's pods may roll. The debounce folds a burst of relation changes into one
//! reconcile; this bounds the rate beyond it: a new configuration is applied at most once per
//! [`ROLLOUT_INTERVAL`] after the operator last changed the StatefulSet, so a relation Secret
//! rewritten every few seconds cannot keep the pods restarting. A single change after a quiet
//! spell goes through at once.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::jiff::Timestamp;

use crate::render::labels;

pub const ROLLOUT_INTERVAL: Duration = Duration::from_secs(15);

/// How long the change from the `live` StatefulSet to one carrying `desired_hash` must wait,
/// or `None` when it may go now: the same configuration, no StatefulSet yet, or the last
/// change by the operator (its server-side apply's managed-fields time) long enough ago.
/// Clock skew can only shorten the wait, never make it longer than the interval.
pub fn rollout_wait(live: Option<&StatefulSet>, desired_hash: &str, now: Timestamp) -> Option<Duration> {
    let live = live?;
    let live_hash =
        live.spec.as_ref()?.template.metadata.as_ref()?.annotations.as_ref()?.get(labels::CONFIG_HASH_ANNOTATION)?;
    if live_hash == desired_hash {
        return None;
    }
    let changed = live
        .metadata
        .managed_fields
        .as_ref()?
        .iter()
        .filter(|f| f.manager.as_deref() == Some(labels::MANAGER) && f.operation.as_deref() == Some("Apply"))
        .filter_map(|f| f.time.as_ref())
        .map(|t| t.0)
        .max()?;
    let elapsed: Duration = now.duration_since(changed).try_into().unwrap_or_default();
    ROLLOUT_INTERVAL.checked_sub(elapsed).filter(|wait| !wait.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(hash: &str, applied_at: &str) -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "time": "2026-12-02T10:00:14Z"},
                {"manager": "penpot-operator", "operation": "Apply", "time": applied_at}
            ]},
            "spec": {"selector": {}, "template": {"metadata": {"annotations": {labels::CONFIG_HASH_ANNOTATION: hash}}}}
        }))
        .unwrap()
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn a_second_change_waits_out_the_interval_and_a_first_one_does_not() {
        let live = sts("old", "2026-12-02T10:00:00Z");
        assert_eq!(rollout_wait(Some(&live), "new", at("2026-12-02T10:00:05Z")), Some(Duration::from_secs(10)));
        assert_eq!(rollout_wait(Some(&live), "new", at("2026-12-02T10:00:15Z")), None, "the interval is over");
        assert_eq!(rollout_wait(Some(&live), "old", at("2026-12-02T10:00:01Z")), None, "nothing to roll");
        assert_eq!(rollout_wait(None, "new", at("2026-12-02T10:00:01Z")), None, "a first install goes at once");
        // The operator's clock behind the API server's: never more than the interval.
        assert_eq!(rollout_wait(Some(&live), "new", at("2026-12-02T09:00:00Z")), Some(ROLLOUT_INTERVAL));
    }
}
