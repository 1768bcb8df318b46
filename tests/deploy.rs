//! The ways users install the operator: the Helm chart, the kustomize base, the GitOps
//! examples and the rocks. Checks that need the control plane (helm, kubectl dry-runs,
//! a real install) skip without it, like the e2e suite.

#[path = "e2e/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/penpot-operator")
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).unwrap().into_iter().filter(|d| !d.is_null()).collect()
}

/// Helm with private cache/config dirs, so runs never depend on a home directory.
fn helm(args: &[&str]) -> support::Output {
    let tmp = std::env::temp_dir().join("penpot-e2e-helm");
    let out = Command::new("helm")
        .args(args)
        .env("HELM_CACHE_HOME", tmp.join("cache"))
        .env("HELM_CONFIG_HOME", tmp.join("config"))
        .env("HELM_DATA_HOME", tmp.join("data"))
        .output()
        .expect("helm is on PATH (tests/harness env)");
    support::Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn chart_crd_is_the_generated_crd() {
    assert_eq!(
        read("deploy/helm/penpot-operator/crds/penpot.yaml"),
        read("crds/penpot.yaml"),
        "the chart's CRD drifted: cp crds/penpot.yaml deploy/helm/penpot-operator/crds/"
    );
    assert_eq!(read("deploy/manifests/crd.yaml"), read("crds/penpot.yaml"), "run tests/harness/gen-manifests.sh");
}

#[test]
fn the_operator_rock_carries_the_operator_and_pebble() {
    use penpot_operator::render::paths;
    let op: Value = serde_saphyr::from_str(&read("rock/penpot-operator/rockcraft.yaml")).unwrap();
    assert_eq!(op["base"], "bare", "no shell in the operator image: prepare-pod copies Pebble");
    assert!(op["parts"]["operator"]["override-build"].as_str().unwrap().contains(paths::OPERATOR_BINARY));
    // Rockcraft puts a static Pebble at /usr/bin/pebble in every rock; prepare-pod copies it.
    assert_eq!(paths::OPERATOR_PEBBLE, "/usr/bin/pebble");
    assert!(
        read("deploy/helm/penpot-operator/templates/deployment.yaml").contains("command: [/usr/bin/penpot-operator]")
    );
    assert!(!repo().join("rock/penpot").exists(), "the workload rock cannot build Penpot 2.17");
    let version = op["version"].as_str().unwrap();
    assert!(
        penpot_operator::render::statefulset::DEFAULT_INIT_IMAGE.ends_with(&format!(":{version}")),
        "the default init image tag and the operator rock version differ"
    );
}

/// Turns JSON into a Lua table constructor.
fn lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!("{{{}}}", a.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            format!("{{{}}}", o.iter().map(|(k, v)| format!("[{k:?}] = {}", lua(v))).collect::<Vec<_>>().join(", "))
        }
    }
}

