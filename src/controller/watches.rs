//! The watches behind the Penpot controller, each with its own backoff.
//!
//! kube-runtime backs off all of a controller's trigger watches together, with one
//! exponential backoff that resets only after two quiet minutes. After an API server restart
//! every watch fails once (410 Gone, or the connection dropped), and with eight watches the
//! shared delay grew past a minute, during which no event reached any reconcile. So every
//! stream here backs off by itself, and the controller's shared backoff only spaces errors.
//!
//! Each watch's own backoff is capped at [`WATCH_RETRY_MAX`] rather than kube's 30 s: after
//! an outage the relists are what pull every Penpot forward, so they must come soon after the
//! API server does. Eight watches retrying every 5 s is no load worth sparing.

use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::render::labels;

use super::Stored;
use super::seen::Epoch;
use super::versions::Versions;

type Watched<K> = Result<K, watcher::Error>;

/// `Api` over one namespace, or all of them.
pub fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Objects the operator owns carry its `managed-by` label.
pub fn owned_selector() -> watcher::Config {
    watcher::Config::default().labels(&format!("{}={}", labels::MANAGED_BY_LABEL, labels::MANAGER))
}

/// The Penpots, cached for the controller and the Secret mapper.
/// `on_relist` runs whenever a (re)list completes: every Penpot is about to be reconciled.
pub fn penpots(
    api: Api<Stored>,
    on_relist: impl Fn() + Send + 'static,
) -> (Store<Stored>, impl Stream<Item = Watched<Stored>> + Send) {
    let (store, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .backoff(WatchBackoff::default())
        .reflect(writer)
        .inspect_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) {
                on_relist();
            }
        })
        .applied_objects();
    (store, stream)
}

/// A metadata-only watch: names, labels, owners and resourceVersions, never payloads.
/// Managed fields and annotations are dropped before anything keeps the object.
pub fn metadata<K>(
    api: Api<PartialObjectMeta<K>>,
    config: watcher::Config,
) -> impl Stream<Item = Watched<watcher::Event<PartialObjectMeta<K>>>> + Send
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    watcher(api, config).backoff(WatchBackoff::default()).modify(|meta| {
        meta.metadata.managed_fields = None;
        meta.metadata.annotations = None;
    })
}

/// A metadata watch of one owned kind, its resourceVersions kept for `seen`. Every error of
/// the watch bumps `epoch`: the versions may have missed events.
pub fn owned<K>(
    api: Api<PartialObjectMeta<K>>,
    epoch: Epoch,
) -> (Versions, impl Stream<Item = Watched<PartialObjectMeta<K>>> + Send)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let versions = Versions::default();
    let index = versions.clone();
    let stream = metadata(api, owned_selector())
        .inspect_err(move |_| epoch.bump())
        .inspect_ok(move |event| index.apply(event))
        .touched_objects();
    (versions, stream)
}

/// The cached objects of `store` in `changed`'s namespace for which `uses` says they read
/// it (by name): what a change of a Secret or ConfigMap must reconcile.
fn users_of<K, M>(
    store: &Store<K>,
    changed: &PartialObjectMeta<M>,
    uses: impl Fn(&K, &str) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    M: Resource<DynamicType = ()>,
{
    let ns = changed.namespace();
    let name = changed.name_any();
    store
        .state()
        .iter()
        .filter(|o| o.namespace() == ns && uses(o, &name))
        .map(|o| ObjectRef::from(o.as_ref()))
        .collect()
}

/// Penpots to reconcile when a Secret changes: every Penpot in the same namespace whose
/// relations reference it. Owned Secrets reach their owner through the owned-Secret watch.
pub fn penpots_for_secret(store: &Store<Stored>, secret: &PartialObjectMeta<Secret>) -> Vec<ObjectRef<Stored>> {
    users_of(store, secret, |p, name| p.0.as_ref().is_ok_and(|p| p.references_secret(name)))
}

/// PenpotProfiles whose password lives in this Secret (referenced, or generated for them).
pub fn profiles_for_secret(
    store: &Store<crate::crd::PenpotProfile>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<crate::crd::PenpotProfile>> {
    users_of(store, secret, |p, name| crate::profiles::controller::password_secret_name(p) == name)
}

/// Penpots to reconcile when a ConfigMap changes: those whose CA bundle it holds.
pub fn penpots_for_config_map(
    store: &Store<Stored>,
    config_map: &PartialObjectMeta<ConfigMap>,
) -> Vec<ObjectRef<Stored>> {
    users_of(store, config_map, |p, name| p.0.as_ref().is_ok_and(|p| p.references_config_map(name)))
}

/// Longest wait between two attempts of one watch.
pub const WATCH_RETRY_MAX: Duration = Duration::from_secs(5);

/// One watch's backoff: 500 ms doubling up to [`WATCH_RETRY_MAX`], reset by any event.
pub struct WatchBackoff(Duration);

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff(Duration::from_millis(500))
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let delay = self.0;
        self.0 = (delay * 2).min(WATCH_RETRY_MAX);
        Some(delay)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        *self = WatchBackoff::default();
    }
}

/// The controller-wide backoff between trigger errors: short and fixed, because each watch
/// above already backs off on its own.
pub struct SpaceErrors;

impl Iterator for SpaceErrors {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }
}

impl Backoff for SpaceErrors {
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_retries_within_five_seconds_and_starts_over_after_an_event() {
        let mut b = WatchBackoff::default();
        let delays: Vec<u64> = b.by_ref().take(6).map(|d| d.as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(500)));
    }
}
