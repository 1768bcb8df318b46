//! Leader election through a coordination.k8s.io Lease, with a write gate that closes by
//! itself: a leader may write only until its last successful renewal plus the lease duration
//! (less a margin), measured on its own monotonic clock. A leader that is paused, cut off from
//! the API server or slow to notice a takeover therefore stops writing before any other
//! replica can acquire the lease.
//!
//! Followers judge expiry the way client-go does: a lease whose resourceVersion has not changed
//! for a whole lease duration on the follower's own clock is expired, so clock skew between
//! machines does not matter.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

pub const LEASE_NAME: &str = "penpot-operator-leader";
const LEASE_DURATION: Duration = Duration::from_secs(15);
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// Stop writing this long before the lease could be taken over.
const SAFETY_MARGIN: Duration = Duration::from_secs(3);
/// One attempt to acquire or renew (two requests at most): a hung request ends here, and the
/// gate then closes by itself.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// An election loop silent for this long is wedged: `/healthz` fails and the kubelet restarts
/// the operator.
pub const STALLED_AFTER: Duration = Duration::from_secs(30);

/// Whether this replica may write right now.
pub struct Gate {
    /// `None`: no election, always open.
    valid_until: Option<Mutex<Option<Instant>>>,
    leading: watch::Sender<bool>,
    /// When the election loop last finished an attempt, successful or not.
    last_attempt: Mutex<Instant>,
}

impl Gate {
    /// A gate for a single replica without election.
    pub fn always_open() -> Self {
        Gate { valid_until: None, leading: watch::channel(true).0, last_attempt: Mutex::new(Instant::now()) }
    }

    fn elected() -> Self {
        Gate {
            valid_until: Some(Mutex::new(None)),
            leading: watch::channel(false).0,
            last_attempt: Mutex::new(Instant::now()),
        }
    }

    pub fn may_write(&self) -> bool {
        match &self.valid_until {
            None => true,
            Some(m) => m.lock().ok().and_then(|v| *v).is_some_and(|until| Instant::now() < until),
        }
    }

    /// False once the election loop has stalled (no attempt finished for [`STALLED_AFTER`]);
    /// always true without election.
    pub fn alive(&self) -> bool {
        self.valid_until.is_none() || self.last_attempt.lock().is_ok_and(|at| at.elapsed() < STALLED_AFTER)
    }

    fn attempted(&self) {
        if let Ok(mut at) = self.last_attempt.lock() {
            *at = Instant::now();
        }
    }

    /// Follows leadership changes (true while leading).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    fn renewed(&self, started: Instant) {
        if let Some(m) = &self.valid_until
            && let Ok(mut v) = m.lock()
        {
            *v = Some(started + LEASE_DURATION - SAFETY_MARGIN);
        }
        self.leading.send_if_modified(|l| !std::mem::replace(l, true));
    }

    fn lost(&self) {
        if let Some(m) = &self.valid_until
            && let Ok(mut v) = m.lock()
        {
            *v = None;
        }
        self.leading.send_if_modified(|l| std::mem::replace(l, false));
    }
}

pub struct Elector {
    api: Api<Lease>,
    identity: String,
    /// The holder's resourceVersion as last seen, and when it was first seen unchanged.
    observed: Option<(String, Instant)>,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, identity: &str) -> (Self, std::sync::Arc<Gate>) {
        let elector =
            Elector { api: Api::namespaced(client, namespace), identity: identity.to_string(), observed: None };
        (elector, std::sync::Arc::new(Gate::elected()))
    }

    /// Campaigns and renews until `stop` resolves, then releases the lease if held.
    pub async fn run(mut self, gate: std::sync::Arc<Gate>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let started = Instant::now();
            match tokio::time::timeout(ATTEMPT_TIMEOUT, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => gate.renewed(started),
                Ok(Ok(false)) => {
                    if gate.may_write() || *gate.subscribe().borrow() {
                        tracing::warn!(identity = %self.identity, "lost the leader lease");
                    }
                    gate.lost();
                }
                // The gate closes by itself when renewals keep failing.
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the leader lease"),
                Err(_) => tracing::warn!(timeout_s = ATTEMPT_TIMEOUT.as_secs(), "the leader lease request timed out"),
            }
            gate.attempted();
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(RENEW_EVERY) => {}
            }
        }
        if gate.may_write() {
            gate.lost();
            match tokio::time::timeout(ATTEMPT_TIMEOUT, self.release()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot release the leader lease"),
                Err(_) => tracing::warn!("releasing the leader lease timed out; it expires by itself"),
            }
        }
    }

    fn lease(&self, previous: Option<&Lease>, transitions: i32) -> Lease {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let held =
            previous.and_then(|l| l.spec.as_ref()).filter(|s| s.holder_identity.as_deref() == Some(&self.identity));
        Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                resource_version: previous.and_then(|l| l.metadata.resource_version.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
                acquire_time: Some(held.and_then(|s| s.acquire_time.clone()).unwrap_or_else(|| now.clone())),
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..Default::default()
            }),
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let params = PostParams { field_manager: Some(crate::render::labels::MANAGER.into()), ..Default::default() };
        let Some(current) = self.api.get_opt(LEASE_NAME).await? else {
            return match self.api.create(&params, &self.lease(None, 0)).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        if holder != self.identity && !holder.is_empty() {
            // Someone else holds it: take over only once it went unrenewed for a whole
            // duration on our own clock.
            let version = current.metadata.resource_version.clone().unwrap_or_default();
            let first_seen = match &self.observed {
                Some((v, at)) if *v == version => *at,
                _ => {
                    self.observed = Some((version, Instant::now()));
                    return Ok(false);
                }
            };
            let duration = spec.lease_duration_seconds.map_or(LEASE_DURATION, |s| Duration::from_secs(s.max(1) as u64));
            if first_seen.elapsed() < duration {
                return Ok(false);
            }
            tracing::info!(previous = %holder, "the leader lease expired; taking over");
        }
        let next = if holder == self.identity { transitions } else { transitions + 1 };
        match self.api.replace(LEASE_NAME, &params, &self.lease(Some(&current), next)).await {
            Ok(_) => Ok(true),
            // Someone renewed or took it between our read and write.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut current) = self.api.get_opt(LEASE_NAME).await? else { return Ok(()) };
        if current.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(&self.identity) {
            return Ok(());
        }
        if let Some(spec) = current.spec.as_mut() {
            spec.holder_identity = None;
        }
        let params = PostParams { field_manager: Some(crate::render::labels::MANAGER.into()), ..Default::default() };
        self.api.replace(LEASE_NAME, &params, &current).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_closes_by_itself() {
        let gate = Gate::elected();
        assert!(!gate.may_write());
        gate.renewed(Instant::now());
        assert!(gate.may_write());
        assert!(*gate.subscribe().borrow());
        // A renewal long ago is no licence to write now.
        gate.renewed(Instant::now() - LEASE_DURATION);
        assert!(!gate.may_write());
        gate.lost();
        assert!(!*gate.subscribe().borrow());
        assert!(Gate::always_open().may_write());
    }

    #[test]
    fn a_stalled_election_loop_is_not_alive() {
        let gate = Gate::elected();
        assert!(gate.alive());
        *gate.last_attempt.lock().unwrap() = Instant::now() - STALLED_AFTER;
        assert!(!gate.alive(), "no attempt for STALLED_AFTER: wedged");
        gate.attempted();
        assert!(gate.alive());
        let open = Gate::always_open();
        *open.last_attempt.lock().unwrap() = Instant::now() - STALLED_AFTER;
        assert!(open.alive(), "without election there is no loop to stall");
    }
}
