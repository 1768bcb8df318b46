//! `penpot-operator status NAME`: what a person asks first about an instance. Relation data
//! is parsed to say whether it is usable; values are never printed.

use std::fmt::Write;
use std::process::ExitCode;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::cli::StatusArgs;
use crate::crd::{Penpot, Relation};
use crate::relations::{self, SecretData};
use crate::render::labels;

pub fn main(args: &StatusArgs) -> ExitCode {
    super::one_shot(report(args))
}

async fn report(args: &StatusArgs) -> Result<String, kube::Error> {
    let client = Client::try_default().await?;
    let ns = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let penpot = Api::<Penpot>::namespaced(client.clone(), &ns).get(&args.name).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut relation_lines = Vec::new();
    for relation in Relation::ALL {
        let line = match penpot.spec.secret_name(relation) {
            None if penpot.spec.needs(relation) => "missing (spec does not reference a Secret)".to_string(),
            None if relation == Relation::S3 && penpot.spec.filesystem_storage().is_some() => {
                "not configured (assets on a volume: storage.filesystem)".to_string()
            }
            None => "not configured".to_string(),
            Some(name) => match secrets.get_opt(name).await? {
                None => format!("Secret {name}: missing"),
                Some(secret) => {
                    let data = relations::secret_data(&secret);
                    match relations::check(&penpot.spec, &SecretData::new(relation, name, &data)) {
                        Ok(()) => format!("Secret {name}: present"),
                        Err(e) => format!("Secret {name}: invalid: key {:?} {}", e.key, e.problem),
                    }
                }
            },
        };
        relation_lines.push((relation.name(), line));
    }
    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels(&format!("{}={}", labels::INSTANCE_LABEL, args.name)))
        .await?;
    let events = Api::<Event>::namespaced(client, &ns)
        .list(&ListParams::default().fields(&format!("regarding.kind=Penpot,regarding.name={}", args.name)))
        .await?;
    Ok(format(&penpot, &relation_lines, &pods.items, events.items))
}

/// Pure formatting, so the layout is testable without a cluster.
pub fn format(penpot: &Penpot, relations: &[(&str, String)], pods: &[Pod], mut events: Vec<Event>) -> String {
    let mut out = String::new();
    let status = penpot.status.clone().unwrap_or_default();
    let ns = penpot.metadata.namespace.clone().unwrap_or_default();
    let name = penpot.metadata.name.clone().unwrap_or_default();
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str()).unwrap_or("Unknown");
    let phase = status.phase.map(|p| format!("{p:?}")).unwrap_or_else(|| "(no status yet)".into());
    let _ = writeln!(out, "Penpot {ns}/{name}: {phase} (Ready={ready})");
    if let Some(message) = &status.message {
        let _ = writeln!(out, "  Message:     {message}");
    }
    let _ = writeln!(out, "  Public URI:  {}", status.public_uri.as_deref().unwrap_or("-"));
    let _ = writeln!(out, "  Version:     {}", status.version.as_deref().unwrap_or("-"));
    let _ = writeln!(out, "  Replicas:    {}/{} ready", status.ready_replicas.unwrap_or(0), penpot.spec.replicas);
    if status.observed_generation != penpot.metadata.generation {
        let _ = writeln!(out, "  Note:        the operator has not seen the latest spec yet");
    }
    let _ = writeln!(out, "Relations:");
    for (relation, line) in relations {
        let _ = writeln!(out, "  {relation:<11} {line}");
        // The operator's pre-flight check of the relation's server, when it made one.
        if let Some(check) = status.checks.iter().find(|c| c.relation == *relation) {
            let _ = writeln!(out, "  {:<11} check {:?}: {}", "", check.result, check.message);
        }
    }
    let _ = writeln!(out, "Pods:");
    if pods.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for pod in pods {
        let pod_ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status == "True")
            .unwrap_or(false);
        let hash = pod.metadata.annotations.as_ref().and_then(|a| a.get(labels::CONFIG_HASH_ANNOTATION)).cloned();
        let current = match (&hash, &status.config_hash) {
            (Some(h), Some(c)) if h == c => "current config",
            (Some(_), Some(_)) => "old config",
            _ => "config unknown",
        };
        let _ = writeln!(
            out,
            "  {:<24} {:<9} {:<9} {current}",
            pod.metadata.name.as_deref().unwrap_or("?"),
            pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("?"),
            if pod_ready { "Ready" } else { "NotReady" },
        );
    }
    let _ = writeln!(out, "Recent events:");
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0).or(e.metadata.creation_timestamp.as_ref().map(|t| t.0)));
    if events.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for e in events.iter().rev().take(10).rev() {
        let _ = writeln!(
            out,
            "  {:<8} {:<22} {}",
            e.type_.as_deref().unwrap_or(""),
            e.reason.as_deref().unwrap_or(""),
            e.note.as_deref().unwrap_or("")
        );
    }
    out
}
