//! Writes the status (only when it changed) and an Event on every phase change and rollout.
//! Status messages and events are built from relation errors that never carry values.

use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource};
use serde_json::json;

use crate::crd::{Penpot, PenpotStatus, Phase};
use crate::render::labels;

use super::{Context, Error};

pub async fn report(penpot: &Penpot, ns: &str, status: PenpotStatus, ctx: &Context) -> Result<(), Error> {
    let previous = penpot.status.as_ref();
    if previous == Some(&status) {
        return Ok(());
    }
    ctx.ensure_leader()?;
    let api: Api<Penpot> = Api::namespaced(ctx.client.clone(), ns);
    let name = penpot.meta().name.clone().unwrap_or_default();
    let patch = json!({
        "apiVersion": Penpot::api_version(&()),
        "kind": Penpot::kind(&()),
        "status": status,
    });
    api.patch_status(&name, &PatchParams::apply(labels::MANAGER).force(), &Patch::Apply(&patch)).await?;

    for event in transitions(previous, &status) {
        // Events are best effort: a full event store must not fail the reconcile.
        if let Err(e) = ctx.recorder.publish(&event, &penpot.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
    Ok(())
}

/// The events a status change deserves: phase changes and new rollouts.
pub fn transitions(previous: Option<&PenpotStatus>, next: &PenpotStatus) -> Vec<Event> {
    let mut events = Vec::new();
    let ready_reason = next
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
        .unwrap_or_else(|| "Reconciled".into());
    let blocked_again = previous.is_some_and(|p| p.phase == Some(Phase::Blocked) && p.message != next.message)
        && next.phase == Some(Phase::Blocked);
    if previous.and_then(|p| p.phase) != next.phase || blocked_again {
        let phase = next.phase.map(|p| format!("{p:?}")).unwrap_or_default();
        events.push(Event {
            type_: if next.phase == Some(Phase::Blocked) || ready_reason == crate::status::reason::APPLY_FAILED {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: ready_reason,
            note: Some(match &next.message {
                Some(m) => truncate(&format!("{phase}: {m}")),
                None => phase,
            }),
            action: "Reconcile".into(),
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
