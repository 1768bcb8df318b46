//! Writes the status (only when it changed) and an Event on every phase change and rollout.
//! Status messages and events are built from relation errors that never carry values.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource};
use serde_json::json;

use crate::conditions::{self, ConditionType, Reason};
use crate::crd::{Penpot, PenpotStatus, Phase};
use crate::render::labels;
use crate::render::version::Version;

use super::{Context, Error};
use crate::error::{AtStep, Step};

pub async fn report(penpot: &Penpot, ns: &str, status: PenpotStatus, ctx: &Context) -> Result<(), Error> {
    write(&penpot.object_ref(&()), ns, penpot.status.as_ref(), status, ctx).await
}

/// Writes `status` unless it equals `previous`, then the events the change deserves. The
/// Penpot is addressed untyped, so one this operator cannot parse gets its status too.
pub async fn write(
    penpot: &ObjectReference,
    ns: &str,
    previous: Option<&PenpotStatus>,
    status: PenpotStatus,
    ctx: &Context,
) -> Result<(), Error> {
    if previous == Some(&status) {
        return Ok(());
    }
    ctx.ensure_leader()?;
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ApiResource::erase::<Penpot>(&()));
    let name = penpot.name.clone().unwrap_or_default();
    let patch = json!({
        "apiVersion": Penpot::api_version(&()),
        "kind": Penpot::kind(&()),
        "status": status,
    });
    api.patch_status(&name, &PatchParams::apply(labels::MANAGER).force(), &Patch::Apply(&patch))
        .await
        .at(Step::Report)?;

    for event in transitions(previous, &status) {
        // Events are best effort: a full event store must not fail the reconcile.
        if let Err(e) = ctx.publish(&event, penpot).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
    Ok(())
}

/// The events a status change deserves: phase changes and new rollouts.
pub fn transitions(previous: Option<&PenpotStatus>, next: &PenpotStatus) -> Vec<Event> {
    let mut events = Vec::new();
    let ready_reason = ready_reason_of(next).unwrap_or("Reconciled");
    let blocked_again = previous.is_some_and(|p| p.phase == Some(Phase::Blocked) && p.message != next.message)
        && next.phase == Some(Phase::Blocked);
    let entered =
        |reason: Reason| ready_reason == reason.as_str() && previous.and_then(ready_reason_of) != Some(reason.as_str());
    let apply_failed = Reason::ApplyFailed.as_str();
    // A refusal while pods start keeps the phase (`Waiting`) but still deserves its warning.
    let refused = entered(Reason::ApplyFailed);
    // A version change inside a rollout keeps the phase (`Maintenance`); its start is news.
    let upgrade_started = entered(Reason::UpgradingFirstPod);
    if previous.and_then(|p| p.phase) != next.phase || blocked_again || refused || upgrade_started {
        let phase = next.phase.map(|p| format!("{p:?}")).unwrap_or_default();
        events.push(Event {
            type_: if next.phase == Some(Phase::Blocked) || ready_reason == apply_failed {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: ready_reason.to_string(),
            note: Some(match &next.message {
                Some(m) => truncate(&format!("{phase}: {m}")),
                None => phase,
            }),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    if let (Some(old), Some(new)) = (previous.and_then(|p| p.version.as_deref()), next.version.as_deref())
        && old != new
    {
        // A downgrade only happens with spec.upgrade.allowDowngrade, after a restore.
        let upgrade = Version::parse(new) > Version::parse(old);
        events.push(Event {
            type_: EventType::Normal,
            reason: if upgrade { "Upgraded" } else { "Downgraded" }.into(),
            note: Some(format!("the first pod on Penpot {new} is Ready (was {old}); the other pods follow")),
            action: "Upgrade".into(),
            secondary: None,
        });
    }
    let old_hash = previous.and_then(|p| p.config_hash.as_deref());
    if let (Some(old), Some(new)) = (old_hash, next.config_hash.as_deref())
        && old != new
    {
        events.push(Event {
            type_: EventType::Normal,
            reason: "RolloutStarted".into(),
            note: Some(format!("configuration changed ({old} -> {new}); rolling the pods")),
            action: "Rollout".into(),
            secondary: None,
        });
    }
    events
}

fn ready_reason_of(status: &PenpotStatus) -> Option<&str> {
    conditions::find(&status.conditions, ConditionType::Ready).map(|c| c.reason.as_str())
}

/// Event notes are limited to 1 kB.
fn truncate(s: &str) -> String {
    if s.len() <= 1000 {
        return s.to_string();
    }
    let mut end = 1000;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn status(phase: Phase, ready_reason: &str, message: &str) -> PenpotStatus {
        PenpotStatus {
            phase: Some(phase),
            message: Some(message.into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: ready_reason.into(),
                message: message.into(),
                observed_generation: None,
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            }],
            ..Default::default()
        }
    }

    fn kinds(events: &[Event]) -> Vec<(String, String)> {
        events.iter().map(|e| (format!("{:?}", e.type_), e.reason.clone())).collect()
    }

    #[test]
    fn a_refused_apply_warns_once_even_when_the_phase_stays() {
        let starting = status(Phase::Waiting, "PodsStarting", "waiting for pods: 0/1 ready");
        let refused =
            status(Phase::Waiting, Reason::ApplyFailed.as_str(), "the API server refused StatefulSet p: ...; retrying");
        assert_eq!(
            kinds(&transitions(Some(&starting), &refused)),
            [("Warning".into(), Reason::ApplyFailed.as_str().into())]
        );
        assert!(transitions(Some(&refused), &refused).is_empty(), "the same refusal again says nothing");
    }

    #[test]
    fn phase_changes_and_new_block_reasons_make_events() {
        let waiting = status(Phase::Waiting, "PodsStarting", "waiting for pods: 0/1 ready");
        let blocked = status(Phase::Blocked, "InvalidRelation", "s3 relation: ... key \"port\" ...");
        assert_eq!(kinds(&transitions(Some(&waiting), &blocked)), [("Warning".into(), "InvalidRelation".into())]);
        let other = status(Phase::Blocked, "InvalidRelation", "redis relation: ...");
        assert_eq!(transitions(Some(&blocked), &other).len(), 1, "a different reason to be blocked");
        assert_eq!(kinds(&transitions(Some(&blocked), &waiting)), [("Normal".into(), "PodsStarting".into())]);
    }
}
