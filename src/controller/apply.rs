//! Server-side apply of the rendered objects, then prune of what the render no longer makes.
//!
//! Three rules, in this order:
//! 1. **Own only what is ours.** Every object is looked at before anything is written. One
//!    this Penpot does not control (made by hand, by Helm, by another owner) stops the whole
//!    apply: nothing is written, and the Penpot reports the object in the way. An object
//!    annotated [`ADOPT_ANNOTATION`] with the Penpot's name is handed over on purpose.
//! 2. **Converge to exactly the render.** Each rendered object carries the digest of its own
//!    render, so a live object matches only if it holds every rendered field *and* that
//!    digest: a field the render dropped changes the digest and forces the apply, and the
//!    apply (one field manager, always forced) removes it.
//! 3. **Write nothing when nothing changed.** A no-op apply is still a PATCH, so an object
//!    that matches is skipped, and it is not even read while [`Seen`](super::seen::Seen) can
//!    vouch for it. Fields other managers added are left alone, exactly as SSA would.
//!
//! Prune deletes objects of every owned kind that this Penpot controls (its controller
//! reference, found through the owned watches' labels) and that the render no longer
//! produces; never by name alone, and with the object's uid as a precondition.

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::Value;

use crate::crd::Penpot;
use crate::render::owned::{self, Object, OwnedKind};
use crate::render::{Desired, labels};

use super::resolve::Workload;
use super::{Context, Error};
use crate::error::{AtStep, Step};

/// Annotation on an existing object that hands it over to the Penpot it names.
pub const ADOPT_ANNOTATION: &str = "penpot-operator.dev/adopt";

/// What apply did, for events and status.
pub struct Applied {
    pub statefulset: StatefulSet,
    pub writes: usize,
}

/// An object to write, with the watch epoch taken before it was read.
struct Write<'a> {
    object: &'a Object,
    epoch: u64,
}

/// `workload` is the StatefulSet as resolve read it for the render: its status is the
/// Penpot's status, and it is not read twice.
pub async fn apply_all(
    penpot: &Penpot,
    ns: &str,
    desired: &Desired,
    workload: Workload,
    ctx: &Context,
) -> Result<Applied, Error> {
    let uid = penpot.uid().ok_or_else(|| Error::Unexpected("the Penpot has no uid".into()))?;
    let objects = desired.objects()?;
    let mut statefulset = None;
    let mut writes = Vec::new();
    let mut workload = Some(workload);
    // Look at everything first: an object in the way must stop the apply before any write.
    for object in &objects {
        let is_workload = object.kind == OwnedKind::StatefulSet;
        if !is_workload && ctx.seen.vouches(object.kind, &uid, ns, &object.name, &object.digest) {
            continue;
        }
        let prefetched = if is_workload { workload.take() } else { None };
        let (epoch, live) = match prefetched {
            Some(Workload { epoch, statefulset }) => (epoch, statefulset.map(to_dynamic).transpose()?),
            None => {
                let epoch = ctx.seen.epoch();
                (epoch, api(ctx, ns, object.kind).get_opt(&object.name).await.at(Step::Apply)?)
            }
        };
        let Some(live) = live else {
            writes.push(Write { object, epoch });
            continue;
        };
        check_holder(&live, object, &uid, &penpot.name_any())?;
        // A claim is made once: Kubernetes forbids changing its class and access mode and
        // shrinking it, and a volume autoscaler may have grown it. Grow it by hand.
        if object.kind == OwnedKind::PersistentVolumeClaim {
            continue;
        }
        if contains(&serde_json::to_value(&live)?, &object.value) {
            prove(ctx, object, &uid, &live, epoch);
            if is_workload {
                statefulset = Some(live);
            }
        } else {
            writes.push(Write { object, epoch });
        }
    }
    let count = writes.len();
    // Configuration first, the workload last (the order of `objects`): pods never start on
    // stale config.
    for Write { object, epoch } in writes {
        let applied = write(ctx, ns, object).await?;
        if contains(&serde_json::to_value(&applied)?, &object.value) {
            prove(ctx, object, &uid, &applied, epoch);
        } else {
            // A mutating webhook changed what was sent: only a later read proves anything.
            ctx.seen.forget(object.kind, &uid, &object.name);
        }
        if object.kind == OwnedKind::StatefulSet {
            statefulset = Some(applied);
        }
    }
    let pruned = prune(penpot, ns, &uid, &objects, ctx).await?;
    let statefulset = statefulset.ok_or_else(|| Error::Unexpected("no StatefulSet after apply".into()))?;
    let statefulset = serde_json::from_value(serde_json::to_value(statefulset)?)?;
    Ok(Applied { statefulset, writes: count + pruned })
}

fn to_dynamic(sts: StatefulSet) -> Result<DynamicObject, serde_json::Error> {
    serde_json::from_value(serde_json::to_value(sts)?)
}

