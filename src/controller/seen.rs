//! What the operator last proved the API server holds for each object it owns, so a reconcile
//! that renders an unchanged object reads nothing.
//!
//! The metadata-only watches of the owned kinds (the same watches that trigger reconciles)
//! keep each object's resourceVersion. Once a GET or an apply shows that the server holds every
//! rendered field, that proof is remembered with the render's digest (the one its
//! `render-digest` annotation carries) and the object's resourceVersion. A later reconcile that
//! renders the same digest while the watch still shows that resourceVersion skips the GET: nobody has
//! written the object since. Any mismatch (a hand edit, a deletion, an event not yet
//! delivered, a new render) falls back to a real GET, so a stale cache can cost a read but not
//! hide drift. Two more limits cover a watch that stops hearing: a proof dies when any
//! owned-object watch reports an error (it may have missed events), and after [`MAX_AGE`].
//!
//! Measured benefit (`docs/performance.md`, scale benchmark): at N = 1000 Penpots the operator
//! made about 75 GETs per instance with these proofs and 153 without; an idle resync reads the
//! relation Secrets and the StatefulSet and no other owned object (`tests/e2e.rs`, password
//! rotation test). Without them every reconcile would read all six owned objects.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::render::owned::OwnedKind;

use super::versions::Versions;

/// The resourceVersions of the owned kinds the operator watches. PodMonitor and
/// PrometheusRule have no watch (their CRDs may come and go): they are always read.
pub struct Stores {
    pub secrets: Versions,
    pub config_maps: Versions,
    pub services: Versions,
    pub network_policies: Versions,
    pub ingresses: Versions,
    pub pod_disruption_budgets: Versions,
    pub service_accounts: Versions,
    pub statefulsets: Versions,
}

impl Stores {
    pub fn get(&self, kind: OwnedKind) -> Option<&Versions> {
        match kind {
            OwnedKind::Secret => Some(&self.secrets),
            OwnedKind::ConfigMap => Some(&self.config_maps),
            OwnedKind::Service => Some(&self.services),
            OwnedKind::NetworkPolicy => Some(&self.network_policies),
            OwnedKind::Ingress => Some(&self.ingresses),
            OwnedKind::StatefulSet => Some(&self.statefulsets),
            OwnedKind::PodDisruptionBudget => Some(&self.pod_disruption_budgets),
            OwnedKind::ServiceAccount => Some(&self.service_accounts),
            // Unwatched: the optional APIs' kinds may not exist, and the assets claim is read
            // when applied (it is never pruned, so no cache needs to list it).
            OwnedKind::PodMonitor
            | OwnedKind::PrometheusRule
            | OwnedKind::HttpRoute
            | OwnedKind::PersistentVolumeClaim => None,
        }
    }
}

/// (owner Penpot uid, kind, name): the owner lets entries of deleted Penpots be swept.
type Key = (String, OwnedKind, String);

/// Bumped on every error of an owned-object watch: proofs from before are void.
#[derive(Clone, Default)]
pub struct Epoch(Arc<AtomicU64>);

