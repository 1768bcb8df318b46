//! e2e on the real node (`tests/harness/node.sh`: kubelet, containerd, runc, kube-proxy): a Penpot whose
//! pods really run. The init container copies Pebble in from the operator's image, each
//! container runs it as the images' user under a read-only root, and the kubelet's own probes
//! make the pods Ready. The Penpot images are STAND-INS in the upstream layout
//! (`tests/harness/images.sh`): real nginx in the frontend; scripts for the JVM backend and the
//! Node exporter, which cannot be built here.

#[path = "e2e/support.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

const LONG: Duration = Duration::from_secs(180);

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

fn import_images() {
    let socket = std::env::var("PENPOT_E2E_CONTAINERD").expect("node.sh sets PENPOT_E2E_CONTAINERD");
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness/images.sh"))
        .args(["penpot", &socket, env!("CARGO_BIN_EXE_penpot-operator"), "2.17.0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "images.sh: {}", String::from_utf8_lossy(&out.stderr));
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-s", "--max-time", "5"]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_penpot_runs_on_a_real_kubelet_from_the_injected_pebble() {
    let Some(node) = real_node() else { return };
    let Some(c) = cluster() else { return };
    import_images();
    let ns = Namespace::new(c, "node");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    relation_secrets(c, n, "p");
    let on_the_node = format!(
        "  imagePullPolicy: Never\n  nodeSelector: {{kubernetes.io/hostname: {node}}}\n  tolerations: [{{key: penpot-operator.dev/real-node, operator: Exists, effect: NoSchedule}}]\n"
    );
    c.apply_ok(n, &format!("{}{on_the_node}", penpot_yaml("p", 2)));
    // Ready means the kubelet's probes passed: nginx's static URL and the backend's /readyz.
    wait_until(LONG, "the Penpot Ready on the real node", || {
        let p = c.get(n, "penpot/p")?;
        (condition(&p, "Ready")?["status"] == "True").then_some(())
    });

    let pods: Value = serde_json::from_str(&c.kubectl_ok(&["-n", n, "get", "pods", "-o", "json"])).unwrap();
    let pods = pods["items"].as_array().unwrap().clone();
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
    }

    // Through the Service (kube-proxy), then each pod on its own address.
    let service = c.get(n, "service/p").unwrap();
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap().to_string();
    wait_until(LONG, "the Service to answer", || {
        curl(&[&format!("http://{cluster_ip}:8080/")]).contains("Penpot frontend stand-in").then_some(())
    });
    let ip = pods[0]["status"]["podIP"].as_str().unwrap();
    assert!(curl(&[&format!("http://{ip}:8080/")]).contains("Penpot frontend stand-in"));
    let config = curl(&[&format!("http://{ip}:8080/js/config.js")]);
    assert!(config.contains("var penpotFlags = \"disable-registration enable-login-with-password\";"), "{config}");
    for (path, upstream) in [("/api/main/methods/get-profile", "backend"), ("/api/export", "exporter")] {
        let headers = curl(&["-D", "-", "-o", "/dev/null", &format!("http://{ip}:8080{path}")]);
        assert!(headers.contains(&format!("X-Stand-In: {upstream}")), "{path}: {headers}");
    }

    // Pebble runs the services as the images' user, under a read-only root.
    let pod = pods[0]["metadata"]["name"].as_str().unwrap();
    let logs = c.kubectl_ok(&["-n", n, "logs", pod, "-c", "penpot"]);
    assert!(logs.contains("[backend] facts uid=1001 gid=1001 cwd=/opt/penpot/backend home=/tmp"), "{logs}");
    assert!(logs.contains("[backend] root read-only"), "{logs}");
    let services = c.kubectl_ok(&["-n", n, "exec", pod, "-c", "exporter", "--", "/operator/bin/pebble", "services"]);
    assert!(services.lines().any(|l| l.starts_with("exporter") && l.contains("active")), "{services}");
}
