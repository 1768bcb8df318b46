//! Helpers for the e2e suite: the control plane started by tests/harness/cluster.sh, kubectl,
//! a namespace per test, the operator binary running under a ServiceAccount token, and the
//! API server's audit log to count the operator's writes.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub audit_log: PathBuf,
}

/// The path of `program` on PATH, if it is there.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.is_file())
}

/// The running control plane, or `None` (after saying so) when the suite runs without one.
/// With `PENPOT_E2E_REQUIRED=1` (CI, `make test`) a missing control plane fails the test.
pub fn cluster() -> Option<&'static Cluster> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    let c = CLUSTER.get_or_init(|| {
        let dir = std::env::var_os("PENPOT_E2E_DIR").map(PathBuf::from)?;
        let c = Cluster { kubeconfig: dir.join("admin.kubeconfig"), audit_log: dir.join("logs/audit.log"), dir };
        install_crd_and_rbac(&c);
        Some(c)
    });
    if c.is_none() {
        assert!(
            std::env::var("PENPOT_E2E_REQUIRED").as_deref() != Ok("1"),
            "PENPOT_E2E_REQUIRED=1 but PENPOT_E2E_DIR is not set: start tests/harness/cluster.sh first"
        );
        // Written past libtest's output capture, once, so `cargo test` shows it.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "\n*** e2e SKIPPED: PENPOT_E2E_DIR is not set; `make test` runs the e2e suite on a real control plane (docs/development.md) ***\n"
            );
        });
    }
    c.as_ref()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn install_crd_and_rbac(c: &Cluster) {
    let crd = repo().join("crds/penpot.yaml");
    // Forced: a test that patched the CRD (tests/faults.rs) must not block the next binary.
    c.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", crd.to_str().unwrap()]);
    for crd in ["crd/penpots.penpot-operator.dev", "crd/penpotprofiles.penpot-operator.dev"] {
        c.kubectl_ok(&["wait", "--for=condition=Established", crd, "--timeout=60s"]);
    }
    let role = repo().join("deploy/rbac/clusterrole.yaml");
    c.kubectl_ok(&["apply", "-f", role.to_str().unwrap()]);
}

pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Cluster {
    pub fn kubectl_in(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs (PATH from tests/harness env)");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().unwrap();
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_in(args, None)
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.ok, "kubectl {args:?} failed: {}", out.stderr);
        out.stdout
    }

    pub fn apply(&self, ns: &str, yaml: &str) -> Output {
        self.kubectl_in(&["-n", ns, "apply", "-f", "-"], Some(yaml))
    }

    pub fn apply_ok(&self, ns: &str, yaml: &str) {
        let out = self.apply(ns, yaml);
        assert!(out.ok, "apply failed: {}\n{yaml}", out.stderr);
    }

    /// The object as JSON, or `None` when it does not exist.
    pub fn get(&self, ns: &str, what: &str) -> Option<Value> {
        let out = self.kubectl(&["-n", ns, "get", what, "-o", "json"]);
        if !out.ok {
            assert!(out.stderr.contains("NotFound"), "kubectl get {what}: {}", out.stderr);
            return None;
        }
        Some(serde_json::from_str(&out.stdout).unwrap())
    }

    /// Audit-log entries of writes made by `user` (e.g. `system:serviceaccount:ns:sa`).
    /// The requests of `user` the audit log records: every write, and GETs by ServiceAccounts.
    pub fn requests_by(&self, user: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.audit_log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e.pointer("/user/username").and_then(Value::as_str) == Some(user))
            .collect()
    }

    pub fn writes_by(&self, user: &str) -> Vec<Value> {
        self.requests_by(user)
            .into_iter()
            .filter(|e| e["verb"] != "get" && e["verb"] != "list" && e["verb"] != "watch")
            .collect()
    }
}

/// A fresh namespace for one test, removed afterwards.
pub struct Namespace<'a> {
    pub name: String,
    cluster: &'a Cluster,
}