fn api(ctx: &Context, ns: &str, kind: OwnedKind) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), ns, &kind.api_resource())
}

fn prove(ctx: &Context, object: &Object, owner: &str, live: &DynamicObject, epoch: u64) {
    ctx.seen.prove(object.kind, owner, &object.name, &object.digest, live.resource_version(), epoch);
}

/// Refuses an object this Penpot neither controls nor was handed.
fn check_holder(live: &DynamicObject, object: &Object, uid: &str, penpot: &str) -> Result<(), Error> {
    let controller = live.owner_references().iter().find(|r| r.controller == Some(true));
    let holder = match controller {
        Some(r) if r.uid == uid => return Ok(()),
        Some(r) if r.kind == "Penpot" && r.name == penpot => {
            return Err(Error::Predecessor { kind: object.kind, name: object.name.clone() });
        }
        Some(r) => format!("it is controlled by {} {}", r.kind, r.name),
        None if live.annotations().get(ADOPT_ANNOTATION).map(String::as_str) == Some(penpot) => return Ok(()),
        None => match live.labels().get(labels::MANAGED_BY_LABEL) {
            Some(manager) => format!("it is managed by {manager}"),
            None => "it has no controller".to_string(),
        },
    };
    Err(Error::InTheWay { kind: object.kind, name: object.name.clone(), holder })
}

async fn write(ctx: &Context, ns: &str, object: &Object) -> Result<DynamicObject, Error> {
    ctx.ensure_leader()?;
    let params = PatchParams::apply(labels::MANAGER).force();
    match api(ctx, ns, object.kind).patch(&object.name, &params, &Patch::Apply(&object.value)).await {
        Ok(applied) => Ok(applied),
        Err(kube::Error::Api(status)) => {
            Err(Error::Rejected { kind: object.kind.to_string(), name: object.name.clone(), status })
        }
        Err(e) => Err(Error::Kube { step: Step::Apply, source: e }),
    }
}

/// Deletes every object of an owned kind that this Penpot controls and the render no longer
/// produces. Watched kinds are found in the watches' cache (no read); PodMonitor and
/// PrometheusRule are listed by label, and only when the render has none of them while the
/// Prometheus Operator is installed. Returns the number of deletes.
async fn prune(penpot: &Penpot, ns: &str, uid: &str, objects: &[Object], ctx: &Context) -> Result<usize, Error> {
    let instance = penpot.name_any();
    let retained = owned::retained(&instance);
    let wanted = |kind: OwnedKind, name: &str| {
        objects.iter().any(|o| o.kind == kind && o.name == name)
            || retained.iter().any(|(k, n)| *k == kind && n == name)
    };
    let mut deleted = 0;
    for kind in OwnedKind::ALL.into_iter().filter(|k| k.pruned()) {
        let candidates = match ctx.seen.stores().get(kind) {
            Some(versions) => versions.controlled_by(ns, uid),
            None => {
                // An optional API's kind: listed only when the render has none of it and the
                // cluster serves it (the claim, never pruned, is filtered out above).
                let served = match kind.optional_api() {
                    Some(api) => ctx.serves(api).await,
                    None => false,
                };
                if objects.iter().any(|o| o.kind == kind) || !served {
                    continue;
                }
                listed(ctx, ns, kind, &instance, uid).await?
            }
        };
        for (name, object_uid) in candidates.into_iter().filter(|(name, _)| !wanted(kind, name)) {
            ctx.ensure_leader()?;
            let params = DeleteParams {
                preconditions: Some(Preconditions { uid: Some(object_uid), resource_version: None }),
                ..DeleteParams::default()
            };
            match api(ctx, ns, kind).delete(&name, &params).await {
                Ok(_) => {
                    tracing::info!(%kind, %name, "pruned an object the render no longer produces");
                    ctx.seen.forget(kind, uid, &name);
                    deleted += 1;
                }
                // Already gone, or replaced by another object of the same name: not ours.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(Error::Kube { step: Step::Prune, source: e }),
            }
        }
    }
    Ok(deleted)
}

/// Objects of an unwatched kind carrying this instance's labels and controlled by it.
async fn listed(
    ctx: &Context,
    ns: &str,
    kind: OwnedKind,
    instance: &str,
    uid: &str,
) -> Result<Vec<(String, String)>, Error> {
    let selector = format!("{}={instance},{}={}", labels::INSTANCE_LABEL, labels::MANAGED_BY_LABEL, labels::MANAGER);
    let list = api(ctx, ns, kind).list_metadata(&ListParams::default().labels(&selector)).await.at(Step::Prune)?;
    Ok(list
        .items
        .into_iter()
        .filter(|o| owned::controller_uid(&o.metadata) == Some(uid))
        .map(|o| (o.name_any(), o.uid().unwrap_or_default()))
        .collect())
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
