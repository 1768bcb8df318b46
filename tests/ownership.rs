//! e2e on the real control plane: apply converges to exactly the render (a removed field
//! leaves the cluster), prune removes what the render no longer makes, and objects the Penpot
//! does not control are never modified, adopted or deleted.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const LONG: Duration = Duration::from_secs(120);

/// `penpot_yaml` plus `extra` spec lines (indented two spaces).
fn penpot_with(name: &str, extra: &str) -> String {
    format!("{}{extra}", penpot_yaml(name, 1))
}

/// (verb, resource, name, subresource) of each write `user` made after the first `skip`.
fn writes_since(c: &Cluster, user: &str, skip: usize) -> Vec<(String, String, String, String)> {
    c.writes_by(user)[skip..]
        .iter()
        .map(|e| {
            let r = &e["objectRef"];
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&e["verb"]), s(&r["resource"]), s(&r["name"]), s(&r["subresource"]))
        })
        .collect()
}

const FULL: &str = r#"  nodeSelector: {kubernetes.io/os: linux}
  tolerations: [{key: dedicated, operator: Equal, value: penpot, effect: NoSchedule}]
  affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, podAffinityTerm: {topologyKey: kubernetes.io/hostname}}]}}
  podAnnotations: {team: design}
  resources: {penpot: {limits: {memory: 3Gi}}}
  ingress: {host: p.example.com, tlsSecretName: p-tls, annotations: {example.com/owner: design}}
"#;

const BARE: &str = "  ingress: {host: p.example.com}\n";

/// Every removable field is set, seen in the cluster, removed from the Penpot, and gone
/// within one reconcile; the only writes are to the objects that changed. Then the Ingress
/// and the monitoring objects go when the render stops producing them.
#[test]
fn removed_fields_and_objects_leave_the_cluster() {
    let Some(c) = cluster() else { return };
    // PodMonitor and PrometheusRule exist (stub CRDs): monitoring is rendered.
    install_prometheus_operator_crds(c);
    let ns = Namespace::new(c, "prune");
    let n = ns.name.as_str();
    let (kubeconfig, user) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    relation_secrets(c, n, "p");
    c.apply_ok(n, &penpot_with("p", FULL));
    wait_ready(c, n, "p");
    let pod_spec = |sts: &Value| sts["spec"]["template"]["spec"].clone();
    let sts = c.get(n, "statefulset/p").unwrap();
    let spec = pod_spec(&sts);
    assert_eq!(spec["nodeSelector"]["kubernetes.io/os"], "linux");
    assert!(spec["tolerations"].as_array().is_some_and(|t| !t.is_empty()));
    assert!(spec["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(sts["spec"]["template"]["metadata"]["annotations"]["team"], "design");
    let penpot_container =
        |spec: &Value| spec["containers"].as_array().unwrap().iter().find(|c| c["name"] == "penpot").cloned().unwrap();
    assert_eq!(penpot_container(&spec)["resources"]["limits"]["memory"], "3Gi");
    let ingress = c.get(n, "ingress/p").unwrap();
    assert_eq!(ingress["metadata"]["annotations"]["example.com/owner"], "design");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "p-tls");
    assert!(c.get(n, "podmonitor/p").is_some() && c.get(n, "prometheusrule/p").is_some());

    // Remove them all at once.
    let before = c.writes_by(&user).len();
    c.apply_ok(n, &penpot_with("p", BARE));
    let sts = wait_until(LONG, "the removed fields to leave the StatefulSet", || {
        let sts = c.get(n, "statefulset/p")?;
        let spec = pod_spec(&sts);
        let gone = spec["nodeSelector"].is_null()
            && spec["tolerations"].is_null()
            && spec["affinity"].is_null()
            && sts["spec"]["template"]["metadata"]["annotations"]["team"].is_null()
            && penpot_container(&spec)["resources"]["limits"]["memory"].is_null();
        gone.then_some(sts)
    });
    let ingress = wait_until(LONG, "the removed Ingress fields to go", || {
        let ingress = c.get(n, "ingress/p")?;
        (ingress["metadata"]["annotations"]["example.com/owner"].is_null() && ingress["spec"]["tls"].is_null())
            .then_some(ingress)
    });
    assert_eq!(ingress["spec"]["rules"][0]["host"], "p.example.com", "the rest of the Ingress stays");
    assert!(pod_spec(&sts)["containers"].as_array().is_some_and(|c| !c.is_empty()));
    wait_ready(c, n, "p");
    let writes = writes_since(c, &user, before);
    let objects: Vec<_> = writes
        .iter()
        .filter(|(_, resource, _, sub)| resource != "events" && sub != "status")
        .map(|(verb, resource, name, _)| format!("{verb} {resource}/{name}"))
        .collect();
    let mut unique = objects.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique, ["patch ingresses/p", "patch statefulsets/p"], "other objects were written: {writes:?}");
    assert_eq!(objects.len(), 2, "each changed object is written once: {objects:?}");

    // The Ingress and the monitoring objects are pruned when the render stops making them.
    let before = c.writes_by(&user).len();
    c.apply_ok(n, &penpot_with("p", "  monitoring: {enabled: false}\n"));
    wait_until(LONG, "the Ingress, PodMonitor and PrometheusRule to be deleted", || {
        (c.get(n, "ingress/p").is_none()
            && c.get(n, "podmonitor/p").is_none()
            && c.get(n, "prometheusrule/p").is_none())
        .then_some(())
    });
    let deletes: Vec<_> = writes_since(c, &user, before).into_iter().filter(|w| w.0 == "delete").collect();
    assert_eq!(deletes.len(), 3, "{deletes:?}");
    // Everything else the Penpot owns is still there, the key included.
    for what in ["secret/p-config", "secret/p-secret-key", "service/p", "service/p-endpoints", "networkpolicy/p"] {
        assert!(c.get(n, what).is_some(), "{what} was pruned");
    }
    wait_ready(c, n, "p");
}