impl<'a> Namespace<'a> {
    pub fn new(cluster: &'a Cluster, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", std::process::id() % 100_000);
        cluster.kubectl_ok(&["create", "namespace", &name]);
        // The ServiceAccount controller creates `default` shortly after.
        wait_until(Duration::from_secs(30), "the default ServiceAccount", || {
            cluster.get(&name, "serviceaccount/default").map(|_| ())
        });
        Namespace { name, cluster }
    }
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        if std::env::var("PENPOT_E2E_KEEP").as_deref() != Ok("1") {
            let _ = self.cluster.kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
        }
    }
}

/// A kubeconfig that authenticates as ServiceAccount `sa` in `ns`, bound to the operator's
/// ClusterRole in that namespace only, plus the leader-election Role's Lease rights there:
/// the operator gets exactly the rights the chart gives.
pub fn operator_identity(c: &Cluster, ns: &str, sa: &str) -> (PathBuf, String) {
    c.kubectl_ok(&["-n", ns, "create", "serviceaccount", sa]);
    c.kubectl_ok(&[
        "-n",
        ns,
        "create",
        "rolebinding",
        sa,
        "--clusterrole=penpot-operator",
        &format!("--serviceaccount={ns}:{sa}"),
    ]);
    // Leader election's Lease, as deploy/rbac/leader-election.yaml grants it.
    c.kubectl_ok(&[
        "-n",
        ns,
        "create",
        "role",
        &format!("{sa}-leader-election"),
        "--verb=get,create,update",
        "--resource=leases.coordination.k8s.io",
    ]);
    c.kubectl_ok(&[
        "-n",
        ns,
        "create",
        "rolebinding",
        &format!("{sa}-leader-election"),
        &format!("--role={sa}-leader-election"),
        &format!("--serviceaccount={ns}:{sa}"),
    ]);
    let token = c.kubectl_ok(&["-n", ns, "create", "token", sa, "--duration=2h"]);
    let path = c.dir.join(format!("{ns}-{sa}.kubeconfig"));
    std::fs::copy(&c.kubeconfig, &path).unwrap();
    let k = path.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("kubectl").arg("--kubeconfig").arg(k).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["config", "set-credentials", sa, &format!("--token={}", token.trim())]);
    run(&["config", "set-context", "e2e", &format!("--user={sa}")]);
    (path, format!("system:serviceaccount:{ns}:{sa}"))
}

/// The operator binary, watching one namespace; killed when dropped.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
}