impl Epoch {
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct Seen {
    stores: Stores,
    epoch: Epoch,
    verified: Mutex<Verified>,
}

struct Verified {
    entries: HashMap<Key, Proof>,
    swept: Instant,
}

/// The render's digest, the resourceVersion the watch must still show, the watch epoch and
/// the time of the proof.
struct Proof {
    digest: String,
    resource_version: String,
    epoch: u64,
    at: Instant,
}

/// How often entries of Penpots that no longer exist are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// A real read at least this often, whatever the watches say.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 60);

impl Seen {
    pub fn new(stores: Stores, epoch: Epoch) -> Self {
        Seen { stores, epoch, verified: Mutex::new(Verified { entries: HashMap::new(), swept: Instant::now() }) }
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    fn resource_version(&self, kind: OwnedKind, ns: &str, name: &str) -> Option<String> {
        self.stores.get(kind)?.get(ns, name)
    }

    /// True when the server was proven to hold the render with `digest` and the watch shows
    /// nothing has happened to the object since.
    pub fn vouches(&self, kind: OwnedKind, owner: &str, ns: &str, name: &str, digest: &str) -> bool {
        if self.stores.get(kind).is_none() {
            return false;
        }
        let Some(current) = self.resource_version(kind, ns, name) else { return false };
        let epoch = self.epoch.get();
        let Ok(verified) = self.verified.lock() else { return false };
        verified.entries.get(&key(kind, owner, name)).is_some_and(|p| {
            p.digest == digest && p.resource_version == current && p.epoch == epoch && p.at.elapsed() < MAX_AGE
        })
    }

    /// Records that the server held the render with `digest` at `resource_version` (an object
    /// without one proves nothing). Take the epoch before the read or write that proves it, so
    /// an error in between voids the proof.
    pub fn prove(
        &self,
        kind: OwnedKind,
        owner: &str,
        name: &str,
        digest: &str,
        resource_version: Option<String>,
        epoch: u64,
    ) {
        let Some(resource_version) = resource_version else { return };
        let Ok(mut verified) = self.verified.lock() else { return };
        let proof = Proof { digest: digest.to_string(), resource_version, epoch, at: Instant::now() };
        verified.entries.insert(key(kind, owner, name), proof);
    }

    /// Forgets what was proven of an object, for a result that proves nothing.
    pub fn forget(&self, kind: OwnedKind, owner: &str, name: &str) {
        if let Ok(mut verified) = self.verified.lock() {
            verified.entries.remove(&key(kind, owner, name));
        }
    }

    /// The epoch to pass to [`Seen::prove`].
    pub fn epoch(&self) -> u64 {
        self.epoch.get()
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

fn key(kind: OwnedKind, owner: &str, name: &str) -> Key {
    (owner.to_string(), kind, name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use kube::core::PartialObjectMeta;
    use kube::runtime::watcher::Event;

    fn service_meta(name: &str, rv: &str) -> Event<PartialObjectMeta<Service>> {
        let mut meta = PartialObjectMeta::<Service>::default();
        meta.metadata.name = Some(name.into());
        meta.metadata.namespace = Some("ns".into());
        meta.metadata.resource_version = Some(rv.into());
        Event::Apply(meta)
    }

    fn seen_with(services: Versions) -> Seen {
        let stores = Stores {
            secrets: Versions::default(),
            config_maps: Versions::default(),
            services,
            network_policies: Versions::default(),
            ingresses: Versions::default(),
            pod_disruption_budgets: Versions::default(),
            service_accounts: Versions::default(),
            statefulsets: Versions::default(),
        };
        Seen::new(stores, Epoch::default())
    }

    #[test]
    fn a_proof_holds_only_for_the_same_render_at_the_same_resource_version() {
        let services = Versions::default();
        let seen = seen_with(services.clone());
        let want = "digest-a";
        assert!(!seen.vouches(OwnedKind::Service, "uid", "ns", "p", want), "nothing proven, nothing seen");

        services.apply(&service_meta("p", "10"));
        assert!(!seen.vouches(OwnedKind::Service, "uid", "ns", "p", want), "seen but not proven");
        seen.prove(OwnedKind::Service, "uid", "p", want, Some("10".into()), seen.epoch());
        assert!(seen.vouches(OwnedKind::Service, "uid", "ns", "p", want));
        assert!(!seen.vouches(OwnedKind::Service, "uid", "ns", "p", "digest-b"), "another render");
        assert!(!seen.vouches(OwnedKind::Secret, "uid", "ns", "p", want), "another kind");
        assert!(!seen.vouches(OwnedKind::Service, "other", "ns", "p", want), "another owner");

        // Someone else wrote the object: the watch moves on, the proof no longer holds.
        services.apply(&service_meta("p", "11"));
        assert!(!seen.vouches(OwnedKind::Service, "uid", "ns", "p", want));
        // Deleted: never skip.
        seen.prove(OwnedKind::Service, "uid", "p", want, Some("11".into()), seen.epoch());
        if let Event::Apply(gone) = service_meta("p", "11") {
            services.apply(&Event::Delete(gone));
        }
        assert!(!seen.vouches(OwnedKind::Service, "uid", "ns", "p", want));
        seen.forget(OwnedKind::Service, "uid", "p");
        assert_eq!(seen.len(), 0);
        // An object without a resourceVersion proves nothing.
        services.apply(&service_meta("p", "12"));
        seen.prove(OwnedKind::Service, "uid", "p", want, None, seen.epoch());
        assert!(!seen.vouches(OwnedKind::Service, "uid", "ns", "p", want));
        assert_eq!(seen.len(), 0);
    }

    #[test]
    fn a_failed_watch_or_age_voids_every_proof() {
        let services = Versions::default();
        let seen = seen_with(services.clone());
        services.apply(&service_meta("p", "10"));
        let want = "digest-a";
        let before = seen.epoch();
        seen.epoch.bump();
        seen.prove(OwnedKind::Service, "uid", "p", want, Some("10".into()), before);
        assert!(!seen.vouches(OwnedKind::Service, "uid", "ns", "p", want), "proven across a watch error");
        seen.prove(OwnedKind::Service, "uid", "p", want, Some("10".into()), seen.epoch());
        assert!(seen.vouches(OwnedKind::Service, "uid", "ns", "p", want));
        seen.epoch.bump();
        assert!(!seen.vouches(OwnedKind::Service, "uid", "ns", "p", want), "a watch error after the proof");

        seen.prove(OwnedKind::Service, "uid", "p", want, Some("10".into()), seen.epoch());
        if let Some(proof) = seen.verified.lock().unwrap().entries.values_mut().next() {
            proof.at = Instant::now().checked_sub(MAX_AGE).unwrap();
        }
        assert!(!seen.vouches(OwnedKind::Service, "uid", "ns", "p", want), "an old proof");
    }

    #[test]
    fn sweep_drops_owners_that_are_gone() {
        let seen = seen_with(Versions::default());
        let want = "digest-a";
        seen.prove(OwnedKind::Service, "kept", "a", want, Some("1".into()), 0);
        seen.prove(OwnedKind::Service, "gone", "b", want, Some("1".into()), 0);
        assert_eq!(seen.len(), 2);
        seen.sweep(|| panic!("swept before SWEEP_EVERY"));
        seen.verified.lock().unwrap().swept = Instant::now().checked_sub(SWEEP_EVERY).unwrap();
        seen.sweep(|| ["kept".to_string()].into());
        assert_eq!(seen.len(), 1);
    }
}
