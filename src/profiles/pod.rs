//! Which pod's backend the profile commands go to.
//!
//! The pod is one the Penpot's own StatefulSet controls, never merely one with its labels:
//! anyone who can create pods in the namespace could otherwise stand up a look-alike and
//! receive the password in the request.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, Resource};

use super::prepl::{self, PreplError};
use crate::crd::Penpot;
use crate::render::labels;
use crate::render::owned::controller_uid;
use crate::render::version::Version;

/// The first Ready pod (lowest ordinal) that the Penpot's own StatefulSet controls, where
/// the backend's PREPL answers, if its Penpot speaks the PREPL this client does.
pub async fn ready_pod(client: &Client, ns: &str, penpot: &str) -> Result<String, PreplError> {
    match Api::<Penpot>::namespaced(client.clone(), ns).get_opt(penpot).await? {
        Some(instance) => ready_pod_of(client, ns, &instance).await,
        None => Err(PreplError::NotReady(penpot.to_string())),
    }
}

/// [`ready_pod`] of a Penpot the caller has read already.
pub async fn ready_pod_of(client: &Client, ns: &str, instance: &Penpot) -> Result<String, PreplError> {
    let penpot = instance.meta().name.as_deref().unwrap_or_default();
    let not_ready = || PreplError::NotReady(penpot.to_string());
    let statefulset =
        Api::<StatefulSet>::namespaced(client.clone(), ns).get_opt(penpot).await?.ok_or_else(not_ready)?;
    // A StatefulSet of that name that the Penpot does not control is someone else's.
    let owner_uid = instance.meta().uid.as_deref().ok_or_else(not_ready)?;
    if controller_uid(&statefulset.metadata) != Some(owner_uid) {
        return Err(not_ready());
    }
    let statefulset_uid = statefulset.metadata.uid.as_deref().ok_or_else(not_ready)?;
    let version = crate::render::penpot_version(instance);
    if version < prepl::SINCE {
        return Err(PreplError::TooOld { penpot: penpot.to_string(), version });
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods.list(&ListParams::default().labels(&format!("{}={penpot}", labels::INSTANCE_LABEL))).await?;
    first_ready_owned(list.items, statefulset_uid).ok_or_else(not_ready)
}

/// Of `pods`, the Ready, not deleting one with the lowest name that the StatefulSet with
/// `statefulset_uid` controls and that runs a release whose PREPL reads JSON: during an
/// upgrade from an older one, the pods not rolled yet are passed over.
fn first_ready_owned(pods: Vec<Pod>, statefulset_uid: &str) -> Option<String> {
    let mut ready: Vec<String> = pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| controller_uid(&p.metadata) == Some(statefulset_uid))
        .filter(|p| {
            let label = p.metadata.labels.as_ref().and_then(|l| l.get(labels::VERSION_LABEL));
            // A pod without a readable version label is judged by the spec's version alone.
            label.and_then(|v| Version::parse(v)).is_none_or(|v| v >= prepl::SINCE)
        })
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.metadata.name)
        .collect();
    ready.sort();
    ready.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner_uid: Option<&str>, ready: bool, deleting: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "ownerReferences": owner_uid.map(|uid| vec![serde_json::json!({
                    "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "p", "uid": uid, "controller": true
                })]),
                "deletionTimestamp": deleting.then_some("2026-12-02T00:00:00Z"),
            },
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    /// A look-alike with the instance's labels (what `kubectl run -l` makes) never receives the
    /// request, however it is named.
    #[test]
    fn only_pods_the_penpots_statefulset_controls_are_prepl_targets() {
        let pods = vec![
            pod("a-fake", None, true, false),
            pod("b-other", Some("other-sts"), true, false),
            pod("p-0", Some("sts"), true, true),
            pod("p-1", Some("sts"), false, false),
            pod("p-2", Some("sts"), true, false),
        ];
        assert_eq!(first_ready_owned(pods, "sts").as_deref(), Some("p-2"));
        assert_eq!(first_ready_owned(vec![pod("a-fake", None, true, false)], "sts"), None);
        // Mid-upgrade from 2.7: the pod still on it is passed over.
        let mut old = pod("p-0", Some("sts"), true, false);
        old.metadata.labels = Some([(labels::VERSION_LABEL.to_string(), "2.7.1".to_string())].into());
        let mut new = pod("p-1", Some("sts"), true, false);
        new.metadata.labels = Some([(labels::VERSION_LABEL.to_string(), "2.8.0".to_string())].into());
        assert_eq!(first_ready_owned(vec![old, new], "sts").as_deref(), Some("p-1"));
    }
}