/// The object a Penpot would write, made beforehand by someone else.
fn foreign(kind: &str, name: &str) -> String {
    let meta = format!("metadata: {{name: {name}, labels: {{made-by: hand}}}}");
    match kind {
        "Service" => {
            format!("apiVersion: v1\nkind: Service\n{meta}\nspec: {{ports: [{{port: 80}}], selector: {{app: mine}}}}\n")
        }
        "NetworkPolicy" => format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n{meta}\nspec: {{podSelector: {{matchLabels: {{app: mine}}}}}}\n"
        ),
        "Ingress" => format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\n{meta}\nspec: {{rules: [{{host: mine.example.com}}]}}\n"
        ),
        "Secret" => format!("apiVersion: v1\nkind: Secret\n{meta}\nstringData: {{mine: 'yes'}}\n"),
        other => panic!("no foreign {other}"),
    }
}

/// A Service, NetworkPolicy, Ingress and `<name>-config` Secret that already exist, each in
/// the way of its own Penpot: untouched, the Penpot Blocked naming it with a single Warning,
/// nothing of the render written, and the object still there after the Penpot is deleted.
#[test]
fn objects_the_penpot_does_not_control_are_left_alone() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "theirs");
    let n = ns.name.as_str();
    let (kubeconfig, user) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    let cases = [
        ("w1", "Service", "w1"),
        ("w2", "NetworkPolicy", "w2"),
        ("w3", "Ingress", "w3"),
        ("w4", "Secret", "w4-config"),
    ];
    let mut versions = Vec::new();
    for (penpot, kind, object) in cases {
        c.apply_ok(n, &foreign(kind, object));
        let live = c.get(n, &format!("{kind}/{object}")).unwrap();
        versions.push(live["metadata"]["resourceVersion"].as_str().unwrap().to_string());
        relation_secrets(c, n, penpot);
        c.apply_ok(n, &penpot_with(penpot, &format!("  ingress: {{host: {penpot}.example.com}}\n")));
    }
    for (penpot, kind, object) in cases {
        let p = wait_until(LONG, &format!("penpot/{penpot} to be Blocked by {kind} {object}"), || {
            let p = c.get(n, &format!("penpot/{penpot}"))?;
            (condition(&p, "Ready")?["reason"] == "ObjectInTheWay").then_some(p)
        });
        let message = status_message(&p);
        assert_eq!(p["status"]["phase"], "Blocked");
        assert!(message.starts_with(&format!("{kind} {object} already exists and it has no controller")), "{message}");
        assert!(message.contains("penpot-operator.dev/adopt"), "the way out is not named: {message}");
        assert_eq!(condition(&p, "Stalled").unwrap()["status"], "True");
    }
    // Give the operator time to retry (every 20 s is the plan; a hot loop would show here).
    std::thread::sleep(Duration::from_secs(3));
    for ((penpot, kind, object), rv) in cases.iter().zip(&versions) {
        let live = c.get(n, &format!("{kind}/{object}")).unwrap();
        assert_eq!(live["metadata"]["resourceVersion"].as_str(), Some(rv.as_str()), "{kind} {object} was modified");
        assert!(live["metadata"]["ownerReferences"].is_null(), "{kind} {object} was adopted");
        assert!(c.get(n, &format!("statefulset/{penpot}")).is_none(), "{penpot}: the render was applied in part");
    }
    let written: Vec<_> = writes_since(c, &user, 0)
        .into_iter()
        .filter(|(_, resource, _, sub)| resource != "events" && sub != "status")
        .filter(|(verb, resource, name, _)| {
            !(verb == "create" && resource == "secrets" && name.ends_with("-secret-key"))
        })
        .collect();
    assert!(written.is_empty(), "the operator wrote more than its secret keys: {written:?}");
    let events = c.kubectl_ok(&["-n", n, "get", "events", "--field-selector", "reason=ObjectInTheWay", "-o", "json"]);
    let events: Value = serde_json::from_str(&events).unwrap();
    let items = events["items"].as_array().cloned().unwrap_or_default();
    for (penpot, _, _) in cases {
        let warnings = items.iter().filter(|e| e["involvedObject"]["name"] == penpot && e["type"] == "Warning").count();
        assert_eq!(warnings, 1, "penpot/{penpot}: one Warning event, not {warnings}: {events}");
    }

    for (penpot, _, _) in cases {
        c.kubectl_ok(&["-n", n, "delete", "penpot", penpot, "--wait=true"]);
    }
    // The garbage collector removes what the Penpots owned (their keys) and nothing else.
    wait_until(LONG, "the secret keys to be collected", || {
        cases.iter().all(|(p, _, _)| c.get(n, &format!("secret/{p}-secret-key")).is_none()).then_some(())
    });
    for ((_, kind, object), rv) in cases.iter().zip(&versions) {
        let live = c.get(n, &format!("{kind}/{object}")).unwrap_or_else(|| panic!("{kind} {object} was deleted"));
        assert_eq!(live["metadata"]["resourceVersion"].as_str(), Some(rv.as_str()));
    }
}