fn argo_health(obj: &Value) -> (String, String) {
    let script = repo().join("deploy/examples/argocd/health.lua");
    let program = format!(
        "obj = {}\nlocal r = assert(loadfile({:?}))()\nio.write(r.status, '\\n', r.message or '')",
        lua(obj),
        script.to_str().unwrap()
    );
    let out = Command::new("lua5.4").args(["-e", &program]).output().expect("lua5.4 is installed (.ci/run)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap();
    (status.to_string(), message.to_string())
}

#[test]
fn argocd_health_check_reads_the_conditions() {
    let cm: Value = serde_saphyr::from_str(&read("deploy/examples/argocd/health-check.yaml")).unwrap();
    let embedded = cm["data"]["resource.customizations.health.penpot-operator.dev_Penpot"].as_str().unwrap();
    assert_eq!(embedded, read("deploy/examples/argocd/health.lua"), "health-check.yaml and health.lua differ");
    if Command::new("lua5.4").arg("-v").output().is_err() {
        assert!(std::env::var("PENPOT_E2E_REQUIRED").as_deref() != Ok("1"), "lua5.4 is missing");
        return;
    }
    let cond = |t: &str, s: &str| serde_json::json!({"type": t, "status": s, "message": format!("{t} is {s}")});
    let penpot = |generation: i64, conditions: Vec<Value>| serde_json::json!({"metadata": {"generation": 2}, "status": {"observedGeneration": generation, "conditions": conditions}});
    assert_eq!(argo_health(&serde_json::json!({"metadata": {}})).0, "Progressing");
    assert_eq!(argo_health(&penpot(2, vec![cond("Ready", "True"), cond("Stalled", "False")])).0, "Healthy");
    assert_eq!(
        argo_health(&penpot(2, vec![cond("Ready", "False"), cond("Stalled", "True")])),
        ("Degraded".into(), "Stalled is True".into())
    );
    assert_eq!(
        argo_health(&penpot(1, vec![cond("Ready", "True")])).0,
        "Progressing",
        "an old generation is not Healthy"
    );
    assert_eq!(argo_health(&penpot(2, vec![cond("Ready", "False")])), ("Progressing".into(), "Ready is False".into()));
}

#[test]
fn helm_lint_is_clean_and_the_schema_rejects_wrong_types() {
    let Some(_) = cluster() else { return };
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let out = helm(&["lint", "--strict", chart]);
    assert!(out.ok, "helm lint: {}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("[WARNING]") && !out.stdout.contains("[ERROR]"), "{}", out.stdout);
    for (set, path) in [("replicaCount=many", "/replicaCount"), ("logFormat=xml", "/logFormat"), ("typo=1", "typo")] {
        let out = helm(&["lint", chart, "--set", set]);
        assert!(!out.ok, "values {set} accepted");
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(text.contains(path), "the schema error for {set} does not name {path}: {text}");
    }
}

#[test]
fn rendered_chart_variants_and_manifests_are_accepted_by_the_api_server() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "chart");
    let n = ns.name.as_str();
    // The ServiceMonitor variant needs its CRD; a minimal one stands in for the Prometheus Operator's.
    c.kubectl_in(&["apply", "-f", "-"], Some(&stub_crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors")));
    wait_established(c, "servicemonitors.monitoring.coreos.com");
    let variants: &[&[&str]] = &[
        &[],
        &["--set", &format!("watchNamespace={n}")],
        &["--set", "replicaCount=3"],
        &["--set", "metrics.serviceMonitor.enabled=true,leaderElection.enabled=true,serviceAccount.name=custom"],
        &["--set", "profiles.enabled=false"],
    ];
    let mut chart_rules = Vec::new();
    let mut lease_rules = Vec::new();
    let chart = chart();
    for extra in variants {
        let mut args = vec!["template", "t", chart.to_str().unwrap(), "--namespace", n];
        args.extend_from_slice(extra);
        let out = helm(&args);
        assert!(out.ok, "helm template {extra:?}: {}", out.stderr);
        let dry = c.kubectl_in(&["apply", "--dry-run=server", "-n", n, "-f", "-"], Some(&out.stdout));
        assert!(dry.ok, "the API server refused the chart rendered with {extra:?}: {}", dry.stderr);
        let no_profiles = extra.iter().any(|e| e.contains("profiles.enabled=false"));
        for doc in yaml_docs(&out.stdout) {
            let leader_role = doc["metadata"]["name"].as_str().is_some_and(|n| n.ends_with("leader-election"));
            if doc["kind"] == "Role" && leader_role {
                lease_rules.push(doc["rules"].clone());
            } else if doc["kind"] == "ClusterRole" || doc["kind"] == "Role" {
                chart_rules.push((no_profiles, doc["rules"].clone()));
            }
            if doc["kind"] == "Deployment" {
                let args = doc["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
                let leader =
                    extra.iter().any(|e| e.contains("replicaCount=3") || e.contains("leaderElection.enabled=true"));
                assert_eq!(args.contains("--leader-elect"), leader, "leader election flag for {extra:?}: {args}");
                assert_eq!(doc["spec"]["strategy"]["type"], if leader { "RollingUpdate" } else { "Recreate" });
                assert_eq!(args.contains("--profiles=false"), no_profiles, "{extra:?}: {args}");
            }
        }
    }
    // One set of rules everywhere: the chart's equal deploy/rbac's; without profiles, minus
    // the PenpotProfile, pods and pods/portforward rules. Leases only in the leader-election Role.
    let reference: Value = serde_saphyr::from_str(&read("deploy/rbac/clusterrole.yaml")).unwrap();
    let reference = reference["rules"].as_array().unwrap();
    assert!(reference.iter().all(|r| r["resources"][0] != "leases"), "no cluster-wide Lease rights");
    let profile_rule = |r: &&Value| {
        r["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str().unwrap().starts_with("penpotprofiles") || x.as_str().unwrap().starts_with("pods"))
    };
    let without_profiles: Vec<Value> = reference.iter().filter(|r| !profile_rule(r)).cloned().collect();
    for (no_profiles, rules) in &chart_rules {
        let expected = if *no_profiles { &without_profiles } else { reference };
        assert_eq!(rules.as_array().unwrap(), expected, "chart RBAC differs from deploy/rbac/clusterrole.yaml");
    }
    let leader: Vec<Value> =
        yaml_docs(&read("deploy/rbac/leader-election.yaml")).into_iter().filter(|d| d["kind"] == "Role").collect();
    assert!(!lease_rules.is_empty());
    for rules in &lease_rules {
        assert_eq!(rules, &leader[0]["rules"], "the chart's Lease rights differ from deploy/rbac/leader-election.yaml");
    }

    // The kustomize base is the chart's default rendering and the API server takes it.
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new(repo().join("tests/harness/gen-manifests.sh")).arg(tmp.path()).status().unwrap();
    assert!(status.success());
    for f in ["penpot-operator.yaml", "kustomization.yaml", "namespace.yaml"] {
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(f)).unwrap(),
            read(format!("deploy/manifests/{f}")),
            "deploy/manifests/{f} is stale: run tests/harness/gen-manifests.sh"
        );
    }
    // A server-side dry run needs the namespace to exist; --force-conflicts because the
    // e2e suite already applied the same ClusterRole from deploy/rbac.
    let _ = c.kubectl(&["create", "namespace", "penpot-operator"]);
    let dry = c.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-k",
        repo().join("deploy/manifests").to_str().unwrap(),
    ]);
    assert!(dry.ok, "kubectl apply -k deploy/manifests: {}", dry.stderr);
}

