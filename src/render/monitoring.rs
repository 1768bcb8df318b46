//! What Prometheus and Grafana need: a PodMonitor and a PrometheusRule when the Prometheus
//! Operator is installed, and a dashboard ConfigMap for Grafana's sidecar. Metric names follow
//! the Penpot version (2.15.2 renamed `penpot_rpc_command_timing` to `penpot_rpc_main_timing`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use super::labels;
use super::network::Meta;
use super::owned::OwnedKind;
use super::version::Version;

/// The user's `spec.monitoring.labels` on top of the operator's (validation keeps them off
/// `app.kubernetes.io/*`, so they only add, or set `grafana_dashboard`).
pub type ExtraLabels<'a> = &'a BTreeMap<String, String>;

fn metadata(m: &Meta, name: String, extra: ExtraLabels) -> kube::api::ObjectMeta {
    let mut metadata = m.object(name, "monitoring");
    metadata.labels.get_or_insert_with(BTreeMap::new).extend(extra.clone());
    metadata
}

fn dynamic(m: &Meta, resource: &ApiResource, name: String, spec: Value, extra: ExtraLabels) -> DynamicObject {
    let mut obj = DynamicObject::new(&name, resource).data(json!({ "spec": spec }));
    obj.metadata = metadata(m, name, extra);
    obj
}

/// Scrapes the backend's /metrics (port `backend`). Penpot's frontend image has no nginx
/// exporter, so nginx itself is not scraped.
pub fn pod_monitor(m: &Meta, extra: ExtraLabels) -> DynamicObject {
    let spec = json!({
        "selector": { "matchLabels": labels::selector(m.name) },
        "podMetricsEndpoints": [
            { "port": "backend", "path": "/metrics", "interval": "30s" },
        ],
    });
    dynamic(m, &OwnedKind::PodMonitor.api_resource(), m.name.to_string(), spec, extra)
}

fn rpc_metric(version: Version) -> &'static str {
    if version >= Version::new(2, 15, 2) { "penpot_rpc_main_timing_bucket" } else { "penpot_rpc_command_timing_bucket" }
}

pub fn prometheus_rule(m: &Meta, version: Version, extra: ExtraLabels) -> DynamicObject {
    let ns = m.namespace.as_deref().unwrap_or_default();
    let pods = format!(r#"namespace="{ns}",pod=~"{}-[0-9]+""#, m.name);
    let alert = |name: &str, expr: String, duration: &str, severity: &str, summary: String| {
        json!({
            "alert": name,
            "expr": expr,
            "for": duration,
            "labels": { "severity": severity, "penpot_instance": m.name },
            "annotations": { "summary": summary },
        })
    };
    let rules = vec![
        alert(
            "PenpotBackendDown",
            format!(r#"up{{{pods},endpoint="backend"}} == 0"#),
            "5m",
            "critical",
            format!("Penpot {ns}/{} backend {{{{ $labels.pod }}}} is not answering /metrics", m.name),
        ),
        alert(
            "PenpotRpcSlow",
            format!(r#"histogram_quantile(0.99, sum by (le) (rate({}{{{pods}}}[5m]))) > 3000"#, rpc_metric(version)),
            "10m",
            "warning",
            format!("Penpot {ns}/{} answers 1% of RPC calls slower than 3 s", m.name),
        ),
        alert(
            "PenpotTasksSlow",
            format!(
                r#"histogram_quantile(0.99, sum by (le, name) (rate(penpot_tasks_timing_bucket{{{pods}}}[15m]))) > 60000"#
            ),
            "15m",
            "warning",
            format!("Penpot {ns}/{} background task {{{{ $labels.name }}}} takes over a minute", m.name),
        ),
    ];
    let spec = json!({ "groups": [ { "name": format!("penpot-{}", m.name), "rules": rules } ] });
    dynamic(m, &OwnedKind::PrometheusRule.api_resource(), m.name.to_string(), spec, extra)
}

/// A Grafana dashboard in a ConfigMap labelled for the Grafana sidecar (`grafana_dashboard`).
pub fn dashboard(m: &Meta, version: Version, extra: ExtraLabels) -> ConfigMap {
    let ns = m.namespace.as_deref().unwrap_or_default();
    let pods = format!(r#"namespace="{ns}",pod=~"{}-[0-9]+""#, m.name);
    let mut id = 0;
    let mut panel = |title: &str, unit: &str, exprs: Vec<(String, &str)>| {
        id += 1;
        let targets: Vec<Value> = exprs
            .into_iter()
            .enumerate()
            .map(|(i, (expr, legend))| json!({ "refId": char::from(b'A' + i as u8).to_string(), "expr": expr, "legendFormat": legend }))
            .collect();
        json!({
            "id": id, "type": "timeseries", "title": title, "datasource": { "type": "prometheus", "uid": "${datasource}" },
            "gridPos": { "h": 8, "w": 12, "x": ((id - 1) % 2) * 12, "y": ((id - 1) / 2) * 8 },
            "fieldConfig": { "defaults": { "unit": unit }, "overrides": [] },
            "targets": targets,
        })
    };
    let panels = vec![
        panel("Backends up", "none", vec![(format!(r#"up{{{pods},endpoint="backend"}}"#), "{{pod}}")]),
        panel(
            "RPC latency (p50 / p99)",
            "ms",
            vec![
                (
                    format!(r#"histogram_quantile(0.5, sum by (le) (rate({}{{{pods}}}[5m])))"#, rpc_metric(version)),
                    "p50",
                ),
                (
                    format!(r#"histogram_quantile(0.99, sum by (le) (rate({}{{{pods}}}[5m])))"#, rpc_metric(version)),
                    "p99",
                ),
            ],
        ),
        panel(
            "Background tasks (p99 by task)",
            "ms",
            vec![(
                format!(
                    r#"histogram_quantile(0.99, sum by (le, name) (rate(penpot_tasks_timing_bucket{{{pods}}}[15m])))"#
                ),
                "{{name}}",
            )],
        ),
        panel(
            "JVM heap used",
            "bytes",
            vec![(format!(r#"sum by (pod) (jvm_memory_bytes_used{{{pods},area="heap"}})"#), "{{pod}}")],
        ),
        panel(
            "Websocket connections",
            "none",
            vec![(format!(r#"sum by (pod) (penpot_websocket_active_connections{{{pods}}})"#), "{{pod}}")],
        ),
        panel(
            "Database pool",
            "none",
            vec![
                (format!(r#"sum(hikaricp_connections_active{{{pods}}})"#), "active"),
                (format!(r#"sum(hikaricp_connections_pending{{{pods}}})"#), "pending"),
            ],
        ),
    ];
    let dashboard = json!({
        "title": format!("Penpot {ns}/{}", m.name),
        "uid": format!("penpot-{}", &super::hash::config_hash(&[("uid".to_string(), format!("{ns}/{}", m.name))].into())[..12]),
        "tags": ["penpot"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": { "from": "now-6h", "to": "now" },
        "templating": { "list": [ { "name": "datasource", "type": "datasource", "query": "prometheus" } ] },
        "panels": panels,
    });
    let mut extra_labels = BTreeMap::from([("grafana_dashboard".to_string(), "1".to_string())]);
    extra_labels.extend(extra.clone());
    let metadata = metadata(m, format!("{}-dashboard", m.name), &extra_labels);
    ConfigMap {
        metadata,
        data: Some([(format!("penpot-{ns}-{}.json", m.name), dashboard.to_string())].into()),
        ..Default::default()
    }
}
