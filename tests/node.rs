//! e2e on the real node (`tests/harness/node.sh`: kubelet, containerd, runc, kube-proxy,
//! CoreDNS): Penpots whose pods really run. The init container copies
//! Pebble in from the operator's image, each container runs it as the images' user under a
//! read-only root, and the kubelet's own probes make the pods Ready.
//!
//! The Penpot images are STAND-INS in the upstream layout (`tests/harness/images.sh`): real
//! nginx in the frontend; for the JVM backend (with its PREPL) and the Node exporter, which
//! cannot be built here, the program of `tests/harness/go/stand-in`. Loki is played by the
//! same program.

#[path = "e2e/support.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const LONG: Duration = Duration::from_secs(180);
const STAND_IN: &str = "e2e.penpot-operator.dev/stand-in:e2e";

/// The node's name, or `None` (after saying so) when the suite runs without it. With
/// PENPOT_E2E_REQUIRED=1 (`make test`, CI) a missing node fails the test.
fn real_node() -> Option<String> {
    let node = std::env::var("PENPOT_E2E_NODE").ok();
    if node.is_none() {
        assert!(
            std::env::var("PENPOT_E2E_REQUIRED").as_deref() != Ok("1"),
            "PENPOT_E2E_REQUIRED=1 but PENPOT_E2E_NODE is not set: start tests/harness/node.sh up DIR"
        );
        eprintln!("\n*** real-node test SKIPPED: PENPOT_E2E_NODE is not set ***\n");
    }
    node
}

/// The operator's image and the Penpot stand-ins, built and imported once per test binary.
fn import_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let socket = std::env::var("PENPOT_E2E_CONTAINERD").expect("node.sh sets PENPOT_E2E_CONTAINERD");
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness/images.sh"))
            .args(["penpot", &socket, env!("CARGO_BIN_EXE_penpot-operator"), "2.17.0"])
            .output()
            .unwrap();
        assert!(out.status.success(), "images.sh: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// What puts a pod on the real node: its selector, its taint's toleration, local images only.
fn on_the_node(node: &str, indent: &str) -> String {
    format!(
        "{indent}nodeSelector: {{kubernetes.io/hostname: {node}}}\n{indent}tolerations: [{{key: penpot-operator.dev/real-node, operator: Exists, effect: NoSchedule}}]\n"
    )
}

/// A Penpot from `penpot_yaml` with its pods on the real node, plus `extra` spec lines.
fn real_penpot(node: &str, name: &str, replicas: i32, extra: &str) -> String {
    // No spec.dnsResolver: the pods' own resolv.conf (the cluster's DNS) decides.
    let penpot = penpot_yaml(name, replicas).replace("  dnsResolver: 10.96.0.10\n", "");
    format!("{penpot}  imagePullPolicy: Never\n{}{extra}", on_the_node(node, "  "))
}

/// A pod running the stand-in program on the real node with `args`.
fn stand_in_pod(node: &str, name: &str, args: &str, restart: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {name}}}}}\nspec:\n  restartPolicy: {restart}\n{}  containers:\n  - {{name: {name}, image: {STAND_IN}, imagePullPolicy: Never, args: {args}}}\n",
        on_the_node(node, "  ")
    )
}

/// The operator binary watching `ns` under its own ServiceAccount, and the relation Secrets
/// of the Penpot `p`.
fn operator_for(c: &Cluster, ns: &str) -> Operator {
    let (kubeconfig, _) = operator_identity(c, ns, "penpot-operator");
    let op = Operator::start(c, ns, &kubeconfig, "op", &[]);
    relation_secrets(c, ns, "p");
    op
}

fn wait_penpot_ready(c: &Cluster, ns: &str, name: &str) {
    wait_until(LONG, &format!("penpot/{name} Ready on the real node"), || {
        let p = c.get(ns, &format!("penpot/{name}"))?;
        (condition(&p, "Ready")?["status"] == "True").then_some(())
    });
}

