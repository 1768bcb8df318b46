//! The resourceVersion, uid and controller of every object one watch reports, and nothing else.
//!
//! A reflector store would keep each object's whole metadata (labels, owners, timestamps):
//! about 2.5 KiB each, 15 MiB at 1,000 Penpots. The proofs in `seen` only need the version,
//! and prune only the uid and the controlling owner's uid: about 180 bytes an object.
//!
//! Why not kube's reflector `Store` fed with stripped objects: even with everything but name,
//! namespace, resourceVersion, uid and owner references dropped, each entry is an `ObjectRef`
//! key (96 bytes plus its own copies of name and namespace) and an `Arc` of a
//! `PartialObjectMeta` (408 bytes, mostly empty `Option`s) plus a full `OwnerReference` with
//! four strings: about 850 bytes an object, nearly five times this index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;

type Index = HashMap<(String, String), Entry>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub resource_version: String,
    pub uid: String,
    /// The uid of the owner reference marked `controller`, if any.
    pub controller: Option<String>,
}

impl Entry {
    fn of<K>(o: &PartialObjectMeta<K>) -> Option<Entry> {
        let meta = &o.metadata;
        Some(Entry {
            resource_version: meta.resource_version.clone()?,
            uid: meta.uid.clone().unwrap_or_default(),
            controller: crate::render::owned::controller_uid(meta).map(str::to_string),
        })
    }
}

/// Shared between the watch that fills it and the reconciles that read it.
#[derive(Clone, Default)]
pub struct Versions(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    live: Index,
    /// A relist in progress: it replaces `live` once complete, as a reflector does.
    relist: Option<Index>,
}

impl Versions {
    /// The resourceVersion last reported for `ns/name`, if the object exists.
    pub fn get(&self, ns: &str, name: &str) -> Option<String> {
        let state = self.0.lock().ok()?;
        state.live.get(&(ns.to_string(), name.to_string())).map(|e| e.resource_version.clone())
    }

    /// The objects in `ns` controlled by the owner with uid `owner`: (name, uid), sorted.
    pub fn controlled_by(&self, ns: &str, owner: &str) -> Vec<(String, String)> {
        let Ok(state) = self.0.lock() else { return Vec::new() };
        let mut out: Vec<_> = state
            .live
            .iter()
            .filter(|((n, _), e)| n == ns && e.controller.as_deref() == Some(owner))
            .map(|((_, name), e)| (name.clone(), e.uid.clone()))
            .collect();
        out.sort();
        out
    }

    pub fn apply<K>(&self, event: &Event<PartialObjectMeta<K>>) {
        let Ok(mut state) = self.0.lock() else { return };
        let key = |o: &PartialObjectMeta<K>| {
            (o.metadata.namespace.clone().unwrap_or_default(), o.metadata.name.clone().unwrap_or_default())
        };
        match event {
            Event::Apply(o) => {
                if let Some(entry) = Entry::of(o) {
                    state.live.insert(key(o), entry);
                }
            }
            Event::Delete(o) => {
                state.live.remove(&key(o));
            }
            Event::Init => state.relist = Some(Index::new()),
            Event::InitApply(o) => {
                if let (Some(relist), Some(entry)) = (state.relist.as_mut(), Entry::of(o)) {
                    relist.insert(key(o), entry);
                }
            }
            Event::InitDone => {
                if let Some(relist) = state.relist.take() {
                    state.live = relist;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    fn meta(name: &str, rv: &str) -> PartialObjectMeta<Service> {
        let mut meta = PartialObjectMeta::<Service>::default();
        meta.metadata.name = Some(name.into());
        meta.metadata.namespace = Some("ns".into());
        meta.metadata.resource_version = Some(rv.into());
        meta
    }

    #[test]
    fn follows_applies_deletes_and_relists() {
        let v = Versions::default();
        v.apply(&Event::Apply(meta("a", "1")));
        v.apply(&Event::Apply(meta("b", "2")));
        v.apply(&Event::Apply(meta("a", "3")));
        assert_eq!(v.get("ns", "a").as_deref(), Some("3"));
        v.apply(&Event::Delete(meta("b", "2")));
        assert_eq!(v.get("ns", "b"), None);
        assert_eq!(v.get("other", "a"), None);

        // During a relist the old view still answers; afterwards only what the list held.
        v.apply::<Service>(&Event::Init);
        v.apply(&Event::InitApply(meta("c", "5")));
        assert_eq!(v.get("ns", "a").as_deref(), Some("3"));
        assert_eq!(v.get("ns", "c"), None);
        v.apply::<Service>(&Event::InitDone);
        assert_eq!(v.get("ns", "a"), None, "deleted while the watch was down");
        assert_eq!(v.get("ns", "c").as_deref(), Some("5"));
    }

    #[test]
    fn lists_what_one_owner_controls() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let owned = |name: &str, owner: &str, controller: bool| {
            let mut m = meta(name, "1");
            m.metadata.uid = Some(format!("uid-{name}"));
            m.metadata.owner_references =
                Some(vec![OwnerReference { uid: owner.into(), controller: Some(controller), ..Default::default() }]);
            m
        };
        let v = Versions::default();
        v.apply(&Event::Apply(owned("b", "p1", true)));
        v.apply(&Event::Apply(owned("a", "p1", true)));
        v.apply(&Event::Apply(owned("c", "p2", true)));
        v.apply(&Event::Apply(owned("d", "p1", false)));
        v.apply(&Event::Apply(meta("e", "1")));
        assert_eq!(
            v.controlled_by("ns", "p1"),
            [("a".to_string(), "uid-a".to_string()), ("b".to_string(), "uid-b".to_string())]
        );
        assert!(v.controlled_by("other", "p1").is_empty());
    }
}
