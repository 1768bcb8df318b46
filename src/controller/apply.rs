//! Server-side apply of the rendered objects, skipped when the cluster already holds them.
//!
//! Steady state must write nothing, and a no-op SSA is still a PATCH the API server counts.
//! So each object is compared first and applied only when some field we render differs from
//! what the server holds. Fields other managers added are left alone, exactly as SSA would.
//! The comparison reads the object only when [`Seen`](super::seen::Seen) cannot vouch for it.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::Penpot;
use crate::render::{Desired, labels, monitoring};

use super::seen::Reflected;
use super::{Context, Error};

/// What apply did, for events and status.
pub struct Applied {
    pub statefulset: StatefulSet,
    pub writes: usize,
}

pub async fn apply_all(penpot: &Penpot, ns: &str, desired: &Desired, ctx: &Context) -> Result<Applied, Error> {
    let client = &ctx.client;
    let owner = penpot.uid().unwrap_or_default();
    let mut writes = 0;
    // Configuration first, the workload last: pods never start on stale config.
    writes += apply_seen(&Api::namespaced(client.clone(), ns), &desired.config, &owner, ctx).await?;
    writes += apply_seen(&Api::namespaced(client.clone(), ns), &desired.headless_service, &owner, ctx).await?;
    writes += apply_seen(&Api::namespaced(client.clone(), ns), &desired.service, &owner, ctx).await?;
    writes += apply_seen(&Api::namespaced(client.clone(), ns), &desired.network_policy, &owner, ctx).await?;
    writes += apply_seen(&Api::namespaced(client.clone(), ns), &desired.dashboard, &owner, ctx).await?;
    if let Some([pod_monitor, rule]) = &desired.monitoring {
        let monitors = Api::namespaced_with(client.clone(), ns, &monitoring::pod_monitor_resource());
        writes += apply(&monitors, pod_monitor, ctx).await?.1;
        let rules = Api::namespaced_with(client.clone(), ns, &monitoring::prometheus_rule_resource());
        writes += apply(&rules, rule, ctx).await?.1;
    }
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns);
    match &desired.ingress {
        Some(ingress) => writes += apply_seen(&ingresses, ingress, &owner, ctx).await?,
        None => writes += prune_seen(&ingresses, &penpot.name_any(), penpot, &owner, ctx).await?,
    }
    // Always read: its status is the Penpot's status.
    let (statefulset, w) = apply(&Api::namespaced(client.clone(), ns), &desired.statefulset, ctx).await?;
    Ok(Applied { statefulset, writes: writes + w })
}

/// [`apply`] for a kind the operator watches: skipped without a read when the same render was
/// proven present at the resourceVersion the watch shows now.
async fn apply_seen<K>(api: &Api<K>, desired: &K, owner: &str, ctx: &Context) -> Result<usize, Error>
where
    K: Reflected + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let ns = desired.meta().namespace.clone().unwrap_or_default();
    let want = serde_json::to_value(desired)?;
    if ctx.seen.vouches::<K>(owner, &ns, &name, Some(&want)) {
        return Ok(0);
    }
    let epoch = ctx.seen.epoch();
    let (live, writes) = apply_value(api, desired, &name, &want, ctx).await?;
    // No write: the read already found `want` in the live object. After a patch, only what the
    // server returned proves anything: a mutating webhook may have changed it.
    if writes == 0 || contains(&serde_json::to_value(&live)?, &want) {
        ctx.seen.prove::<K>(owner, &name, Some(&want), live.resource_version(), epoch);
    } else {
        ctx.seen.forget::<K>(owner, &name);
    }
    Ok(writes)
}

