//! The holistic reconcile: whatever triggered it, resolve -> render -> apply -> report.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info_span};

use crate::conditions::{self, Reason};
use crate::crd::Penpot;
use crate::render;
use crate::status::{self, Observation};

use super::resolve::{self, Resolved};
use super::{Context, Error, Stored, apply, pace, report, unreadable};

/// While pods roll, look again soon even if no watch event arrives.
const ROLLOUT_POLL: Duration = Duration::from_secs(15);
const DISCOVERY_RETRY: Duration = Duration::from_secs(30);
const IN_THE_WAY_RETRY: Duration = Duration::from_secs(20);
/// A reconcile makes a few dozen requests; one that hangs (the kube client sets no read
/// timeout, to keep watches and exec alive) must not hold the Penpot's slot forever.
pub const RECONCILE_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn reconcile(stored: Arc<Stored>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = stored.namespace().ok_or(Error::NotNamespaced)?;
    // The root of the reconcile's trace; `otel.*` fields become the span's status in OTLP.
    let span = info_span!(
        "reconcile",
        namespace = %ns,
        penpot = %stored.name_any(),
        otel.status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    async move {
        let started = std::time::Instant::now();
        let result = match &stored.0 {
            Ok(penpot) => tokio::time::timeout(RECONCILE_TIMEOUT, reconcile_inner(penpot, &ns, &ctx))
                .await
                .unwrap_or(Err(Error::TimedOut(RECONCILE_TIMEOUT))),
            Err(invalid) => unreadable::report(&stored, invalid, &ns, &ctx).await,
        };
        ctx.metrics.observe(&result, started.elapsed());
        if let Err(e) = &result {
            let span = tracing::Span::current();
            span.record("otel.status_code", "ERROR");
            span.record("error", tracing::field::display(e));
        }
        let penpots = ctx.store.state();
        // An unreadable Penpot reports itself Blocked.
        ctx.metrics.set_phases(penpots.iter().map(|p| match &p.0 {
            Ok(p) => p.status.as_ref().and_then(|s| s.phase),
            Err(_) => Some(crate::crd::Phase::Blocked),
        }));
        ctx.seen.sweep(|| penpots.iter().filter_map(|p| p.uid()).collect());
        ctx.failures.retain(|p| ctx.store.get(p).is_some());
        if let Some(checks) = &ctx.checks {
            let keys: std::collections::HashSet<String> =
                penpots.iter().map(|p| check_key(p.namespace().as_deref(), &p.name_any())).collect();
            checks.retain(|key| keys.contains(key));
        }
        if result.is_ok() {
            ctx.reset_backoff(&stored);
        }
        result
    }
    .instrument(span)
    .await
}

async fn reconcile_inner(penpot: &Penpot, ns: &str, ctx: &Context) -> Result<Action, Error> {
    if penpot.meta().deletion_timestamp.is_some() {
        // Owner references garbage-collect everything; nothing to do.
        return Ok(Action::await_change());
    }
    let outcome = steps(penpot, ns, ctx).await?;
    // Status is computed from the outcome and written once, whatever the outcome was.
    let mut status_ctx = status::Context::of(penpot, Time(k8s_openapi::jiff::Timestamp::now()));
    if let Some(uri) = outcome.public_uri {
        status_ctx.public_uri = Some(uri);
    }
    status_ctx.secret_key_created = outcome.secret_key_created;
    status_ctx.redirect_uris = outcome.redirect_uris;
    status_ctx.checks = outcome.checks;
    let status = status::compute(&status_ctx, &outcome.observation);
    let ready = conditions::is_ready(&status.conditions);
    let written = report::report(penpot, ns, status, ctx).instrument(info_span!("report")).await;
    match outcome.next {
        Next::Retry(error) => {
            // The error goes back to the controller for backoff, reported or not.
            if let Err(e) = written {
                tracing::warn!(error = %e, "cannot report the failed apply");
            }
            Err(error)
        }
        Next::After(delay) => written.map(|()| Action::requeue(delay)),
        Next::Rollout => written.map(|()| Action::requeue(if ready { ctx.resync } else { ROLLOUT_POLL })),
    }
}

/// What one pass came to: what status says, and what happens next.
struct Outcome {
    observation: Observation,
    next: Next,
    /// The public URI the render settled on, once it rendered.
    public_uri: Option<String>,
    /// When the secret key this pass read was made.
    secret_key_created: Option<Time>,
    /// The OAuth callback URIs of the render applied.
    redirect_uris: Option<std::collections::BTreeMap<String, String>>,
    /// The pre-flight checks of the relations resolved.
    checks: Vec<crate::crd::RelationCheck>,
}

enum Next {
    /// Look again after this long (or on any watch event).
    After(Duration),
    /// Applied: soon while pods roll, at the resync once Ready.
    Rollout,
    /// Failed: the controller's backoff decides when to retry.
    Retry(Error),
}

/// resolve -> render -> apply. Each step either hands its typed result to the next or ends
/// the pass with an outcome; nothing is written before apply, and apply writes all or nothing
/// of what is in the way.
async fn steps(penpot: &Penpot, ns: &str, ctx: &Context) -> Result<Outcome, Error> {
    let (inputs, workload, secret_key_created) =
        match resolve::resolve(penpot, ns, ctx).instrument(info_span!("resolve")).await? {
            Resolved::Ready(inputs, workload, created) => (inputs, *workload, created),
            Resolved::Missing(missing) => {
                let workload = resolve::current_workload(penpot, ns, ctx).await?;
                return Ok(held(Observation::WaitingForRelations { missing, workload }, ctx.resync));
            }
            Resolved::Invalid { reason, message } => {
                tracing::warn!(%message, "relation data rejected");
                return blocked(penpot, ns, ctx, reason, message, ctx.resync).await;
            }
            Resolved::DiscoveryFailed(message) => {
                tracing::warn!(%message, "OIDC discovery failed");
                return blocked(penpot, ns, ctx, Reason::OidcDiscoveryFailed, message, DISCOVERY_RETRY).await;
            }
        };
    let checks = match &ctx.checks {
        // Only the leader connects: the others' results would go unwritten.
        Some(checker) if ctx.leader.may_write() => {
            let subject =
                crate::checks::Subject { relations: inputs.relations.clone(), ca_bundle: inputs.ca_bundle.clone() };
            let stored = penpot.status.as_ref().map(|s| s.checks.as_slice()).unwrap_or_default();
            checker.observe(&check_key(Some(ns), &penpot.name_any()), &subject, stored)
        }
        _ => Vec::new(),
    };
    let desired = match info_span!("render").in_scope(|| render::render(penpot, inputs.as_ref())) {
        Ok(desired) => desired,
        Err(e) => {
            let message = e.to_string();
            tracing::warn!(%message, "spec cannot be rendered");
            // A failed Backup is retried by deleting it, and installing the Gateway API's CRDs
            // is no event of ours: no watch sees either, so look again soon.
            let retry = match &e {
                _ if e.reason() == Reason::BackupFailed => IN_THE_WAY_RETRY,
                render::RenderError::Spec(render::SpecError::NoGatewayApi) => DISCOVERY_RETRY,
                _ => ctx.resync,
            };
            // Resolve read the StatefulSet already; status reports on that read.
            let workload = workload.of(penpot).cloned();
            return Ok(Outcome {
                checks,
                ..held(Observation::Blocked { reason: e.reason(), message, workload }, retry)
            });
        }
    };
    if let Some(live) = workload.of(penpot)
        && let Some(wait) = pace::rollout_wait(Some(live), &desired.config_hash, k8s_openapi::jiff::Timestamp::now())
    {
        tracing::info!(wait_s = wait.as_secs(), "a new configuration waits for the rollout interval");
        let observation = Observation::Deferred { workload: live.clone(), wait, interval: pace::ROLLOUT_INTERVAL };
        return Ok(Outcome { checks, ..held(observation, wait) });
    }
    match apply::apply_all(penpot, ns, &desired, workload, ctx).instrument(info_span!("apply")).await {
        Ok(applied) => {
            if applied.writes > 0 {
                tracing::info!(writes = applied.writes, config_hash = %desired.config_hash, "applied desired state");
            }
            let observation = Observation::Applied {
                workload: applied.statefulset,
                config_hash: desired.config_hash.clone(),
                rollout: desired.rollout,
            };
            Ok(Outcome {
                observation,
                next: Next::Rollout,
                public_uri: Some(desired.public_uri),
                secret_key_created,
                redirect_uris: Some(desired.redirect_uris),
                checks,
            })
        }
        // Nothing was written. Not an error for backoff: the user must act, and a look every
        // IN_THE_WAY_RETRY costs one read. The object has none of our labels, so no watch
        // tells when it goes.
        Err(e @ Error::InTheWay { .. }) => {
            let message = e.to_string();
            tracing::warn!(%message, "an object in the way");
            blocked(penpot, ns, ctx, Reason::ObjectInTheWay, message, IN_THE_WAY_RETRY).await
        }
        Err(e @ (Error::Rejected { .. } | Error::Predecessor { .. })) => {
            // Say why in status; the workload is best effort, the refusal is what matters.
            let workload = resolve::current_workload(penpot, ns, ctx).await.ok().flatten();
            let observation = Observation::ApplyFailed { message: e.to_string(), workload };
            Ok(Outcome {
                observation,
                next: Next::Retry(e),
                public_uri: None,
                secret_key_created,
                redirect_uris: None,
                checks,
            })
        }
        Err(e) => Err(e),
    }
}

/// Nothing applied: whatever runs keeps running on its last good configuration.
fn held(observation: Observation, retry: Duration) -> Outcome {
    Outcome {
        observation,
        next: Next::After(retry),
        public_uri: None,
        secret_key_created: None,
        redirect_uris: None,
        checks: Vec::new(),
    }
}

/// A Penpot's key among the checks: `namespace/name`.
fn check_key(ns: Option<&str>, name: &str) -> String {
    format!("{}/{name}", ns.unwrap_or_default())
}

async fn blocked(
    penpot: &Penpot,
    ns: &str,
    ctx: &Context,
    reason: Reason,
    message: String,
    retry: Duration,
) -> Result<Outcome, Error> {
    let workload = resolve::current_workload(penpot, ns, ctx).await?;
    Ok(held(Observation::Blocked { reason, message, workload }, retry))
}
