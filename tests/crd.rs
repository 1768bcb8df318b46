//! The checked-in CRD, the offline schema checker and the offline `render` command.

use std::path::PathBuf;

use kube::CustomResourceExt;
use penpot_operator::cli::render::{Assume, InputError, render_documents};
use penpot_operator::crd::{Penpot, crd_yaml};
use penpot_operator::schema::check;
use serde_json::{Value, json};

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

fn example() -> String {
    repo_file("docs/examples/penpot.yaml")
}

fn example_docs() -> Vec<Value> {
    serde_saphyr::from_multiple(&example()).expect("the example is YAML")
}

fn example_penpot() -> Value {
    example_docs().into_iter().find(|d| d["kind"] == "Penpot").expect("the example has a Penpot")
}

fn schema() -> Value {
    let crd = serde_json::to_value(Penpot::crd()).expect("CRD serialises");
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema").cloned().expect("CRD has an openAPIV3Schema")
}

fn key() -> String {
    "offline-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz".to_string()
}

#[test]
fn checked_in_crd_is_current() {
    let generated = crd_yaml().expect("CRD serialises");
    let checked_in = repo_file("crds/penpot.yaml");
    if generated != checked_in {
        let first_diff = generated
            .lines()
            .zip(checked_in.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}: generated {a:?}, checked in {b:?}", i + 1))
            .unwrap_or_else(|| {
                format!("lengths differ: generated {} bytes, checked in {} bytes", generated.len(), checked_in.len())
            });
        panic!("crds/penpot.yaml is out of date; run `make crd` to regenerate it ({first_diff})");
    }
}

#[test]
fn schema_accepts_the_example() {
    let doc = example_penpot();
    assert_eq!(check(&schema(), &doc, ""), Ok(()));
    // A minimal Penpot too.
    let minimal = json!({
        "apiVersion": "penpot-operator.dev/v1alpha1",
        "kind": "Penpot",
        "metadata": {"name": "p"},
        "spec": {"publicUri": "https://p.example.com/"}
    });
    assert_eq!(check(&schema(), &minimal, ""), Ok(()));
}

#[test]
fn schema_rejects_bad_fields_with_their_path() {
    let schema = schema();
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        ("negative replicas", "/spec/replicas", json!(-1), "spec.replicas"),
        ("too many replicas", "/spec/replicas", json!(101), "spec.replicas"),
        ("replicas as string", "/spec/replicas", json!("2"), "spec.replicas"),
        ("unknown flag shape", "/spec/flags", json!(["foo-bar"]), "spec.flags[0]"),
        ("second flag bad", "/spec/flags", json!(["enable-webhooks", "Enable-X"]), "spec.flags[1]"),
        ("ftp public URI", "/spec/publicUri", json!("ftp://x"), "spec.publicUri"),
        ("public URI with space", "/spec/publicUri", json!("https://a b/"), "spec.publicUri"),
        ("unknown spec field", "/spec/replica", json!(2), "spec"),
        ("bad secret name", "/spec/postgresql/secretRef/name", json!("Not_A_Name"), "spec.postgresql.secretRef.name"),
        ("secretRef without name", "/spec/redis/secretRef", json!({}), "spec.redis.secretRef"),
        ("bad tenant", "/spec/tenant", json!("-x"), "spec.tenant"),
        ("bad pull policy", "/spec/imagePullPolicy", json!("Sometimes"), "spec.imagePullPolicy"),
        ("max connections 0", "/spec/postgresql/maxConnections", json!(0), "spec.postgresql.maxConnections"),
        ("bad from address", "/spec/smtp/fromAddress", json!("no-at-sign"), "spec.smtp.fromAddress"),
        ("ingress not an object", "/spec/ingress", json!("penpot.example.com"), "spec.ingress"),
    ];
    for (case, pointer, value, path) in cases {
        let mut doc = example_penpot();
        set(&mut doc, pointer, value);
        let err = check(&schema, &doc, "").expect_err(case);
        assert!(err.starts_with(&format!("{path}:")), "{case}: {err:?} does not name {path}");
    }
    let mut doc = example_penpot();
    set(&mut doc, "/spec/replica", json!(2));
    let err = check(&schema, &doc, "").expect_err("unknown field");
    assert!(err.contains("unknown field \"replica\""), "{err}");
}