#[test]
fn gitops_examples_are_accepted_by_the_api_server() {
    let Some(c) = cluster() else { return };
    // Argo CD and Flux are not installed here: minimal CRDs stand in, so this checks that
    // every example is well-formed YAML with the right kinds, names and namespaces.
    for (group, kind, plural) in [
        ("argoproj.io", "Application", "applications"),
        ("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories"),
        ("helm.toolkit.fluxcd.io", "HelmRelease", "helmreleases"),
        ("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations"),
    ] {
        c.kubectl_in(&["apply", "-f", "-"], Some(&stub_crd(group, kind, plural)));
        wait_established(c, &format!("{plural}.{group}"));
    }
    for ns in ["argocd", "flux-system"] {
        let _ = c.kubectl(&["create", "namespace", ns]);
    }
    for dir in ["deploy/examples/argocd", "deploy/examples/flux"] {
        let out = c.kubectl(&["apply", "--dry-run=server", "-f", repo().join(dir).to_str().unwrap()]);
        assert!(out.ok, "{dir}: {}", out.stderr);
        assert!(out.stdout.contains("(server dry run)"), "{}", out.stdout);
    }
    // The Flux Kustomization and the Argo CD Application point at paths that exist.
    let flux: Value = serde_saphyr::from_str(&read("deploy/examples/flux/kustomization.yaml")).unwrap();
    assert!(repo().join(flux["spec"]["path"].as_str().unwrap()).join("kustomization.yaml").exists());
    let helm_release: Value = serde_saphyr::from_str(&read("deploy/examples/flux/helmrelease.yaml")).unwrap();
    assert!(repo().join(helm_release["spec"]["chart"]["spec"]["chart"].as_str().unwrap()).join("Chart.yaml").exists());
    for app in ["operator.yaml", "penpot.yaml"] {
        let a: Value = serde_saphyr::from_str(&read(format!("deploy/examples/argocd/{app}"))).unwrap();
        assert!(repo().join(a["spec"]["source"]["path"].as_str().unwrap()).is_dir());
    }
}

