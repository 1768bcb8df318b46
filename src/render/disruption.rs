//! Keeping Penpot up through voluntary disruptions (node drains, cluster upgrades): a
//! PodDisruptionBudget that lets one pod go at a time, once there is more than one.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels;
use super::network::Meta;

/// With `replicas` above 1, at most one pod evicted at a time. With one replica there is
/// none: a budget of zero evictions would block every node drain.
pub fn pod_disruption_budget(m: &Meta, replicas: i32) -> Option<PodDisruptionBudget> {
    (replicas > 1).then(|| PodDisruptionBudget {
        metadata: m.object(m.name.to_string(), "penpot"),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(labels::selector(m.name)), ..Default::default() }),
            ..Default::default()
        }),
        status: None,
    })
}