/// Moving from the Helm chart: its Ingress is named like the release, `penpot`. The Penpot
/// `penpot` is Blocked by it until an admin hands it over with the adopt annotation; then the
/// Penpot controls it (and deleting the Penpot deletes it).
#[test]
fn the_helm_charts_ingress_is_handed_over_by_annotation() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "helm");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    c.apply_ok(
        n,
        r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: penpot
  labels: {app.kubernetes.io/managed-by: Helm, app.kubernetes.io/instance: penpot}
  annotations: {meta.helm.sh/release-name: penpot, meta.helm.sh/release-namespace: design}
spec:
  rules:
  - host: old.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: penpot-frontend, port: {number: 8080}}}}
"#,
    );
    relation_secrets(c, n, "penpot");
    c.apply_ok(n, &penpot_with("penpot", "  ingress: {host: design.example.com}\n"));
    let p = wait_until(LONG, "the Penpot to be Blocked by Helm's Ingress", || {
        let p = c.get(n, "penpot/penpot")?;
        (condition(&p, "Ready")?["reason"] == "ObjectInTheWay").then_some(p)
    });
    assert!(status_message(&p).starts_with("Ingress penpot already exists and it is managed by Helm"), "{p}");
    assert_eq!(c.get(n, "ingress/penpot").unwrap()["spec"]["rules"][0]["host"], "old.example.com");

    c.kubectl_ok(&["-n", n, "annotate", "ingress", "penpot", "penpot-operator.dev/adopt=penpot"]);
    wait_ready(c, n, "penpot");
    let uid = c.get(n, "penpot/penpot").unwrap()["metadata"]["uid"].clone();
    let ingress = c.get(n, "ingress/penpot").unwrap();
    assert_eq!(ingress["spec"]["rules"][0]["host"], "design.example.com");
    assert_eq!(ingress["spec"]["rules"].as_array().map(Vec::len), Some(1), "{ingress}");
    let owners = ingress["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
    assert!(owners.iter().any(|o| o["uid"] == uid && o["controller"] == true), "not adopted: {owners:?}");

    c.kubectl_ok(&["-n", n, "delete", "penpot", "penpot", "--wait=true"]);
    wait_until(LONG, "the adopted Ingress to be collected with its Penpot", || {
        c.get(n, "ingress/penpot").is_none().then_some(())
    });
}

