//! A stored Penpot this operator cannot parse: written under a CRD from another operator
//! version, say, or by a client that bypassed validation. It is reported on its own status
//! (Blocked, Stalled, the field and what is wrong with it) and nothing it owns is touched;
//! every other Penpot goes on as before.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ApiResource, DynamicObject};
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::{Api, Resource};

use crate::conditions::Reason;
use crate::crd::{Penpot, PenpotStatus};
use crate::status::{self, Observation};

use super::{Context, Error, Stored, report, resolve};
use crate::error::{AtStep, Step};

pub async fn report(stored: &Stored, invalid: &InvalidObject, ns: &str, ctx: &Context) -> Result<Action, Error> {
    let name = invalid.metadata.name.clone().unwrap_or_default();
    // The watch keeps only the error text; read the object again to say which field it is.
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ApiResource::erase::<Penpot>(&()));
    let Some(raw) = api.get_opt(&name).await.at(Step::Resolve)? else { return Ok(Action::await_change()) };
    let value = serde_json::to_value(&raw)?;
    // Fixed since the watch saw it: the fix's own event reconciles it.
    let Some(problem) = describe(&value) else { return Ok(Action::await_change()) };
    let message =
        format!("this operator cannot read the Penpot: {problem}; was it written for another version of the CRD?");
    tracing::warn!(%message, "unreadable Penpot");
    // The status may still parse on its own; it keeps timestamps and skips unchanged writes.
    let previous: Option<PenpotStatus> = value.get("status").and_then(|s| serde_json::from_value(s.clone()).ok());
    let workload = resolve::workload(ns, &name, ctx).await?;
    let status_ctx = status::Context {
        generation: raw.metadata.generation,
        previous: previous.as_ref(),
        now: Time(k8s_openapi::jiff::Timestamp::now()),
        public_uri: None,
        secret_key_created: None,
        redirect_uris: None,
        checks: Vec::new(),
    };
    let obs = Observation::Blocked { reason: Reason::UnreadableSpec, message, workload };
    report::write(&stored.object_ref(&()), ns, previous.as_ref(), status::compute(&status_ctx, &obs), ctx).await?;
    // Only an edit can fix it, and an edit is a watch event.
    Ok(Action::await_change())
}

/// Where in the object deserialising fails, and why: `spec.imagePullPolicy: unknown variant`.
/// The error quotes the offending value, so it is cut short: status must stay small.
pub fn describe(value: &serde_json::Value) -> Option<String> {
    const MAX: usize = 256;
    let e = serde_path_to_error::deserialize::<_, Penpot>(value).err()?;
    let mut text = format!("{}: {}", e.path(), e.inner());
    if text.len() > MAX {
        let end = (0..=MAX).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.truncate(end);
        text.push_str("...");
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::describe;
    use serde_json::json;

    #[test]
    fn names_the_field_that_does_not_parse() {
        let penpot = |pull: serde_json::Value| {
            json!({
                "apiVersion": "penpot-operator.dev/v1alpha1", "kind": "Penpot",
                "metadata": {"name": "p", "namespace": "ns"},
                "spec": {"publicUri": "https://p.example.com", "imagePullPolicy": pull},
            })
        };
        assert_eq!(describe(&penpot(json!("IfNotPresent"))), None);
        let message = describe(&penpot(json!("Sometimes"))).unwrap_or_default();
        assert!(message.starts_with("spec.imagePullPolicy: unknown variant `Sometimes`"), "{message}");
        let message = describe(&penpot(json!(7))).unwrap_or_default();
        assert!(message.starts_with("spec.imagePullPolicy: invalid type: integer `7`"), "{message}");
        let message = describe(&penpot(json!("é".repeat(100_000)))).unwrap_or_default();
        assert!(message.len() <= 259 && message.ends_with("..."), "{} bytes", message.len());
    }
}
