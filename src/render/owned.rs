//! The kinds a Penpot owns and its rendered objects as one list, so apply, prune and the
//! `render` command consume the same set and a new kind cannot be forgotten by one of them.
//!
//! Every object carries a digest of its own rendered form. Server-side apply removes the
//! fields its manager no longer sends, but only if the apply happens; comparing the live
//! object with the render cannot see a removed field, since it is simply absent from the
//! render. A changed digest can: any difference in the render, removals included, changes
//! the annotation the live object must hold.

use kube::api::{ApiResource, GroupVersionKind};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::hash::short_hex;
use super::labels;

/// The uid of the object's controller (the owner reference with `controller: true`; there
/// is at most one), which says whose an object is.
pub fn controller_uid(meta: &kube::api::ObjectMeta) -> Option<&str> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true)).map(|r| r.uid.as_str())
}

/// Annotation holding the digest of the rendered object it sits on.
pub const RENDER_DIGEST_ANNOTATION: &str = "penpot-operator.dev/render-digest";

/// Every kind of object a Penpot may own, in apply order: configuration before the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnedKind {
    Secret,
    Service,
    NetworkPolicy,
    ServiceAccount,
    PersistentVolumeClaim,
    Ingress,
    ConfigMap,
    PodMonitor,
    PrometheusRule,
    PodDisruptionBudget,
    HttpRoute,
    StatefulSet,
}

/// APIs a cluster may not serve: their kinds are made only once discovery finds them, and
/// pruned (by a labelled list, they are not watched) only where they exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptionalApi {
    /// The Prometheus Operator's PodMonitor and PrometheusRule.
    PrometheusOperator,
    /// Gateway API's HTTPRoute.
    GatewayApi,
}

impl OptionalApi {
    pub fn group_version(self) -> &'static str {
        match self {
            OptionalApi::PrometheusOperator => "monitoring.coreos.com/v1",
            OptionalApi::GatewayApi => "gateway.networking.k8s.io/v1",
        }
    }

    /// The resources discovery must find for the API to count as installed.
    pub fn plurals(self) -> &'static [&'static str] {
        match self {
            OptionalApi::PrometheusOperator => &["podmonitors", "prometheusrules"],
            OptionalApi::GatewayApi => &["httproutes"],
        }
    }
}

impl OwnedKind {
    pub const ALL: [OwnedKind; 12] = [
        OwnedKind::Secret,
        OwnedKind::Service,
        OwnedKind::NetworkPolicy,
        OwnedKind::ServiceAccount,
        OwnedKind::PersistentVolumeClaim,
        OwnedKind::Ingress,
        OwnedKind::ConfigMap,
        OwnedKind::PodMonitor,
        OwnedKind::PrometheusRule,
        OwnedKind::PodDisruptionBudget,
        OwnedKind::HttpRoute,
        OwnedKind::StatefulSet,
    ];

    /// The optional API serving this kind, if it is one.
    pub fn optional_api(self) -> Option<OptionalApi> {
        match self {
            OwnedKind::PodMonitor | OwnedKind::PrometheusRule => Some(OptionalApi::PrometheusOperator),
            OwnedKind::HttpRoute => Some(OptionalApi::GatewayApi),
            _ => None,
        }
    }

