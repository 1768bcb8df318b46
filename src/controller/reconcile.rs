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
use super::{Context, Error, Stored, apply, report, unreadable};

/// While pods roll, look again soon even if no watch event arrives.
const ROLLOUT_POLL: Duration = Duration::from_secs(15);
const DISCOVERY_RETRY: Duration = Duration::from_secs(30);
const IN_THE_WAY_RETRY: Duration = Duration::from_secs(20);

pub async fn reconcile(stored: Arc<Stored>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = stored.namespace().ok_or(Error::NotNamespaced)?;
    let span = info_span!("reconcile", namespace = %ns, penpot = %stored.name_any());
    async move {
        let started = std::time::Instant::now();
        let result = match &stored.0 {
            Ok(penpot) => reconcile_inner(penpot, &ns, &ctx).await,
            Err(invalid) => unreadable::report(&stored, invalid, &ns, &ctx).await,
        };
        ctx.metrics.observe(&result, started.elapsed());
        let penpots = ctx.store.state();
        // An unreadable Penpot reports itself Blocked.
        ctx.metrics.set_phases(penpots.iter().map(|p| match &p.0 {
            Ok(p) => p.status.as_ref().and_then(|s| s.phase),
            Err(_) => Some(crate::crd::Phase::Blocked),
        }));
        ctx.seen.sweep(|| penpots.iter().filter_map(|p| p.uid()).collect());
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
    let mut status_ctx = status::Context {
        generation: penpot.meta().generation,
        previous: penpot.status.as_ref(),
        now: Time(k8s_openapi::jiff::Timestamp::now()),
        public_uri: render::validate::public_uri(penpot).ok(),
        version: Some(render::penpot_version(penpot).to_string()),
    };

    let inputs = match resolve::resolve(penpot, ns, ctx).await? {
        Resolved::Ready(inputs) => inputs,
        other => {
            // Nothing is applied: whatever runs keeps running on its last good configuration.
            let workload = resolve::current_workload(penpot, ns, ctx).await?;
            let (obs, next) = match other {
                Resolved::Missing(missing) => {
                    (Observation::WaitingForRelations { missing, workload: workload.as_ref() }, ctx.resync)
                }
                Resolved::Invalid { reason, message } => {
                    tracing::warn!(%message, "relation data rejected");
                    (Observation::Blocked { reason, message, workload: workload.as_ref() }, ctx.resync)
                }
                Resolved::DiscoveryFailed(message) => {
                    tracing::warn!(%message, "OIDC discovery failed");
                    let obs = Observation::Blocked {
                        reason: Reason::OidcDiscoveryFailed,
                        message,
                        workload: workload.as_ref(),
                    };
                    (obs, DISCOVERY_RETRY)
                }
                Resolved::Ready(_) => unreachable!("handled above"),
            };
            report::report(penpot, ns, status::compute(&status_ctx, &obs), ctx).await?;
            return Ok(Action::requeue(next));
        }
    };

    let desired = match render::render(penpot, inputs.as_ref()) {
        Ok(d) => d,
        Err(e) => {
            let workload = resolve::current_workload(penpot, ns, ctx).await?;
            let message = e.to_string();
            tracing::warn!(%message, "spec cannot be rendered");
            let obs = Observation::Blocked { reason: Reason::InvalidSpec, message, workload: workload.as_ref() };
            report::report(penpot, ns, status::compute(&status_ctx, &obs), ctx).await?;
            return Ok(Action::requeue(ctx.resync));
        }
    };

    let applied = match apply::apply_all(penpot, ns, &desired, ctx).await {
        Ok(applied) => applied,
        Err(e @ Error::InTheWay { .. }) => {
            // Nothing was written. Not an error for backoff: the user must act, and a look
            // every IN_THE_WAY_RETRY costs one read. The object has none of our labels, so
            // no watch tells when it goes.
            let workload = resolve::current_workload(penpot, ns, ctx).await?;
            let message = e.to_string();
            tracing::warn!(%message, "an object in the way");
            let obs = Observation::Blocked { reason: Reason::ObjectInTheWay, message, workload: workload.as_ref() };
            report::report(penpot, ns, status::compute(&status_ctx, &obs), ctx).await?;
            return Ok(Action::requeue(IN_THE_WAY_RETRY));
        }
        Err(e @ Error::Rejected { .. }) => {
            // Say why in status; the error itself goes back to the controller for backoff.
            let workload = resolve::current_workload(penpot, ns, ctx).await.ok().flatten();
            let obs = Observation::ApplyFailed { message: e.to_string(), workload: workload.as_ref() };
            if let Err(report) = report::report(penpot, ns, status::compute(&status_ctx, &obs), ctx).await {
                tracing::warn!(error = %report, "cannot report the failed apply");
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if applied.writes > 0 {
        tracing::info!(writes = applied.writes, config_hash = %desired.config_hash, "applied desired state");
    }
    status_ctx.public_uri = Some(desired.public_uri.clone());
    let obs = Observation::Applied { workload: &applied.statefulset, config_hash: desired.config_hash.clone() };
    let next = status::compute(&status_ctx, &obs);
    let settled = conditions::is_ready(&next.conditions);
    report::report(penpot, ns, next, ctx).await?;
    Ok(Action::requeue(if settled { ctx.resync } else { ROLLOUT_POLL }))
}
