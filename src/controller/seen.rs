//! What the operator last proved the API server holds for each object it owns, so a reconcile
//! that renders an unchanged object reads nothing.
//!
//! Metadata-only reflectors of the owned kinds (the same watches that trigger reconciles) keep
//! each object's resourceVersion. Once a GET or an apply shows that the server holds every
//! rendered field, the pair (hash of the rendered object, resourceVersion) is remembered. A
//! later reconcile that renders the same bytes while the reflector still shows that
//! resourceVersion skips the GET: nobody has written the object since. Any mismatch (a hand
//! edit, a deletion, an event not yet delivered, a new render) falls back to a real GET, so a
//! stale cache can cost a read but never hide drift.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::Value;

/// The reflector stores of the owned kinds whose applies can be skipped. The StatefulSet is
/// always read: its status feeds the Penpot's status.
pub struct Stores {
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
    pub ingresses: Store<PartialObjectMeta<Ingress>>,
}

/// A kind with a reflector store in [`Stores`].
pub trait Reflected: Resource<DynamicType = ()> + Clone + 'static {
    fn store(stores: &Stores) -> &Store<PartialObjectMeta<Self>>;
}

macro_rules! reflected {
    ($($kind:ty => $field:ident),* $(,)?) => {
        $(impl Reflected for $kind {
            fn store(stores: &Stores) -> &Store<PartialObjectMeta<Self>> {
                &stores.$field
            }
        })*
    };
}
reflected!(Secret => secrets, ConfigMap => config_maps, Service => services, NetworkPolicy => network_policies, Ingress => ingresses);

/// (owner Penpot uid, kind, name): the owner lets entries of deleted Penpots be swept.
type Key = (String, &'static str, String);

pub struct Seen {
    pub stores: Stores,
    verified: Mutex<Verified>,
}

struct Verified {
    /// Render hash and resourceVersion of the last proof.
    entries: HashMap<Key, (u64, String)>,
    swept: Instant,
}

/// How often entries of Penpots that no longer exist are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Seen {
    pub fn new(stores: Stores) -> Self {
        Seen { stores, verified: Mutex::new(Verified { entries: HashMap::new(), swept: Instant::now() }) }
    }

    /// The resourceVersion the reflector holds for `name`, if it has seen the object.
    pub fn resource_version<K: Reflected>(&self, ns: &str, name: &str) -> Option<String> {
        K::store(&self.stores).get(&ObjectRef::new(name).within(ns)).and_then(|o| o.resource_version())
    }

    /// Whether the reflector has seen an object of this kind and name.
    pub fn exists<K: Reflected>(&self, ns: &str, name: &str) -> bool {
        K::store(&self.stores).get(&ObjectRef::new(name).within(ns)).is_some()
    }

    /// True when `want` was proven present at the resourceVersion the reflector shows now.
    pub fn unchanged<K: Reflected>(&self, owner: &str, ns: &str, name: &str, want: &Value) -> bool {
        let Some(current) = self.resource_version::<K>(ns, name) else { return false };
        let key = key::<K>(owner, name);
        let Ok(verified) = self.verified.lock() else { return false };
        verified.entries.get(&key).is_some_and(|(hash, rv)| *hash == digest(want) && *rv == current)
    }

    /// Records that the server held `want` at `resource_version`.
    pub fn prove<K: Reflected>(&self, owner: &str, name: &str, want: &Value, resource_version: Option<String>) {
        let Ok(mut verified) = self.verified.lock() else { return };
        let key = key::<K>(owner, name);
        match resource_version {
            Some(rv) => verified.entries.insert(key, (digest(want), rv)),
            None => verified.entries.remove(&key),
        };
    }

    /// Drops the entries of owners that are gone, at most once per [`SWEEP_EVERY`].
    pub fn sweep(&self, live_owners: impl FnOnce() -> std::collections::HashSet<String>) {
        let Ok(mut verified) = self.verified.lock() else { return };
        if verified.swept.elapsed() < SWEEP_EVERY {
            return;
        }
        let live = live_owners();
        verified.entries.retain(|(owner, _, _), _| live.contains(owner));
        verified.swept = Instant::now();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.verified.lock().map(|v| v.entries.len()).unwrap_or_default()
    }
}

fn key<K: Reflected>(owner: &str, name: &str) -> Key {
    let kind = match K::kind(&()) {
        std::borrow::Cow::Borrowed(kind) => kind,
        std::borrow::Cow::Owned(_) => "",
    };
    (owner.to_string(), kind, name.to_string())
}

/// serde_json maps are ordered, so the same render always gives the same digest.
fn digest(want: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    want.to_string().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    fn service_meta(name: &str, rv: &str) -> PartialObjectMeta<Service> {
        let mut meta = PartialObjectMeta::<Service>::default();
        meta.metadata.name = Some(name.into());
        meta.metadata.namespace = Some("ns".into());
        meta.metadata.resource_version = Some(rv.into());
        meta
    }

    fn seen_with(services: Store<PartialObjectMeta<Service>>) -> Seen {
        Seen::new(Stores {
            secrets: store::<PartialObjectMeta<Secret>>().0,
            config_maps: store::<PartialObjectMeta<ConfigMap>>().0,
            services,
            network_policies: store::<PartialObjectMeta<NetworkPolicy>>().0,
            ingresses: store::<PartialObjectMeta<Ingress>>().0,
        })
    }

    #[test]
    fn a_proof_holds_only_for_the_same_render_at_the_same_resource_version() {
        let (reader, mut writer) = store::<PartialObjectMeta<Service>>();
        let seen = seen_with(reader);
        let want = json!({"spec": {"ports": [{"port": 8080}]}});
        assert!(!seen.unchanged::<Service>("uid", "ns", "p", &want), "nothing proven, nothing seen");

        writer.apply_watcher_event(&Event::Apply(service_meta("p", "10")));
        assert!(!seen.unchanged::<Service>("uid", "ns", "p", &want), "seen but not proven");
        seen.prove::<Service>("uid", "p", &want, Some("10".into()));
        assert!(seen.unchanged::<Service>("uid", "ns", "p", &want));
        assert!(!seen.unchanged::<Service>("uid", "ns", "p", &json!({"spec": {}})), "another render");
        assert!(!seen.unchanged::<Secret>("uid", "ns", "p", &want), "another kind");
        assert!(!seen.unchanged::<Service>("other", "ns", "p", &want), "another owner");

        // Someone else wrote the object: the reflector moves on, the proof no longer holds.
        writer.apply_watcher_event(&Event::Apply(service_meta("p", "11")));
        assert!(!seen.unchanged::<Service>("uid", "ns", "p", &want));
        // Deleted: never skip.
        seen.prove::<Service>("uid", "p", &want, Some("11".into()));
        writer.apply_watcher_event(&Event::Delete(service_meta("p", "11")));
        assert!(!seen.unchanged::<Service>("uid", "ns", "p", &want));
    }

    #[test]
    fn sweep_drops_owners_that_are_gone() {
        let seen = seen_with(store::<PartialObjectMeta<Service>>().0);
        let want = json!({});
        seen.prove::<Service>("kept", "a", &want, Some("1".into()));
        seen.prove::<Service>("gone", "b", &want, Some("1".into()));
        seen.prove::<Service>("kept", "c", &want, None);
        assert_eq!(seen.len(), 2);
        seen.sweep(|| panic!("swept before SWEEP_EVERY"));
        seen.verified.lock().unwrap().swept -= SWEEP_EVERY;
        seen.sweep(|| ["kept".to_string()].into());
        assert_eq!(seen.len(), 1);
    }
}