    pub fn gvk(self) -> GroupVersionKind {
        let (group, version, kind) = match self {
            OwnedKind::Secret => ("", "v1", "Secret"),
            OwnedKind::Service => ("", "v1", "Service"),
            OwnedKind::ConfigMap => ("", "v1", "ConfigMap"),
            OwnedKind::NetworkPolicy => ("networking.k8s.io", "v1", "NetworkPolicy"),
            OwnedKind::PersistentVolumeClaim => ("", "v1", "PersistentVolumeClaim"),
            OwnedKind::ServiceAccount => ("", "v1", "ServiceAccount"),
            OwnedKind::Ingress => ("networking.k8s.io", "v1", "Ingress"),
            OwnedKind::StatefulSet => ("apps", "v1", "StatefulSet"),
            OwnedKind::PodMonitor => ("monitoring.coreos.com", "v1", "PodMonitor"),
            OwnedKind::PrometheusRule => ("monitoring.coreos.com", "v1", "PrometheusRule"),
            OwnedKind::PodDisruptionBudget => ("policy", "v1", "PodDisruptionBudget"),
            OwnedKind::HttpRoute => ("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        };
        GroupVersionKind::gvk(group, version, kind)
    }

    pub fn api_resource(self) -> ApiResource {
        let plural = match self {
            OwnedKind::Secret => "secrets",
            OwnedKind::Service => "services",
            OwnedKind::ConfigMap => "configmaps",
            OwnedKind::NetworkPolicy => "networkpolicies",
            OwnedKind::PersistentVolumeClaim => "persistentvolumeclaims",
            OwnedKind::ServiceAccount => "serviceaccounts",
            OwnedKind::Ingress => "ingresses",
            OwnedKind::StatefulSet => "statefulsets",
            OwnedKind::PodMonitor => "podmonitors",
            OwnedKind::PrometheusRule => "prometheusrules",
            OwnedKind::PodDisruptionBudget => "poddisruptionbudgets",
            OwnedKind::HttpRoute => "httproutes",
        };
        ApiResource::from_gvk_with_plural(&self.gvk(), plural)
    }

    /// Whether prune deletes objects of this kind the render no longer makes. Never the
    /// assets claim: it holds uploaded files, which outlive a switch to S3.
    pub fn pruned(self) -> bool {
        self != OwnedKind::PersistentVolumeClaim
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OwnedKind::Secret => "Secret",
            OwnedKind::Service => "Service",
            OwnedKind::NetworkPolicy => "NetworkPolicy",
            OwnedKind::PersistentVolumeClaim => "PersistentVolumeClaim",
            OwnedKind::ServiceAccount => "ServiceAccount",
            OwnedKind::Ingress => "Ingress",
            OwnedKind::ConfigMap => "ConfigMap",
            OwnedKind::PodMonitor => "PodMonitor",
            OwnedKind::PrometheusRule => "PrometheusRule",
            OwnedKind::PodDisruptionBudget => "PodDisruptionBudget",
            OwnedKind::HttpRoute => "HTTPRoute",
            OwnedKind::StatefulSet => "StatefulSet",
        }
    }
}

impl std::fmt::Display for OwnedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rendered object, ready to apply: untyped, with its digest annotation set.
#[derive(Clone, Debug)]
pub struct Object {
    pub kind: OwnedKind,
    pub name: String,
    pub value: Value,
    /// What the annotation holds: also the key of what apply proved (`controller::seen`).
    pub digest: String,
}

impl Object {
    /// Serialises `object` and stamps it with the digest of everything else it holds.
    pub fn new<T: Serialize>(kind: OwnedKind, name: &str, object: &T) -> Result<Object, serde_json::Error> {
        let mut value = serde_json::to_value(object)?;
        // serde_json writes map keys sorted and struct fields in declaration order, so the
        // same render gives the same digest.
        let digest = short_hex(&Sha256::digest(serde_json::to_vec(&value)?));
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(Default::default()));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(RENDER_DIGEST_ANNOTATION.into(), Value::String(digest.clone()));
            }
        }
        Ok(Object { kind, name: name.to_string(), value, digest })
    }
}

/// Objects a Penpot owns that no render produces and that prune must leave alone: the secret
/// key is created once by the reconcile and lives as long as the Penpot.
pub fn retained(instance: &str) -> [(OwnedKind, String); 1] {
    [(OwnedKind::Secret, labels::secret_key_secret_name(instance))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use kube::api::ObjectMeta;

    fn service(selector: &[(&str, &str)]) -> Service {
        Service {
            metadata: ObjectMeta { name: Some("p".into()), ..Default::default() },
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                selector: Some(selector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_digest_changes_when_a_field_is_removed_and_only_then() {
        let both = Object::new(OwnedKind::Service, "p", &service(&[("a", "1"), ("b", "2")])).unwrap();
        let again = Object::new(OwnedKind::Service, "p", &service(&[("a", "1"), ("b", "2")])).unwrap();
        let one = Object::new(OwnedKind::Service, "p", &service(&[("a", "1")])).unwrap();
        assert_eq!(both.digest, again.digest);
        assert_ne!(both.digest, one.digest, "a removed map key must change the digest");
        assert_eq!(both.digest.len(), 32);
        assert_eq!(both.value["metadata"]["annotations"][RENDER_DIGEST_ANNOTATION], both.digest.as_str());
        assert_eq!(both.value["kind"], "Service");
        assert_eq!(both.value["metadata"]["name"], "p");
    }

    #[test]
    fn kinds_name_their_api() {
        for kind in OwnedKind::ALL {
            let ar = kind.api_resource();
            assert_eq!(ar.kind, kind.as_str());
            assert!(ar.plural.ends_with('s'), "{}", ar.plural);
        }
    }
}