/// Sets a JSON pointer, creating the last member if needed.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').expect("pointer has a /");
    let parent = doc.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent} in the example"));
    parent.as_object_mut().unwrap_or_else(|| panic!("{pointer}: parent is not an object")).insert(last.into(), value);
}

fn kinds(stream: &str) -> Vec<String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(stream).unwrap_or_else(|e| panic!("output is not YAML: {e}"));
    docs.iter().map(|d| d["kind"].as_str().unwrap_or("<none>").to_string()).collect()
}

fn documents(stream: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(stream).expect("output is YAML")
}

#[test]
fn render_documents_on_the_example() {
    let out = render_documents(&[("docs/examples/penpot.yaml".into(), example())], key).expect("example renders");
    assert_eq!(
        kinds(&out),
        [
            "Secret",
            "Secret",
            "Service",
            "Service",
            "NetworkPolicy",
            "Ingress",
            "ConfigMap",
            "PodDisruptionBudget",
            "StatefulSet",
            "Penpot"
        ],
        "{out}"
    );
    let docs = documents(&out);
    assert_eq!(docs[0].pointer("/metadata/name"), Some(&json!("penpot-secret-key")));
    assert_eq!(docs[1].pointer("/metadata/name"), Some(&json!("penpot-config")));
    let penpot = docs.last().expect("a Penpot");
    let hash = penpot.pointer("/status/configHash").and_then(Value::as_str).expect("status.configHash");
    let statefulset = docs.iter().find(|d| d["kind"] == "StatefulSet").expect("a StatefulSet");
    assert_eq!(
        statefulset.pointer("/spec/template/metadata/annotations/penpot-operator.dev~1config-hash"),
        Some(&json!(hash))
    );
    assert_eq!(penpot.pointer("/status/publicUri"), Some(&json!("https://penpot.example.com/")));

    // Deterministic: the same input and key give the same bytes.
    let again = render_documents(&[("docs/examples/penpot.yaml".into(), example())], key).expect("example renders");
    assert_eq!(out, again);
}

#[test]
fn render_documents_reuses_a_given_secret_key() {
    let existing = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: penpot-secret-key\nstringData:\n  secret-key: {}\n",
        key()
    );
    let inputs = [("example".to_string(), example()), ("key".to_string(), existing)];
    let out = render_documents(&inputs, || panic!("a new key was generated although one was given")).expect("renders");
    assert_eq!(kinds(&out)[0], "Secret");
}

#[test]
fn render_documents_without_secrets_waits() {
    let penpot_only = serde_saphyr::to_string(&example_penpot()).expect("serialises");
    let out = render_documents(&[("penpot.yaml".into(), penpot_only)], key).expect("renders");
    // Like the controller: nothing, not even the key Secret, until the relations resolve.
    assert_eq!(kinds(&out), ["Penpot"], "{out}");
    let docs = documents(&out);
    let penpot = docs.last().expect("a Penpot");
    assert_eq!(
        penpot.pointer("/status/message").and_then(Value::as_str),
        Some(
            "waiting for postgresql, redis, s3, smtp (Secrets penpot-postgresql, penpot-redis, penpot-s3, penpot-smtp not found)"
        ),
        "{out}"
    );
}