fn pod_list(c: &Cluster, ns: &str, instance: &str) -> Vec<Value> {
    let selector = format!("app.kubernetes.io/instance={instance}");
    let out = c.kubectl(&["-n", ns, "get", "pods", "-l", &selector, "-o", "json"]);
    let list: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    list["items"].as_array().cloned().unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// One HTTP/1.0 request to `ip:port`: the status code and the whole response, or `None`
/// when nothing answers within a second.
fn http(ip: &str, port: u16, path: &str, headers: &str) -> Option<(u16, String)> {
    let addr = format!("{ip}:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: penpot\r\nConnection: close\r\n{headers}\r\n").ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}

#[test]
fn a_penpot_runs_on_a_real_kubelet_from_the_injected_pebble() {
    let Some(node) = real_node() else { return };
    let Some(c) = cluster() else { return };
    import_images();
    let ns = Namespace::new(c, "node-run");
    let n = ns.name.as_str();
    let _op = operator_for(c, n);
    // Loki's push API, played by the stand-in, reached by name through CoreDNS.
    c.apply_ok(n, &stand_in_pod(&node, "loki", "[loki, --listen, ':3100']", "Always"));
    c.apply_ok(
        n,
        "apiVersion: v1\nkind: Service\nmetadata: {name: loki}\nspec: {selector: {app: loki}, ports: [{port: 3100}]}\n",
    );
    let loki = format!(
        "  logging:\n    loki:\n      url: http://loki.{n}.svc.cluster.local:3100/loki/api/v1/push\n      labels: {{team: design}}\n"
    );
    c.apply_ok(n, &real_penpot(&node, "p", 2, &loki));
    // Ready means the kubelet's probes passed: nginx's static URL and the backend's /readyz.
    wait_penpot_ready(c, n, "p");

    let pods = pod_list(c, n, "p");
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert_eq!(pod["spec"]["nodeName"], node.as_str(), "{name} is not on the real node");
        let init = &pod["status"]["initContainerStatuses"][0]["state"]["terminated"];
        assert_eq!((init["exitCode"].as_i64(), init["reason"].as_str()), (Some(0), Some("Completed")), "{name}");
        for status in pod["status"]["containerStatuses"].as_array().unwrap() {
            assert_eq!(status["ready"], true, "{name}/{}: {status}", status["name"]);
            assert_eq!(status["restartCount"], 0, "{name}/{}: {status}", status["name"]);
        }
        // The pod's resolver is the cluster's DNS, and nginx was told so.
        let resolver = c.kubectl_ok(&[
            "-n",
            n,
            "exec",
            name,
            "-c",
            "nginx",
            "--",
            "/bin/bash",
            "-c",
            "echo $(</operator/nginx/resolver.conf)",
        ]);
        assert!(resolver.contains("10.96.0.10"), "{resolver}");
    }

    // Through the Service (kube-proxy), then on a pod's own address.
    let service = c.get(n, "service/p").unwrap();
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap().to_string();
    wait_until(LONG, "the Service to answer", || {
        http(&cluster_ip, 8080, "/", "")?.1.contains("Penpot frontend stand-in").then_some(())
    });
    let ip = pods[0]["status"]["podIP"].as_str().unwrap();
    let (_, config) = http(ip, 8080, "/js/config.js", "").unwrap();
    assert!(config.contains("var penpotFlags = \"disable-registration enable-login-with-password\";"), "{config}");
    let (code, api) = http(&cluster_ip, 8080, "/api/rpc/command/get-profile", "").unwrap();
    assert_eq!(code, 200, "{api}");
    assert!(api.contains("X-Stand-In: backend") && api.contains(r#""path":"/api/rpc/command/get-profile""#), "{api}");
    let (_, export) = http(ip, 8080, "/api/export", "").unwrap();
    assert!(export.contains("X-Stand-In: exporter"), "{export}");
    // nginx passes the WebSocket upgrade through to the backend: RFC 6455's sample key.
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let (code, ws) = http(&cluster_ip, 8080, "/ws/notifications", upgrade).unwrap();
    assert_eq!(code, 101, "{ws}");
    assert!(
        ws.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") && ws.contains("notifications stand-in"),
        "{ws}"
    );

    // Pebble runs the services as the images' user, under a read-only root.
    let pod = pods[0]["metadata"]["name"].as_str().unwrap();
    let logs = c.kubectl_ok(&["-n", n, "logs", pod, "-c", "penpot"]);
    assert!(
        logs.contains("[backend] facts uid=1001 gid=1001 cwd=/opt/penpot/backend home=/tmp database=set"),
        "{logs}"
    );
    assert!(logs.contains("[backend] root read-only"), "{logs}");
    let services = c.kubectl_ok(&["-n", n, "exec", pod, "-c", "exporter", "--", "/operator/bin/pebble", "services"]);
    assert!(services.lines().any(|l| l.starts_with("exporter") && l.contains("active")), "{services}");

    // Pebble forwards every service's output to Loki, with the Penpot's labels.
    let received = wait_until(LONG, "the backend's log lines at the Loki stand-in", || {
        let logs = c.kubectl(&["-n", n, "logs", "loki"]).stdout;
        logs.lines()
            .any(|l| l.contains(r#""pebble_service":"backend""#) && l.contains("facts uid=1001"))
            .then_some(logs)
    });
    let line = received.lines().find(|l| l.contains(r#""pebble_service":"backend""#)).unwrap();
    for label in [r#""team":"design""#, r#""penpot_instance":"p""#, &format!(r#""namespace":"{n}""#)] {
        assert!(line.contains(label), "{label} missing: {line}");
    }
    for service in ["frontend", "exporter"] {
        assert!(received.contains(&format!(r#""pebble_service":"{service}""#)), "no {service} lines:\n{received}");
    }
}

/// One sample of the rollout: for each pod, whether it counts as Ready (the kubelet says so
/// and it is not terminating: the EndpointSlice controller drops terminating pods too) and
/// whether it really serves (`/api` through its nginx reaches the backend).
struct Sample {
    at: Duration,
    pods: Vec<(String, String, bool, bool)>, // name, uid, Ready, serving
}

#[test]
fn a_relation_change_rolls_one_pod_at_a_time_and_ready_pods_serve() {
    let Some(node) = real_node() else { return };
    let Some(c) = cluster() else { return };
    import_images();
    let ns = Namespace::new(c, "node-roll");
    let n = ns.name.as_str();
    let _op = operator_for(c, n);
    let replicas = 3;
    c.apply_ok(n, &real_penpot(&node, "p", replicas, ""));
    wait_penpot_ready(c, n, "p");
    let before: Vec<String> =
        pod_list(c, n, "p").iter().map(|p| p["metadata"]["uid"].as_str().unwrap().into()).collect();

    // A relation change: Redis moves to another port. Every pod must restart with it.
    c.apply_ok(n, &redis_secret("p-redis", "6380"));
    let start = Instant::now();
    let mut samples = Vec::new();
    // Pebble's own view of the new pods' readiness, next to the backend's: the reason
    // readiness is probed on the backend and not on Pebble.
    let mut pebble_early = 0;
    loop {
        let pods = pod_list(c, n, "p");
        let mut row = Vec::new();
        for pod in &pods {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
            let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
            let serving = !ip.is_empty()
                && http(ip, 8080, "/api/rpc/command/get-profile", "")
                    .is_some_and(|(code, r)| code == 200 && r.contains("X-Stand-In: backend"));
            if !ip.is_empty() && !before.contains(&uid) && !serving {
                let pebble_says_ready =
                    http(ip, 38815, "/v1/health?level=ready", "").is_some_and(|(code, _)| code == 200);
                let backend_ready = http(ip, 6060, "/readyz", "").is_some_and(|(code, _)| code == 200);
                if pebble_says_ready && !backend_ready {
                    pebble_early += 1;
                }
            }
            let terminating = pod["metadata"]["deletionTimestamp"].is_string();
            row.push((name, uid, is_ready(pod) && !terminating, serving));
        }
        samples.push(Sample { at: start.elapsed(), pods: row });
        let last = &samples.last().unwrap().pods;
        let done =
            last.len() == replicas as usize && last.iter().all(|(_, uid, ready, _)| *ready && !before.contains(uid));
        if done {
            break;
        }
        assert!(start.elapsed() < LONG, "the rollout did not finish: last sample {last:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = start.elapsed();

    // The StatefulSet's RollingUpdate (maxUnavailable 1): never fewer than replicas - 1 pods
    // Ready, and every pod the kubelet calls Ready really serves.
    let min_ready = samples.iter().map(|s| s.pods.iter().filter(|p| p.2).count()).min().unwrap();
    let min_serving = samples.iter().map(|s| s.pods.iter().filter(|p| p.2 && p.3).count()).min().unwrap();
    let ready_not_serving: Vec<_> = samples
        .iter()
        .flat_map(|s| s.pods.iter().filter(|p| p.2 && !p.3).map(move |p| format!("{:?} {}", s.at, p.0)))
        .collect();
    eprintln!(
        "rollout of {replicas} pods: {took:?}, {} samples, min Ready {min_ready}, min Ready and serving {min_serving}, Pebble ready before the backend in {pebble_early} samples",
        samples.len()
    );
    assert!(min_ready >= (replicas - 1) as usize, "only {min_ready} pods Ready at one point");
    // A pod deleted between a sample's list and its request shows as Ready and not serving:
    // at most once per pod replaced. Early readiness shows as seconds of such samples.
    assert!(ready_not_serving.len() <= replicas as usize, "Ready pods that did not serve: {ready_not_serving:?}");
    // One at a time: at no sample were two pods of the new revision not yet Ready.
    for s in &samples {
        let starting = s.pods.iter().filter(|p| !before.contains(&p.1) && !p.2).count();
        assert!(starting <= 1, "{starting} new pods starting at once at {:?}: {:?}", s.at, s.pods);
    }
    // Pebble's ready level passes while the backend is still starting: probing it would have
    // made pods Ready early (the readiness probe is the backend's own /readyz instead).
    assert!(
        pebble_early > 0,
        "Pebble's level=ready never answered early; the stand-in's start may be too fast to show it"
    );
}

#[test]
fn profiles_go_through_a_real_port_forward_to_the_backends_prepl() {
    let Some(node) = real_node() else { return };
    let Some(c) = cluster() else { return };
    import_images();
    let ns = Namespace::new(c, "node-prof");
    let n = ns.name.as_str();
    let _op = operator_for(c, n);
    c.apply_ok(n, &real_penpot(&node, "p", 1, ""));
    wait_penpot_ready(c, n, "p");

    // The CLI: a port-forward through the API server and the kubelet (containerd) to the
    // backend's PREPL, which listens on 127.0.0.1:6063 in the pod only.
    let ada = format!("ada@{n}.example.com");
    let (ok, out, err) =
        profile_cli(c, &["create", "--penpot", "p", "-n", n, "--email", &ada, "--fullname", "Ada Lovelace"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("email: {ada}")) && out.contains("password: "), "{out}");
    let (ok, _, err) = profile_cli(c, &["create", "--penpot", "p", "-n", n, "--email", &ada, "--fullname", "Ada"]);
    assert!(!ok && err.contains("already exists"), "a second create must be refused by the backend: {err}");
    let (ok, _, err) = profile_cli(c, &["rename", "--penpot", "p", "-n", n, "--email", &ada, "--fullname", "Ada K"]);
    assert!(ok, "{err}");
    let (ok, _, err) = profile_cli(c, &["deactivate", "--penpot", "p", "-n", n, "--email", &ada]);
    assert!(ok, "{err}");
    let (ok, out, err) = profile_cli(c, &["delete", "--penpot", "p", "-n", n, "--email", &ada]);
    assert!(ok && out.contains("deleted"), "{out}{err}");
    let (ok, _, err) = profile_cli(c, &["delete", "--penpot", "p", "-n", n, "--email", &ada]);
    assert!(!ok && err.contains("No profile found"), "{err}");

    // Declarative: the operator forwards just the same, and a spec edit follows.
    let grace = format!("grace@{n}.example.com");
    c.apply_ok(n, &penpot_profile_yaml("grace", "p", &grace));
    wait_profile(c, n, "grace", "Created");
    c.kubectl_ok(&[
        "-n",
        n,
        "patch",
        "penpotprofile",
        "grace",
        "--type=merge",
        "-p",
        r#"{"spec":{"deactivated":true}}"#,
    ]);
    wait_profile(c, n, "grace", "Updated");
    c.kubectl_ok(&["-n", n, "delete", "penpotprofile", "grace", "--timeout=90s"]);

    // What the backend's process saw: each command once, and never a password.
    let pod = format!("{}-0", "p");
    let logs = c.kubectl_ok(&["-n", n, "logs", &pod, "-c", "penpot"]);
    let prepl: Vec<&str> =
        logs.lines().filter(|l| l.contains("prepl: ")).map(|l| l.split("prepl: ").nth(1).unwrap()).collect();
    assert_eq!(
        prepl,
        [
            format!("create-profile {ada} [fullname=Ada Lovelace password active=true] -> ret"),
            format!("create-profile {ada} [fullname=Ada password active=true] -> err"),
            format!("update-profile {ada} [fullname=Ada K] -> ret"),
            format!("update-profile {ada} [active=false] -> ret"),
            format!("delete-profile {ada} [] -> ret"),
            format!("delete-profile {ada} [] -> ret"),
            format!("create-profile {grace} [fullname=Grace Hopper password active=true] -> ret"),
            format!("update-profile {grace} [active=false] -> ret"),
            format!("delete-profile {grace} [] -> ret"),
        ],
        "{logs}"
    );
    let secret = c.get(n, "secret/grace-password");
    assert!(secret.is_none(), "the password Secret goes with its PenpotProfile");
}

/// The operator as users run it: installed by the Helm chart from its image, two replicas in
/// pods with in-cluster credentials and leader election; deleting the leader's pod fails over.
#[test]
fn the_helm_installed_operator_runs_in_pods_and_fails_over() {
    let Some(node) = real_node() else { return };
    let Some(c) = cluster() else { return };
    import_images();
    let op_ns = Namespace::new(c, "node-helm-op");
    let o = op_ns.name.as_str();
    let watched_ns = Namespace::new(c, "node-helm-penpot");
    let w = watched_ns.name.as_str();
    let crate_version = env!("CARGO_PKG_VERSION");
    let values = c.dir.join(format!("{o}-values.yaml"));
    std::fs::write(
        &values,
        format!(
            "replicaCount: 2\nwatchNamespace: {w}\nimage: {{repository: ghcr.io/penpot-operator/penpot-operator, tag: '{crate_version}', pullPolicy: Never}}\nlogFormat: text\n{}",
            on_the_node(&node, "")
        ),
    )
    .unwrap();
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/penpot-operator");
    let kubeconfig = c.kubeconfig.to_str().unwrap();
    let helm = |args: &[&str]| {
        let out =
            Command::new("helm").args(args).args(["--namespace", o, "--kubeconfig", kubeconfig]).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = helm(&[
        "install",
        "penpot-operator",
        chart,
        "--skip-crds",
        "--values",
        values.to_str().unwrap(),
        "--wait",
        "--timeout",
        "180s",
    ]);
    assert!(ok, "helm install: {err}");

    let leader = || {
        let lease = c.get(o, "lease/penpot-operator-leader")?;
        lease["spec"]["holderIdentity"].as_str().filter(|h| !h.is_empty()).map(String::from)
    };
    let first = wait_until(LONG, "a leader", leader);
    let operator_pods: Value = serde_json::from_str(&c.kubectl_ok(&["-n", o, "get", "pods", "-o", "json"])).unwrap();
    let names: Vec<&str> =
        operator_pods["items"].as_array().unwrap().iter().map(|p| p["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&first.as_str()), "the leader {first} is one of the pods {names:?}");

    // The leader, in its pod, reconciles a Penpot (its pods on kwok: this test is about the
    // operator).
    ready_penpot(c, w, "p", 1);

    // Delete the leader's pod: it releases the Lease on its way out, and a replica (the
    // other one, or the Deployment's replacement if it asks first) takes over at its next
    // attempt, well before the lease would have expired (15 s), and keeps reconciling.
    let deleted = Instant::now();
    c.kubectl_ok(&["-n", o, "delete", "pod", &first, "--wait=false"]);
    let second = wait_until(LONG, "another leader", || leader().filter(|l| *l != first));
    let took = deleted.elapsed();
    eprintln!("failover from {first} to {second} in {took:?}");
    assert!(took < Duration::from_secs(14), "failover took {took:?}: the Lease was not released");
    relation_secrets(c, w, "q");
    c.apply_ok(w, &penpot_yaml("q", 1));
    wait_ready(c, w, "q");
    assert!(c.get(w, "statefulset/q").is_some(), "the new leader created q's StatefulSet");
    let (ok, err) = helm(&["uninstall", "penpot-operator", "--wait", "--timeout", "60s"]);
    assert!(ok, "helm uninstall: {err}");
}

/// The PREPL connection to a backend that misbehaves is bounded: an answer flooded with
/// printed lines is read to 64 KiB and refused; one that never comes is abandoned after
/// 60 s; a connection closed unanswered is said so; a well-behaved profile next to them is
/// created meanwhile.
#[test]
fn a_misbehaving_prepl_is_bounded() {
    let Some(node) = real_node() else { return };
    let Some(c) = cluster() else { return };
    import_images();
    let ns = Namespace::new(c, "node-prepl");
    let n = ns.name.as_str();
    let _op = operator_for(c, n);
    c.apply_ok(n, &real_penpot(&node, "p", 1, ""));
    wait_penpot_ready(c, n, "p");
    for name in ["flood", "hang", "down", "fine"] {
        c.apply_ok(n, &penpot_profile_yaml(name, "p", &format!("{name}@{n}.example.com")));
    }
    let started = Instant::now();
    wait_profile(c, n, "fine", "Created");
    let flood = wait_profile(c, n, "flood", "CreateFailed");
    assert_eq!(flood, "the backend's PREPL answered create-profile with over 65536 bytes");
    let down = wait_profile(c, n, "down", "CreateFailed");
    assert!(down.starts_with("the backend's PREPL closed the connection before answering create-profile"), "{down}");
    let hang = wait_profile(c, n, "hang", "CreateFailed");
    assert_eq!(hang, "the backend did not answer create-profile within 60 s");
    assert!(started.elapsed() >= Duration::from_secs(55), "the hang was reported before its deadline");
}

/// One HTTP/1.1 PUT of `body` to `ip:port`: the status code.
fn http_put(ip: &str, port: u16, path: &str, body: &str) -> Option<u16> {
    let addr = format!("{ip}:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: penpot\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).split_whitespace().nth(1)?.parse().ok()
}

/// Issue 15, items 1 and 2 on the real node: two pods share one ReadWriteMany assets volume
/// (a hostPath PersistentVolume of this node), a file uploaded through one pod's nginx and
/// backend is sent by the other pod's nginx from the volume (the backend's 204 and
/// X-Accel-Redirect, nginx's `/internal/assets`); the init container writes the trust store of
/// `spec.caBundle`, which the backend process finds where `JAVA_TOOL_OPTIONS` points.
#[test]
fn two_pods_share_the_assets_volume_and_the_backend_finds_its_trust_store() {
    let Some(node) = real_node() else { return };
    let Some(c) = cluster() else { return };
    import_images();
    let ns = Namespace::new(c, "node-fs");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    c.apply_ok(n, &postgresql_secret("p-postgresql", PG_PASSWORD));
    c.apply_ok(n, &redis_secret("p-redis", "6379"));
    c.apply_ok(n, &secret_yaml("corp-ca", &[("ca.crt", include_str!("e2e/test-ca.pem"))]));

    // The volume: a directory of this machine (the node), writable by the images' user.
    let class = format!("shared-{n}");
    let dir = std::env::temp_dir().join(&class);
    std::fs::create_dir_all(&dir).unwrap();
    Command::new("chmod").arg("0777").arg(&dir).status().unwrap();
    c.kubectl_in(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {class}}}\nspec:\n  storageClassName: {class}\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteMany]\n  hostPath: {{path: {}}}\n",
            dir.display()
        )),
    );
    let extra = format!(
        "  storage:\n    filesystem: {{size: 1Gi, storageClassName: {class}, accessMode: ReadWriteMany}}\n  caBundle:\n    secretRef: {{name: corp-ca}}\n"
    );
    let penpot = real_penpot(&node, "p", 2, &extra).replace("  s3:\n    secretRef: {name: p-s3}\n", "");
    c.apply_ok(n, &penpot);
    wait_penpot_ready(c, n, "p");

    let pods = pod_list(c, n, "p");
    let ips: Vec<String> = pods.iter().map(|p| p["status"]["podIP"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(ips.len(), 2);
    let id = "0f3a9c1e77aa4b0c8d9e";
    assert_eq!(http_put(&ips[0], 8080, &format!("/api/stand-in/objects/{id}"), "an uploaded image"), Some(201));
    let (code, response) = http(&ips[1], 8080, &format!("/assets/by-file-media-id/{id}"), "").expect("an answer");
    assert_eq!(code, 200, "{response}");
    assert!(response.ends_with("\r\n\r\nan uploaded image"), "sent by the other pod's nginx: {response}");
    assert!(response.to_lowercase().contains("x-internal-redirect: /internal/assets/0f/3a/9c1e77aa4b0c8d9e"));
    assert_eq!(std::fs::read_to_string(dir.join("0f/3a/9c1e77aa4b0c8d9e")).unwrap(), "an uploaded image");

    for pod in ["p-0", "p-1"] {
        let log = c.kubectl_ok(&["-n", n, "logs", pod, "-c", "penpot"]);
        // Pebble prefixes the service's lines: `<time> [backend] truststore <path> <size> bytes`.
        let line = log.lines().find(|l| l.contains("[backend] truststore ")).unwrap_or_else(|| panic!("{pod}: {log}"));
        let size: u64 = line
            .strip_suffix(" bytes")
            .and_then(|l| l.split_once("[backend] truststore /operator/ca/truststore.jks "))
            .and_then(|(_, size)| size.parse().ok())
            .unwrap_or_else(|| panic!("{pod}: {line}"));
        assert!(size > 10_000, "the public roots and the bundle, as JKS: {line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