/// `helm install` in namespaced mode, then the operator binary with the chart's own
/// ServiceAccount token (kwok only fakes the Deployment's pod): the example Penpot from
/// deploy/examples/penpot reaches Ready, and the operator cannot read Secrets elsewhere.
#[test]
fn helm_install_runs_the_example_under_the_charts_rbac() {
    let Some(c) = cluster() else { return };
    let op_ns = Namespace::new(c, "helm-op");
    let o = op_ns.name.as_str();
    let watched = "penpot"; // the example's own namespace (deploy/examples/penpot)
    // The example first: it creates the namespace the chart's Role goes into.
    let applied = c.kubectl(&["apply", "-k", repo().join("deploy/examples/penpot").to_str().unwrap()]);
    assert!(applied.ok, "kubectl apply -k deploy/examples/penpot: {}", applied.stderr);

    let out = helm(&[
        "install",
        "penpot-operator",
        chart().to_str().unwrap(),
        "--namespace",
        o,
        "--kubeconfig",
        c.kubeconfig.to_str().unwrap(),
        "--skip-crds",
        "--set",
        &format!("watchNamespace={watched},replicaCount=2"),
    ]);
    assert!(out.ok, "helm install: {}", out.stderr);
    assert!(out.stdout.contains("watching namespace penpot only"), "NOTES: {}", out.stdout);
    let sa = "penpot-operator";
    let token = c.kubectl_ok(&["-n", o, "create", "token", sa, "--duration=1h"]);
    let kubeconfig = c.dir.join(format!("{o}-chart.kubeconfig"));
    std::fs::copy(&c.kubeconfig, &kubeconfig).unwrap();
    let k = kubeconfig.to_str().unwrap();
    for args in [
        vec!["config", "set-credentials", sa, &format!("--token={}", token.trim())],
        vec!["config", "set-context", "e2e", "--user=penpot-operator"],
    ] {
        let status = Command::new("kubectl").arg("--kubeconfig").arg(k).args(&args).status().unwrap();
        assert!(status.success());
    }
    // Exactly the chart's arguments for this release.
    let deployment = c.get(o, "deployment/penpot-operator").unwrap();
    let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace("0.0.0.0:8080", "127.0.0.1:0"))
        .collect();
    let log = c.dir.join(format!("logs/operator-{o}-chart.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_penpot-operator"))
        .args(&args)
        .args(["--identity", "chart-replica"])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", o)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    let ready = c.kubectl(&["-n", watched, "wait", "--for=condition=Ready", "penpot/penpot", "--timeout=120s"]);
    let status = c.get(watched, "penpot/penpot");
    let _ = child.kill();
    let _ = child.wait();
    let _ = c.kubectl(&["delete", "namespace", watched, "--wait=false"]);
    assert!(ready.ok, "the example never became Ready under the chart's RBAC: {}\n{status:?}", ready.stderr);

    // Namespaced mode: no Secrets outside the watched namespace, not even in its own.
    let who = format!("system:serviceaccount:{o}:{sa}");
    for (ns, verb, expect) in
        [(watched, "get", "yes"), ("default", "get", "no"), ("default", "list", "no"), (o, "list", "no")]
    {
        let out = c.kubectl(&["auth", "can-i", verb, "secrets", "-n", ns, "--as", &who]);
        assert_eq!(out.stdout.trim(), expect, "can {who} {verb} secrets in {ns}?");
    }
    let denied = Command::new("kubectl").args(["--kubeconfig", k, "get", "secrets", "-n", "default"]).output().unwrap();
    assert!(!denied.status.success() && String::from_utf8_lossy(&denied.stderr).contains("Forbidden"));
    let _ = helm(&["uninstall", "penpot-operator", "--namespace", o, "--kubeconfig", c.kubeconfig.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(10));
}