impl Operator {
    pub fn start(c: &Cluster, ns: &str, kubeconfig: &Path, name: &str, extra: &[&str]) -> Operator {
        let log = c.dir.join(format!("logs/operator-{ns}-{name}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut args = vec!["run", "--namespace", ns, "--identity", name];
        if !extra.contains(&"--http-addr") {
            args.extend(["--http-addr", "127.0.0.1:0"]);
        }
        // The suite's relation hosts are made up; checking them would add status writes that
        // tests counting writes would see. The pre-flight checks' own tests turn them on.
        if !extra.iter().any(|a| a.starts_with("--relation-checks")) {
            args.push("--relation-checks=false");
        }
        let child = Command::new(env!("CARGO_BIN_EXE_penpot-operator"))
            .args(&args)
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,penpot_operator=debug")
            .env_remove("POD_NAMESPACE")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("the operator binary starts");
        Operator { child, log }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit status once it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` until it returns `Some`, or panics naming what never happened.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn status_message(p: &Value) -> String {
    p.pointer("/status/message").and_then(Value::as_str).unwrap_or_default().to_string()
}

pub fn condition<'v>(p: &'v Value, type_: &str) -> Option<&'v Value> {
    p.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == type_)
}

pub fn secret_yaml(name: &str, pairs: &[(&str, &str)]) -> String {
    let mut s = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n");
    for (k, v) in pairs {
        s.push_str(&format!("  {k}: {}\n", serde_json::to_string(v).unwrap()));
    }
    s
}

/// Every secret value the suite puts into relation Secrets; tests/harness/leak-check.sh
/// greps the whole run's events, statuses and logs for each line of this file.
pub const SECRET_VALUES: &str = include_str!("secret-values.txt");
pub const PG_PASSWORD: &str = "pg-secret-Xq9v";
pub const PG_PASSWORD_ROTATED: &str = "rotated-Pw-42";
/// The secret key another writer creates first in the secret-key race test.
pub const RACE_WINNER_KEY: &str = "race-winner-key-4f8a1c0e9b7d6a5f3e2d1c0b9a8f7e6d5c4b3a29";
pub const S3_SECRET: &str = "s3-secret-Zr7k";
pub const REDIS_PASSWORD: &str = "redis-secret-Lm3p";

pub fn postgresql_secret(name: &str, password: &str) -> String {
    secret_yaml(
        name,
        &[
            ("endpoints", "pg.db.svc.cluster.local:5432"),
            ("database", "penpot"),
            ("username", "penpot"),
            ("password", password),
        ],
    )
}

pub fn redis_secret(name: &str, port: &str) -> String {
    secret_yaml(name, &[("hostname", "valkey.db.svc.cluster.local"), ("port", port), ("password", REDIS_PASSWORD)])
}

pub fn s3_secret(name: &str) -> String {
    secret_yaml(
        name,
        &[
            ("access-key", "penpot"),
            ("secret-key", S3_SECRET),
            ("bucket", "penpot"),
            ("endpoint", "http://minio.storage.svc.cluster.local:9000"),
        ],
    )
}

/// A Penpot named `name` referencing `<name>-postgresql`, `-redis` and `-s3`.
pub fn penpot_yaml(name: &str, replicas: i32) -> String {
    format!(
        r#"apiVersion: penpot-operator.dev/v1alpha1
kind: Penpot
metadata:
  name: {name}
spec:
  publicUri: https://{name}.example.com/
  replicas: {replicas}
  dnsResolver: 10.96.0.10
  postgresql:
    secretRef: {{name: {name}-postgresql}}
  redis:
    secretRef: {{name: {name}-redis}}
  s3:
    secretRef: {{name: {name}-s3}}
"#
    )
}

/// The three required relation Secrets of the Penpot `name`, as `penpot_yaml` names them.
pub fn relation_secrets(c: &Cluster, ns: &str, name: &str) {
    c.apply_ok(ns, &postgresql_secret(&format!("{name}-postgresql"), PG_PASSWORD));
    c.apply_ok(ns, &redis_secret(&format!("{name}-redis"), "6379"));
    c.apply_ok(ns, &s3_secret(&format!("{name}-s3")));
}

/// Applies a Penpot with all three required Secrets and waits for `Ready` with kubectl.
pub fn ready_penpot(c: &Cluster, ns: &str, name: &str, replicas: i32) {
    relation_secrets(c, ns, name);
    c.apply_ok(ns, &penpot_yaml(name, replicas));
    wait_ready(c, ns, name);
}

/// Stub CRDs for the Prometheus Operator's PodMonitor and PrometheusRule (cluster-wide, so
/// every operator from then on renders them).
pub fn install_prometheus_operator_crds(c: &Cluster) {
    for (kind, plural) in [("PodMonitor", "podmonitors"), ("PrometheusRule", "prometheusrules")] {
        c.kubectl_in(&["apply", "-f", "-"], Some(&stub_crd("monitoring.coreos.com", kind, plural)));
        wait_established(c, &format!("{plural}.monitoring.coreos.com"));
    }
}

pub fn wait_ready(c: &Cluster, ns: &str, name: &str) {
    let out = c.kubectl(&["-n", ns, "wait", "--for=condition=Ready", &format!("penpot/{name}"), "--timeout=120s"]);
    if !out.ok {
        // What CI needs to tell an operator bug from a control-plane one: where the pods are
        // stuck, and which components exited and were restarted.
        let pods = c.kubectl(&["-n", ns, "get", "statefulsets,pods", "-o", "wide"]).stdout;
        let restarts = std::fs::read_to_string(c.dir.join("logs/restarts")).unwrap_or_default();
        panic!(
            "penpot/{name} never became Ready: {}\n{:?}\n{pods}\ncontrol-plane restarts:\n{restarts}",
            out.stderr,
            c.get(ns, &format!("penpot/{name}"))
        );
    }
}

pub fn config_hash(sts: &Value) -> String {
    sts.pointer("/spec/template/metadata/annotations/penpot-operator.dev~1config-hash")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Pod names with their UIDs, sorted.
pub fn pods(c: &Cluster, ns: &str, instance: &str) -> Vec<(String, String)> {
    let selector = format!("app.kubernetes.io/instance={instance}");
    let list: Value =
        serde_json::from_str(&c.kubectl_ok(&["-n", ns, "get", "pods", "-l", &selector, "-o", "json"])).unwrap();
    let mut pods: Vec<(String, String)> = list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|p| {
                    (
                        p["metadata"]["name"].as_str().unwrap().to_string(),
                        p["metadata"]["uid"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    pods.sort();
    pods
}

/// A minimal CRD that accepts anything: stands in for Argo CD, Flux or the Prometheus Operator.
pub fn stub_crd(group: &str, kind: &str, plural: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.{group}}}
spec:
  group: {group}
  names: {{kind: {kind}, plural: {plural}, singular: {singular}}}
  scope: Namespaced
  versions:
  - name: {version}
    served: true
    storage: true
    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"#,
        singular = kind.to_lowercase(),
        version = match group {
            "argoproj.io" => "v1alpha1",
            "helm.toolkit.fluxcd.io" => "v2",
            _ => "v1",
        }
    )
}

pub fn wait_established(c: &Cluster, crd: &str) {
    let out = c.kubectl(&["wait", "--for=condition=Established", &format!("crd/{crd}"), "--timeout=60s"]);
    assert!(out.ok, "{crd}: {}", out.stderr);
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A plain HTTP/1.0 GET on 127.0.0.1: status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

/// The value of the first sample starting with `name` (with labels, `name{a="b"}`); 0 if absent.
pub fn metric(body: &str, name: &str) -> f64 {
    body.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

/// `penpot-operator profile ARGS` as the admin: success, stdout, stderr.
pub fn profile_cli(c: &Cluster, args: &[&str]) -> (bool, String, String) {
    operator_cli(c, &[&["profile"], args].concat())
}

/// `penpot-operator ARGS` as a cluster admin: success, stdout, stderr.
pub fn operator_cli(c: &Cluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_penpot-operator"))
        .args(args)
        .env("KUBECONFIG", &c.kubeconfig)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A PenpotProfile `name` for the Penpot `penpot` (deletionPolicy Delete, the default).
pub fn penpot_profile_yaml(name: &str, penpot: &str, email: &str) -> String {
    format!(
        "apiVersion: penpot-operator.dev/v1alpha1\nkind: PenpotProfile\nmetadata: {{name: {name}}}\nspec: {{penpotRef: {{name: {penpot}}}, email: '{email}', fullname: Grace Hopper}}\n"
    )
}

/// The Ready condition's reason and message of PenpotProfile `name`, once it has one.
pub fn profile_ready(c: &Cluster, ns: &str, name: &str) -> Option<(String, String)> {
    let p = c.get(ns, &format!("penpotprofile/{name}"))?;
    let ready = condition(&p, "Ready")?;
    Some((ready["reason"].as_str()?.to_string(), ready["message"].as_str()?.to_string()))
}

/// Waits until PenpotProfile `name` is Ready for `reason`; its message.
pub fn wait_profile(c: &Cluster, ns: &str, name: &str, reason: &str) -> String {
    wait_until(Duration::from_secs(180), &format!("PenpotProfile {name} {reason}"), || {
        profile_ready(c, ns, name).filter(|(r, _)| r == reason).map(|(_, m)| m)
    })
}

/// The servers of tests/harness/relations.sh (real PostgreSQL, Redis, SMTP and S3 on
/// loopback) as their env file names them, or `None` after saying so; CI
/// (`PENPOT_E2E_REQUIRED=1`) requires them.
pub fn relation_servers() -> Option<std::collections::HashMap<String, String>> {
    let Some(path) = std::env::var_os("PENPOT_RELATIONS_ENV") else {
        assert!(
            std::env::var("PENPOT_E2E_REQUIRED").as_deref() != Ok("1"),
            "PENPOT_E2E_REQUIRED=1 but PENPOT_RELATIONS_ENV is not set: start tests/harness/relations.sh first"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n*** relation checks SKIPPED: PENPOT_RELATIONS_ENV is not set (tests/harness/relations.sh up DIR) ***\n"
        );
        return None;
    };
    let text = std::fs::read_to_string(path).expect("the relation servers' env file");
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').trim_matches('"').to_string()))
            .collect(),
    )
}