/// Objects of every watched kind that the Penpot controls and that carry the operator's
/// managed-by label, but that the render does not make (left by an earlier render under
/// another name) are deleted: the cluster holds exactly the render. Objects with no such owner
/// stay.
#[test]
fn controlled_objects_the_render_does_not_make_are_pruned_whatever_their_kind() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "prune-all");
    let n = ns.name.as_str();
    let (kubeconfig, user) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    ready_penpot(c, n, "p", 1);
    let uid = c.get(n, "penpot/p").unwrap()["metadata"]["uid"].as_str().unwrap().to_string();
    let owner = format!(
        "ownerReferences: [{{apiVersion: penpot-operator.dev/v1alpha1, kind: Penpot, name: p, uid: {uid}, controller: true}}]"
    );
    let meta = |name: &str| {
        format!(
            "metadata: {{name: {name}, labels: {{app.kubernetes.io/managed-by: penpot-operator, app.kubernetes.io/instance: p}}, {owner}}}"
        )
    };
    let stale = [
        ("secret/p-stale", format!("apiVersion: v1\nkind: Secret\n{}\nstringData: {{a: b}}\n", meta("p-stale"))),
        ("configmap/p-stale", format!("apiVersion: v1\nkind: ConfigMap\n{}\ndata: {{a: b}}\n", meta("p-stale"))),
        (
            "service/p-stale",
            format!(
                "apiVersion: v1\nkind: Service\n{}\nspec: {{ports: [{{port: 80}}], selector: {{app: x}}}}\n",
                meta("p-stale")
            ),
        ),
        (
            "networkpolicy/p-stale",
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n{}\nspec: {{podSelector: {{matchLabels: {{app: x}}}}}}\n",
                meta("p-stale")
            ),
        ),
        (
            "poddisruptionbudget/p-stale",
            format!(
                "apiVersion: policy/v1\nkind: PodDisruptionBudget\n{}\nspec: {{maxUnavailable: 1, selector: {{matchLabels: {{app: x}}}}}}\n",
                meta("p-stale")
            ),
        ),
        ("serviceaccount/p-stale", format!("apiVersion: v1\nkind: ServiceAccount\n{}\n", meta("p-stale"))),
        (
            "statefulset/p-stale",
            format!(
                "apiVersion: apps/v1\nkind: StatefulSet\n{}\nspec: {{replicas: 0, serviceName: p-stale, selector: {{matchLabels: {{app: x}}}}, template: {{metadata: {{labels: {{app: x}}}}, spec: {{containers: [{{name: x, image: x}}]}}}}}}\n",
                meta("p-stale")
            ),
        ),
    ];
    for (_, yaml) in &stale {
        c.apply_ok(n, yaml);
    }
    c.apply_ok(
        n,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p-mine, labels: {app.kubernetes.io/managed-by: penpot-operator}}\ndata: {a: b}\n",
    );
    // A change of the Penpot reconciles; the watches saw the stale objects arrive anyway.
    c.kubectl_ok(&["-n", n, "annotate", "penpot/p", "touched=1"]);
    wait_until(LONG, "every stale object pruned", || {
        stale.iter().all(|(what, _)| c.get(n, what).is_none()).then_some(())
    });
    assert!(c.get(n, "configmap/p-mine").is_some(), "an object the Penpot does not control was deleted");
    let deletes: Vec<String> = c
        .writes_by(&user)
        .iter()
        .filter(|e| e["verb"] == "delete")
        .map(|e| e["objectRef"]["resource"].to_string())
        .collect();
    for resource in [
        "secrets",
        "configmaps",
        "services",
        "networkpolicies",
        "statefulsets",
        "poddisruptionbudgets",
        "serviceaccounts",
    ] {
        assert!(deletes.iter().any(|d| d.contains(resource)), "no delete of {resource} by the operator: {deletes:?}");
    }
    wait_ready(c, n, "p");
}