/// [`prune`] for a kind the operator watches: skipped without a read while the watch vouches
/// that the object is still gone.
async fn prune_seen<K>(api: &Api<K>, name: &str, penpot: &Penpot, owner: &str, ctx: &Context) -> Result<usize, Error>
where
    K: Reflected + Clone + Debug + DeserializeOwned,
{
    let ns = penpot.namespace().unwrap_or_default();
    if ctx.seen.vouches::<K>(owner, &ns, name, None) {
        return Ok(0);
    }
    let epoch = ctx.seen.epoch();
    let writes = prune(api, name, penpot, ctx).await?;
    // Deleted, absent, or not this Penpot's to delete: nothing to do until the watch moves.
    ctx.seen.prove::<K>(owner, name, None, None, epoch);
    Ok(writes)
}

/// Applies `desired` unless the live object already contains it; returns the live object and
/// the number of writes (0 or 1).
async fn apply<K>(api: &Api<K>, desired: &K, ctx: &Context) -> Result<(K, usize), Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    apply_value(api, desired, &name, &serde_json::to_value(desired)?, ctx).await
}

async fn apply_value<K>(api: &Api<K>, desired: &K, name: &str, want: &Value, ctx: &Context) -> Result<(K, usize), Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    if let Some(live) = api.get_opt(name).await?
        && contains(&serde_json::to_value(&live)?, want)
    {
        return Ok((live, 0));
    }
    ctx.ensure_leader()?;
    match api.patch(name, &PatchParams::apply(labels::MANAGER).force(), &Patch::Apply(desired)).await {
        Ok(applied) => Ok((applied, 1)),
        Err(kube::Error::Api(status)) => {
            let kind = want.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
            Err(Error::Rejected { kind, name: name.to_string(), status })
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes an object this Penpot owns that the current render no longer produces.
async fn prune<K>(api: &Api<K>, name: &str, penpot: &Penpot, ctx: &Context) -> Result<usize, Error>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let Some(live) = api.get_opt(name).await? else { return Ok(0) };
    let uid = penpot.uid();
    if !live.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref()) {
        return Ok(0);
    }
    ctx.ensure_leader()?;
    api.delete(name, &DeleteParams::default()).await?;
    Ok(1)
}

/// Whether every field of `want` is present in `have` with the same value. Lists must match
/// element by element; maps may hold more keys (server defaults, other managers' fields).
/// Resource quantities compare by value, since the server rewrites `1000m` as `1`.
pub fn contains(have: &Value, want: &Value) -> bool {
    contains_at(have, want, false)
}

fn contains_at(have: &Value, want: &Value, quantities: bool) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w.iter().all(|(k, wv)| {
            let quantities = quantities || k == "requests" || k == "limits";
            h.get(k).is_some_and(|hv| contains_at(hv, wv, quantities))
        }),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(hv, wv)| contains_at(hv, wv, quantities))
        }
        (Value::String(h), Value::String(w)) if quantities && h != w => {
            matches!((quantity(h), quantity(w)), (Some(a), Some(b)) if (a - b).abs() <= f64::EPSILON * a.abs().max(1.0))
        }
        _ => have == want,
    }
}

/// A Kubernetes quantity (`500m`, `1.5Gi`, `2e3`) as a number.
fn quantity(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E').unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn containment() {
        let have = json!({"a": 1, "b": {"c": [ {"x": 1, "y": 2} ], "d": "e"}, "extra": true});
        assert!(contains(&have, &json!({"a": 1, "b": {"c": [ {"x": 1} ]}})));
        assert!(!contains(&have, &json!({"a": 2})));
        assert!(!contains(&have, &json!({"b": {"c": []}})));
        assert!(!contains(&have, &json!({"missing": null})));
    }

    #[test]
    fn quantities_compare_by_value_only_under_resources() {
        let have = json!({"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}, "env": "1"});
        assert!(contains(&have, &json!({"resources": {"requests": {"cpu": "1000m", "memory": "1024Mi"}}})));
        assert!(!contains(&have, &json!({"resources": {"requests": {"cpu": "2"}}})));
        assert!(!contains(&have, &json!({"env": "1.0"})), "only resource quantities are normalised");
    }
}