#[test]
fn render_documents_reports_invalid_relation_data() {
    let broken = example().replace("endpoints: postgresql.databases.svc.cluster.local:5432", "endpoints: db:99999");
    assert_ne!(broken, example(), "the example changed; update this test");
    let out = render_documents(&[("example".into(), broken)], key).expect("renders a status");
    assert_eq!(kinds(&out), ["Penpot"], "{out}");
    let message = documents(&out).last().and_then(|p| p.pointer("/status/message").cloned()).expect("a message");
    assert_eq!(
        message,
        json!(r#"postgresql relation: Secret "penpot-postgresql" key "endpoints" is not a port number (1-65535)"#)
    );
}

#[test]
fn render_documents_rejects_bad_input() {
    let invalid_yaml = render_documents(&[("bad.yaml".into(), "kind: Penpot\n  spec: [\n".into())], key);
    assert!(matches!(invalid_yaml, Err(InputError::Yaml(ref source, _)) if source == "bad.yaml"), "{invalid_yaml:?}");

    let secrets_only: String =
        example().split("\n---\n").filter(|d| !d.contains("kind: Penpot")).collect::<Vec<_>>().join("\n---\n");
    let no_penpot = render_documents(&[("secrets.yaml".into(), secrets_only)], key);
    assert!(matches!(no_penpot, Err(InputError::NoPenpot)), "{no_penpot:?}");

    let empty = render_documents(&[], key);
    assert!(matches!(empty, Err(InputError::NoPenpot)), "{empty:?}");

    let two = render_documents(&[("a".into(), example()), ("b".into(), example())], key);
    assert!(matches!(two, Err(InputError::TwoPenpots(_))), "{two:?}");

    let mut bad_doc = example_penpot();
    set(&mut bad_doc, "/spec/replicas", json!(-1));
    let bad = render_documents(&[("bad.yaml".into(), serde_saphyr::to_string(&bad_doc).expect("serialises"))], key);
    match bad {
        Err(InputError::Invalid(label, problem)) => {
            assert!(label.contains("bad.yaml"), "{label}");
            assert!(problem.starts_with("spec.replicas:"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn prometheus_objects_only_with_the_prometheus_operator() {
    use penpot_operator::cli::render::render_with;
    let inputs = [("example".to_string(), example())];
    let without = render_with(&inputs, &Assume::default(), key).expect("renders");
    assert!(!kinds(&without).iter().any(|k| k == "PodMonitor" || k == "PrometheusRule"), "{without}");
    let with = render_with(&inputs, &Assume { prometheus_operator: true, ..Assume::default() }, key).expect("renders");
    let docs = documents(&with);
    let monitor = docs.iter().find(|d| d["kind"] == "PodMonitor").expect("a PodMonitor");
    let ports: Vec<&str> = monitor["spec"]["podMetricsEndpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["port"].as_str().unwrap())
        .collect();
    // Penpot's frontend image has no nginx exporter: only the backend is scraped.
    assert_eq!(ports, ["backend"]);
    let rule = docs.iter().find(|d| d["kind"] == "PrometheusRule").expect("a PrometheusRule");
    let alerts: Vec<&str> =
        rule["spec"]["groups"][0]["rules"].as_array().unwrap().iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(alerts, ["PenpotBackendDown", "PenpotRpcSlow", "PenpotTasksSlow"]);
    // 2.17 names the RPC histogram penpot_rpc_main_timing (renamed in 2.15.2).
    assert!(rule.to_string().contains("penpot_rpc_main_timing_bucket"));
    let dashboard = docs.iter().find(|d| d["kind"] == "ConfigMap").expect("the dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json_text = dashboard["data"].as_object().unwrap().values().next().unwrap().as_str().unwrap();
    let board: Value = serde_json::from_str(json_text).expect("the dashboard is JSON");
    let exprs = board["panels"].to_string();
    for metric in ["penpot_rpc_main_timing_bucket", "penpot_tasks_timing_bucket", "jvm_memory_bytes_used"] {
        assert!(exprs.contains(metric), "the dashboard does not chart {metric}");
    }
}

/// `spec.caBundle` from a ConfigMap in the input (as `kubectl get penpot,secret,configmap -o
/// yaml` gives it) reaches the config Secret offline too; a missing one or key is named.
#[test]
fn render_documents_reads_a_ca_bundle_config_map() {
    let mut penpot = example_penpot();
    penpot["spec"]["caBundle"] = serde_json::json!({"configMapRef": {"name": "corp-ca", "key": "ca.pem"}});
    let others: Vec<Value> = example_docs().into_iter().filter(|d| d["kind"] != "Penpot").collect();
    let pem = repo_file("tests/e2e/test-ca.pem");
    let config_map = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "corp-ca"}, "data": {"ca.pem": pem}
    });
    let yaml = |docs: Vec<Value>| {
        docs.iter().map(|d| serde_saphyr::to_string(d).expect("serialises")).collect::<Vec<_>>().join("---\n")
    };
    let with_map = yaml([vec![penpot.clone(), config_map], others.clone()].concat());
    let out = render_documents(&[("input".into(), with_map)], key).expect("renders with the ConfigMap's bundle");
    let config =
        documents(&out).into_iter().find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "penpot-config");
    let config = config.expect("the config Secret");
    assert!(
        config.pointer("/stringData/ca-bundle.pem").or(config.pointer("/data/ca-bundle.pem")).is_some(),
        "no ca-bundle.pem in the config Secret: {config}"
    );

    let without = yaml([vec![penpot], others].concat());
    let Err(e) = render_documents(&[("input".into(), without)], key) else { panic!("rendered without the ConfigMap") };
    assert!(e.to_string().contains("ConfigMap corp-ca is not in the input"), "{e}");
}
