//! End-to-end tests against the real control plane from tests/harness (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok). Each test gets its own namespace and runs
//! the real `penpot-operator run` binary under a ServiceAccount bound to deploy/rbac's
//! ClusterRole. Assertions read the API server, its audit log, Pebble and nginx; never the
//! operator's own logs. Without a control plane the tests say they are skipped.

#[path = "e2e/support.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use support::*;

const LONG: Duration = Duration::from_secs(120);

#[test]
fn crd_accepts_a_full_spec_and_rejects_bad_fields_by_name() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "crd");
    let full = r#"apiVersion: penpot-operator.dev/v1alpha1
kind: Penpot
metadata: {name: full}
spec:
  publicUri: https://penpot.example.com/
  allowInsecureHttp: false
  replicas: 3
  postgresql: {secretRef: {name: pg}, maxConnections: 90}
  redis: {secretRef: {name: redis}}
  s3: {secretRef: {name: s3}}
  smtp: {secretRef: {name: smtp}, fromAddress: penpot@example.com}
  oidc: {secretRef: {name: oidc}}
  ingress: {className: nginx, host: penpot.example.com, tlsSecretName: tls, annotations: {a: b}}
  images: {penpot: "example.org/penpot:2.17.0", nginx: "example.org/penpot:2.17.0"}
  imagePullPolicy: IfNotPresent
  imagePullSecrets: [{name: regcred}]
  flags: [enable-webhooks, disable-onboarding]
  exporter: {enabled: false}
  airGapped: true
  tenant: team-a
  dnsResolver: 10.96.0.10
  ssrfAllowedHosts: [idp.internal]
  registrationDomains: [example.com]
  telemetry: true
  maxUploadSize: 1Gi
  env: {backend: {JAVA_OPTS: "-Xmx2g"}, exporter: {PENPOT_BROWSER_POOL_MAX: "3"}}
  resources: {penpot: {requests: {cpu: 500m, memory: 1Gi}}, nginx: {limits: {memory: 128Mi}}}
  nodeSelector: {disk: ssd}
  tolerations: [{key: dedicated, operator: Equal, value: penpot, effect: NoSchedule}]
  affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, podAffinityTerm: {topologyKey: kubernetes.io/hostname}}]}}
  podAnnotations: {team: design}
  podLabels: {team: design}
"#;
    let out = c.apply(&ns.name, full);
    assert!(out.ok, "a Penpot with every field set was rejected: {}", out.stderr);

    let base = "apiVersion: penpot-operator.dev/v1alpha1\nkind: Penpot\nmetadata: {name: bad}\nspec:\n";
    let cases = [
        ("  publicUri: https://a.example/\n  replicas: -1\n", "spec.replicas"),
        ("  publicUri: https://a.example/\n  flags: [turbo]\n", "spec.flags[0]"),
        ("  publicUri: ftp://a.example/\n", "spec.publicUri"),
        ("  replicas: 1\n", "spec.publicUri is required unless spec.ingress.host is set"),
        ("  publicUri: https://a.example/\n  podLabels: {app.kubernetes.io/name: x}\n", "podLabels must not set"),
        (
            "  publicUri: https://a.example/\n  ingress: {tlsSecretName: t}\n",
            "ingress.tlsSecretName needs ingress.host",
        ),
        ("  publicUri: https://a.example/\n  imagePullPolicy: Sometimes\n", "spec.imagePullPolicy"),
        (
            "  publicUri: https://a.example/\n  postgresql: {secretRef: {name: Bad_Name}}\n",
            "spec.postgresql.secretRef.name",
        ),
        ("  publicUri: https://a.example/\n  env: {backend: {X: '$PENPOT_SECRET_KEY'}}\n", "spec.env.backend.X"),
        ("  publicUri: https://a.example/\n  maxUploadSize: 1Ti\n", "spec.maxUploadSize"),
    ];
    for (spec, field) in cases {
        let out = c.apply(&ns.name, &format!("{base}{spec}"));
        assert!(!out.ok, "accepted a bad spec:\n{spec}");
        assert!(out.stderr.contains(field), "rejection of\n{spec}does not name {field:?}: {}", out.stderr);
    }
    let long = format!(
        "apiVersion: penpot-operator.dev/v1alpha1\nkind: Penpot\nmetadata: {{name: {}}}\nspec: {{publicUri: 'https://a.example/'}}\n",
        "x".repeat(46)
    );
    let out = c.apply(&ns.name, &long);
    assert!(!out.ok && out.stderr.contains("metadata.name must be at most 45 characters"), "{}", out.stderr);
}

#[test]
fn blocked_until_relations_arrive_then_ready_with_owned_objects() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "life");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);

    c.apply_ok(n, &penpot_yaml("p", 2));
    let expect_message = |message: &str| {
        wait_until(LONG, message, || {
            let p = c.get(n, "penpot/p")?;
            (status_message(&p) == message).then_some(p)
        })
    };
    let p = expect_message("waiting for postgresql, redis, s3 (Secrets p-postgresql, p-redis, p-s3 not found)");
    assert_eq!(p["status"]["phase"], "Blocked");
    assert_eq!(condition(&p, "Ready").unwrap()["status"], "False");
    assert_eq!(condition(&p, "Ready").unwrap()["reason"], "WaitingForRelations");
    assert!(c.get(n, "statefulset/p").is_none(), "a workload was created without relations");

    c.apply_ok(n, &postgresql_secret("p-postgresql", PG_PASSWORD));
    expect_message("waiting for redis, s3 (Secrets p-redis, p-s3 not found)");
    c.apply_ok(n, &redis_secret("p-redis", "6379"));
    expect_message("waiting for s3 (Secret p-s3 not found)");
    c.apply_ok(n, &s3_secret("p-s3"));
    wait_ready(c, n, "p");

    let penpot = c.get(n, "penpot/p").unwrap();
    let uid = penpot["metadata"]["uid"].as_str().unwrap();
    assert_eq!(penpot["status"]["phase"], "Active");
    assert_eq!(penpot["status"]["readyReplicas"], 2);
    assert_eq!(penpot["status"]["observedGeneration"], penpot["metadata"]["generation"]);
    for what in [
        "secret/p-config",
        "secret/p-secret-key",
        "statefulset/p",
        "service/p",
        "service/p-endpoints",
        "networkpolicy/p",
    ] {
        let obj = c.get(n, what).unwrap_or_else(|| panic!("{what} missing"));
        let owners = obj["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
        assert!(
            owners.iter().any(|o| o["uid"] == uid && o["controller"] == true),
            "{what} is not controlled by the Penpot: {owners:?}"
        );
    }
    let sts = c.get(n, "statefulset/p").unwrap();
    assert_eq!(sts["status"]["readyReplicas"], 2, "kwok did not make both pods Ready");
    let pod_names: Vec<String> = pods(c, n, "p").into_iter().map(|(name, _)| name).collect();
    assert_eq!(pod_names, ["p-0", "p-1"]);

    // What the pods would run is accepted by the real Pebble and nginx.
    let config = c.get(n, "secret/p-config").unwrap();
    check_layers_and_nginx(&config);

    // Events on the way: a Warning while blocked, a Normal once ready.
    let events = c.kubectl_ok(&["-n", n, "get", "events.events.k8s.io", "-o", "json"]);
    let events: Value = serde_json::from_str(&events).unwrap();
    let reasons: Vec<&str> = events["items"].as_array().unwrap().iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.contains(&"WaitingForRelations") && reasons.contains(&"Ready"), "events: {reasons:?}");
    // Each message the status went through is its own Event, never folded into an older one
    // of the same reason (whose note would then be stale).
    let notes: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "WaitingForRelations")
        .filter_map(|e| e["note"].as_str())
        .collect();
    for message in [
        "Blocked: waiting for postgresql, redis, s3 (Secrets p-postgresql, p-redis, p-s3 not found)",
        "Blocked: waiting for redis, s3 (Secrets p-redis, p-s3 not found)",
        "Blocked: waiting for s3 (Secret p-s3 not found)",
    ] {
        assert!(notes.contains(&message), "no Event says {message:?}: {notes:?}");
    }
    assert_no_secret_values(c, n, &[&events.to_string(), &penpot.to_string()]);
}

/// Decodes the rendered configuration from the API server and feeds it to `pebble` and `nginx -t`.
fn check_layers_and_nginx(config: &Value) {
    let data = config["data"].as_object().unwrap();
    let decode = |k: &str| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data[k].as_str().unwrap()).unwrap()).unwrap()
    };
    let tmp = tempfile::tempdir().unwrap();
    for (layer, service, on_failure) in [
        ("001-penpot.yaml", "backend", "shutdown"),
        ("001-nginx.yaml", "frontend", "shutdown"),
        ("001-exporter.yaml", "exporter", "restart"),
    ] {
        let pebble_dir = tmp.path().join(layer);
        std::fs::create_dir_all(pebble_dir.join("layers")).unwrap();
        std::fs::write(pebble_dir.join("layers").join(layer), decode(layer)).unwrap();
        let out = Command::new("pebble").args(["enter", "plan"]).env("PEBBLE", &pebble_dir).output().unwrap();
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "pebble refused {layer}: {}", String::from_utf8_lossy(&out.stderr));
        let plan: Value = serde_saphyr::from_str(&plan).unwrap();
        assert_eq!(plan["services"][service]["startup"], "enabled", "{plan}");
        assert_eq!(plan["services"][service]["override"], "replace");
        assert_eq!(plan["services"][service]["on-failure"], on_failure);
    }
    // The includes the pod's init container writes, from this machine's resolv.conf.
    let operator_dir = tmp.path().join("operator");
    let pebble = on_path("pebble").expect("pebble is on PATH");
    let sources = penpot_operator::pod_init::Sources { pebble: &pebble, ..Default::default() };
    let settings = penpot_operator::pod_init::Settings { nginx_port: 8080, resolver: None, ca_bundle: None };
    penpot_operator::pod_init::prepare(&operator_dir, &settings, &sources).expect("prepare-pod");
    let conf_dir = tmp.path().join("nginx");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let conf = decode("nginx.conf").replace("/operator/", &format!("{}/", operator_dir.display()));
    std::fs::write(conf_dir.join("nginx.conf"), conf).unwrap();
    let out = Command::new("nginx")
        .args(["-t", "-e", "stderr", "-c"])
        .arg(conf_dir.join("nginx.conf"))
        .output()
        .expect("nginx is installed");
    assert!(out.status.success(), "nginx -t failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(decode("config.js").contains("var penpotFlags = \"disable-registration enable-login-with-password\";"));
}

/// No secret value used by the tests appears in status, events or the operator's logs.
fn assert_no_secret_values(c: &Cluster, ns: &str, texts: &[&str]) {
    let logs = std::fs::read_dir(c.dir.join("logs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("operator-{ns}")))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<Vec<_>>();
    for secret in SECRET_VALUES.lines() {
        for t in texts.iter().copied().chain(logs.iter().map(String::as_str)) {
            assert!(!t.contains(secret), "a secret value leaked into status, events or logs");
        }
    }
}

#[test]
fn password_rotation_rolls_pods_and_idle_operator_writes_nothing() {
    assert!(SECRET_VALUES.lines().any(|l| l == PG_PASSWORD) && SECRET_VALUES.lines().any(|l| l == PG_PASSWORD_ROTATED));
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "rot");
    let n = ns.name.as_str();
    let (kubeconfig, user) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &["--resync-seconds", "2"]);
    ready_penpot(c, n, "p", 1);

    let before = c.get(n, "statefulset/p").unwrap();
    let old_hash = config_hash(&before);
    let old_pods = pods(c, n, "p");

    // Rotate the PostgreSQL password: new layer, new hash, pods replaced.
    c.apply_ok(n, &postgresql_secret("p-postgresql", PG_PASSWORD_ROTATED));
    let sts = wait_until(LONG, "a new config hash on the pod template", || {
        let sts = c.get(n, "statefulset/p")?;
        (config_hash(&sts) != old_hash).then_some(sts)
    });
    let update_revision = wait_until(LONG, "the rollout to finish", || {
        let sts = c.get(n, "statefulset/p")?;
        let st = &sts["status"];
        (st["updateRevision"] == st["currentRevision"] && st["readyReplicas"] == 1 && st["updatedReplicas"] == 1)
            .then(|| st["updateRevision"].as_str().unwrap_or_default().to_string())
    });
    let new_pods = pods(c, n, "p");
    assert_ne!(old_pods, new_pods, "the pods were not replaced");
    let pod = c.get(n, "pod/p-0").unwrap();
    assert_eq!(pod["metadata"]["labels"]["controller-revision-hash"], update_revision.as_str());
    let config = c.get(n, "secret/p-config").unwrap();
    let layer =
        base64::engine::general_purpose::STANDARD.decode(config["data"]["001-penpot.yaml"].as_str().unwrap()).unwrap();
    assert!(String::from_utf8(layer).unwrap().contains(PG_PASSWORD_ROTATED));
    assert_eq!(config_hash(&sts).len(), 32);
    wait_ready(c, n, "p");

    // Settled: touching an unrelated Secret and several resyncs (every 2 s) write nothing.
    std::thread::sleep(Duration::from_secs(3));
    let settled = c.writes_by(&user).len();
    let settled_requests = c.requests_by(&user).len();
    c.apply_ok(n, &secret_yaml("unrelated", &[("k", "v1")]));
    c.apply_ok(n, &secret_yaml("unrelated", &[("k", "v2")]));
    std::thread::sleep(Duration::from_secs(8));
    let after = c.writes_by(&user);
    assert_eq!(
        after.len(),
        settled,
        "the operator wrote while nothing it depends on changed: {:?}",
        &after[settled..].iter().map(|e| (e["verb"].clone(), e["objectRef"].clone())).collect::<Vec<_>>()
    );
    // The resyncs read their inputs and the StatefulSet (its status is the Penpot's), and no
    // other owned object: the watches vouch that nobody changed those since they were applied.
    let reads: Vec<(String, String)> = c.requests_by(&user)[settled_requests..]
        .iter()
        .filter(|e| e["verb"] == "get")
        .map(|e| {
            let r = &e["objectRef"];
            (r["resource"].as_str().unwrap_or_default().into(), r["name"].as_str().unwrap_or_default().into())
        })
        .collect();
    let sts_reads = reads.iter().filter(|(r, _)| r == "statefulsets").count();
    assert!(sts_reads >= 3, "four resyncs in 8 s should read the StatefulSet each time: {reads:?}");
    let owned_reads: Vec<_> = reads
        .iter()
        .filter(|(r, name)| {
            matches!(r.as_str(), "services" | "configmaps" | "networkpolicies" | "ingresses") || name == "p-config"
        })
        .collect();
    assert!(owned_reads.is_empty(), "idle resyncs re-read owned objects: {owned_reads:?}");
    assert_eq!(pods(c, n, "p"), new_pods, "pods rolled without a change");
    assert_eq!(config_hash(&c.get(n, "statefulset/p").unwrap()), config_hash(&sts));
}

#[test]
fn invalid_relation_keeps_running_pods_and_names_the_key() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "bad");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    ready_penpot(c, n, "p", 2);
    let hash = config_hash(&c.get(n, "statefulset/p").unwrap());
    let running = pods(c, n, "p");

    c.apply_ok(n, &redis_secret("p-redis", "not-a-port"));
    let p = wait_until(LONG, "status naming the bad key", || {
        let p = c.get(n, "penpot/p")?;
        status_message(&p).contains(r#"Secret "p-redis" key "port""#).then_some(p)
    });
    assert_eq!(p["status"]["phase"], "Blocked");
    assert_eq!(condition(&p, "Stalled").unwrap()["status"], "True");
    assert_eq!(condition(&p, "Stalled").unwrap()["reason"], "InvalidRelation");
    assert!(status_message(&p).contains("running pod(s) keep the last good configuration"), "{}", status_message(&p));
    // What a person sees: the key named, the value not.
    let summary = Command::new(env!("CARGO_BIN_EXE_penpot-operator"))
        .args(["status", "p", "-n", n])
        .env("KUBECONFIG", &c.kubeconfig)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&summary.stdout);
    assert!(summary.contains("Penpot") && summary.contains("Blocked (Ready=False)"), "{summary}");
    assert!(summary.contains(r#"Secret p-redis: invalid: key "port" is not a port number"#), "{summary}");
    assert!(summary.contains("Secret p-postgresql: present") && summary.contains("Warning"), "{summary}");
    assert_no_secret_values(c, n, &[&summary]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(config_hash(&c.get(n, "statefulset/p").unwrap()), hash, "bad data reached the pod template");
    assert_eq!(pods(c, n, "p"), running, "running pods were disturbed");

    // The Secret disappears entirely: still nothing torn down.
    c.kubectl_ok(&["-n", n, "delete", "secret", "p-redis"]);
    wait_until(LONG, "waiting for redis", || {
        let p = c.get(n, "penpot/p")?;
        (status_message(&p) == "waiting for redis (Secret p-redis not found)").then_some(())
    });
    assert_eq!(pods(c, n, "p"), running);
    assert!(c.get(n, "statefulset/p").is_some());

    // Fixed: back to Ready with the same configuration as before.
    c.apply_ok(n, &redis_secret("p-redis", "6379"));
    wait_ready(c, n, "p");
    assert_eq!(config_hash(&c.get(n, "statefulset/p").unwrap()), hash);
    let events = c.kubectl_ok(&["-n", n, "get", "events.events.k8s.io", "-o", "json"]);
    assert!(events.contains("InvalidRelation"));
    assert_no_secret_values(c, n, &[&events, &c.get(n, "penpot/p").unwrap().to_string()]);
}

#[test]
fn deleting_the_penpot_collects_everything_and_recreating_converges() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "gc");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    ready_penpot(c, n, "p", 1);
    let key = c.get(n, "secret/p-secret-key").unwrap()["data"].clone();

    c.kubectl_ok(&["-n", n, "delete", "penpot", "p"]);
    let owned = [
        "secret/p-config",
        "secret/p-secret-key",
        "statefulset/p",
        "service/p",
        "service/p-endpoints",
        "networkpolicy/p",
    ];
    wait_until(LONG, "garbage collection of every owned object", || {
        owned.iter().all(|w| c.get(n, w).is_none()).then_some(())
    });
    assert!(c.get(n, "secret/p-postgresql").is_some(), "a relation Secret was deleted");

    c.apply_ok(n, &penpot_yaml("p", 1));
    wait_ready(c, n, "p");
    let new_key = c.get(n, "secret/p-secret-key").unwrap()["data"].clone();
    assert_ne!(key, new_key, "a re-created Penpot gets a fresh secret key");
}

#[test]
fn restart_converges_and_hand_edits_are_reverted() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "drift");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let mut op = Operator::start(c, n, &kubeconfig, "op", &[]);

    // Killed mid-way, right after the inputs appear.
    c.apply_ok(n, &postgresql_secret("p-postgresql", PG_PASSWORD));
    c.apply_ok(n, &redis_secret("p-redis", "6379"));
    c.apply_ok(n, &s3_secret("p-s3"));
    c.apply_ok(n, &penpot_yaml("p", 1));
    wait_until(LONG, "the secret key", || c.get(n, "secret/p-secret-key"));
    op.kill();
    let mut op = Operator::start(c, n, &kubeconfig, "op2", &[]);
    wait_ready(c, n, "p");

    // The converged state is exactly what `render` computes offline for the same inputs.
    let sts = c.get(n, "statefulset/p").unwrap();
    assert!(
        render_from_cluster(c, n).contains(&config_hash(&sts)),
        "the cluster's config hash differs from an undisturbed render"
    );

    // Hand edit while the operator is down: scale the StatefulSet. The restarted operator's
    // first reconcile puts it back.
    op.kill();
    c.kubectl_ok(&["-n", n, "scale", "statefulset/p", "--replicas=3"]);
    let _op = Operator::start(c, n, &kubeconfig, "op3", &[]);
    wait_until(LONG, "the scale-up to be reverted", || {
        let sts = c.get(n, "statefulset/p")?;
        (sts["spec"]["replicas"] == 1).then_some(())
    });
    wait_ready(c, n, "p");

    // Hand edit while it runs: change the PEBBLE env var. The owned-object watch triggers a
    // reconcile that reverts it. (Both edits at once trip a StatefulSet-controller status
    // bug with kwok's instant pod deletion: status.currentReplicas -1.)
    c.kubectl_ok(&[
        "-n",
        n,
        "patch",
        "statefulset/p",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/1/env/0/value","value":"/tmp/hacked"}]"#,
    ]);
    wait_until(LONG, "the env edit to be reverted", || {
        let sts = c.get(n, "statefulset/p")?;
        (sts["spec"]["template"]["spec"]["containers"][1]["env"][0]["value"] == "/pebble").then_some(())
    });
    wait_ready(c, n, "p");
    assert_eq!(config_hash(&c.get(n, "statefulset/p").unwrap()), config_hash(&sts));

    // Objects the operator no longer reads while it trusts its watches: a hand edit of the
    // Service and a deleted dashboard ConfigMap are noticed and repaired all the same.
    c.kubectl_ok(&[
        "-n",
        n,
        "patch",
        "service/p",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/selector/app.kubernetes.io~1instance","value":"hacked"}]"#,
    ]);
    c.kubectl_ok(&["-n", n, "delete", "configmap/p-dashboard"]);
    wait_until(LONG, "the Service edit to be reverted", || {
        let svc = c.get(n, "service/p")?;
        (svc["spec"]["selector"]["app.kubernetes.io/instance"] == "p").then_some(())
    });
    wait_until(LONG, "the dashboard ConfigMap to be re-created", || c.get(n, "configmap/p-dashboard"));
}

#[test]
fn leader_election_lets_one_replica_write_and_fails_over() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "lead");
    let n = ns.name.as_str();
    let (kube_a, user_a) = operator_identity(c, n, "operator-a");
    let (kube_b, user_b) = operator_identity(c, n, "operator-b");
    let mut a = Operator::start(c, n, &kube_a, "replica-a", &["--leader-elect"]);
    let holder = wait_until(LONG, "a lease holder", || {
        let lease = c.get(n, "lease/penpot-operator-leader")?;
        lease["spec"]["holderIdentity"].as_str().map(str::to_string)
    });
    assert_eq!(holder, "replica-a");
    let mut b = Operator::start(c, n, &kube_b, "replica-b", &["--leader-elect"]);
    ready_penpot(c, n, "p", 1);

    let writes_to = |user: &str, resource: &str| {
        c.writes_by(user).iter().filter(|e| e["objectRef"]["resource"] == resource).count()
    };
    assert!(writes_to(&user_a, "statefulsets") > 0, "the leader did not write");
    assert_eq!(writes_to(&user_b, "statefulsets") + writes_to(&user_b, "penpots"), 0, "the follower wrote");

    a.kill();
    wait_until(Duration::from_secs(90), "replica-b to take the lease", || {
        let lease = c.get(n, "lease/penpot-operator-leader")?;
        (lease["spec"]["holderIdentity"] == "replica-b").then_some(())
    });
    c.kubectl_ok(&["-n", n, "patch", "penpot/p", "--type=merge", "-p", r#"{"spec":{"replicas":2}}"#]);
    wait_until(LONG, "the new leader to scale the StatefulSet", || {
        let sts = c.get(n, "statefulset/p")?;
        (sts["spec"]["replicas"] == 2).then_some(())
    });
    wait_ready(c, n, "p");
    assert!(writes_to(&user_b, "statefulsets") > 0);
    assert!(b.is_running());
}

#[test]
fn operator_serves_readiness_and_metrics_that_move() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "metrics");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _op = Operator::start(c, n, &kubeconfig, "op", &["--http-addr", &addr]);
    wait_until(LONG, "/readyz to answer 200 once the cache synced", || {
        http_get(port, "/readyz").filter(|(code, _)| *code == 200)
    });
    assert_eq!(http_get(port, "/healthz").map(|r| r.0), Some(200));
    let before = http_get(port, "/metrics").unwrap().1;
    ready_penpot(c, n, "p", 1);
    let after = wait_until(LONG, "metrics after reconciles", || {
        let body = http_get(port, "/metrics")?.1;
        (metric(&body, "penpot_operator_instances{phase=\"Active\"}") == 1.0).then_some(body)
    });
    assert!(
        metric(&after, "penpot_operator_reconciles_total") > metric(&before, "penpot_operator_reconciles_total"),
        "{after}"
    );
    assert!(after.contains("penpot_operator_reconcile_duration_seconds_bucket"), "{after}");
    assert!(after.contains("penpot_operator_watch_restarts_total"), "{after}");
}

#[test]
fn layers_with_loki_log_targets_load_in_pebble() {
    let Some(_) = cluster() else { return };
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/penpot/penpot.yaml")).unwrap();
    let with_loki = example.replace(
        "  replicas: 2\n",
        "  replicas: 2\n  dnsResolver: 10.96.0.10\n  logging:\n    loki:\n      url: http://loki.monitoring.svc:3100/loki/api/v1/push\n      labels: {team: design}\n",
    );
    assert_ne!(with_loki, example);
    let out =
        penpot_operator::cli::render::render_documents(&[("example".into(), with_loki)], || "k".repeat(64)).unwrap();
    let config = serde_saphyr::from_multiple::<Value>(&out)
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "penpot-config")
        .unwrap();
    check_layers_and_nginx(&config);
    // The plan Pebble builds forwards every service of each layer to Loki with our labels.
    let data = config["data"].as_object().unwrap();
    for (layer, services) in [
        ("001-penpot.yaml", vec!["backend"]),
        ("001-exporter.yaml", vec!["exporter"]),
        ("001-nginx.yaml", vec!["frontend"]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("layers")).unwrap();
        let text = base64::engine::general_purpose::STANDARD.decode(data[layer].as_str().unwrap()).unwrap();
        std::fs::write(tmp.path().join("layers").join(layer), text).unwrap();
        let out = Command::new("pebble").args(["enter", "plan"]).env("PEBBLE", tmp.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let plan: Value = serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
        let target = &plan["log-targets"]["loki"];
        assert_eq!(target["type"], "loki", "{plan}");
        assert_eq!(target["location"], "http://loki.monitoring.svc:3100/loki/api/v1/push");
        assert_eq!(target["services"], serde_json::json!(services));
        assert_eq!(target["labels"]["team"], "design");
        assert_eq!(target["labels"]["penpot_instance"], "penpot");
    }
}

#[test]
fn prometheus_objects_and_dashboard_appear_when_the_prometheus_operator_is_installed() {
    let Some(c) = cluster() else { return };
    install_prometheus_operator_crds(c);
    let ns = Namespace::new(c, "prom");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    ready_penpot(c, n, "p", 1);
    let uid = c.get(n, "penpot/p").unwrap()["metadata"]["uid"].clone();
    for what in ["podmonitor/p", "prometheusrule/p", "configmap/p-dashboard"] {
        let obj = c.get(n, what).unwrap_or_else(|| panic!("{what} missing"));
        assert_eq!(obj["metadata"]["ownerReferences"][0]["uid"], uid, "{what} is not owned by the Penpot");
    }
    let rule = c.get(n, "prometheusrule/p").unwrap();
    assert_eq!(rule["spec"]["groups"][0]["rules"][0]["alert"], "PenpotBackendDown");
    let dashboard = c.get(n, "configmap/p-dashboard").unwrap();
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
}

/// What the stand-in PREPL received for `email`: the requests, in order.
fn prepl_calls(c: &Cluster, email: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(c.dir.join("prepl/calls.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["params"]["email"] == email)
        .collect()
}

#[test]
fn profiles_through_the_cli_and_penpot_profile_resources() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "prof");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);

    // Not ready: no pods yet.
    let (ok, _, err) =
        profile_cli(c, &["create", "--penpot", "p", "-n", n, "--email", "x@example.com", "--fullname", "X"]);
    assert!(!ok && err.contains("penpot p is not ready"), "{err}");
    ready_penpot(c, n, "p", 1);

    // The CLI: the request reaches the backend's PREPL (through the API server's port-forward)
    // exactly, the password in it and nowhere else.
    let ada = format!("ada.{n}@example.com");
    let (ok, out, err) =
        profile_cli(c, &["create", "--penpot", "p", "-n", n, "--email", &ada, "--fullname", "Ada Lovelace"]);
    assert!(ok, "{err}");
    let password = out.lines().find_map(|l| l.strip_prefix("password: ")).expect("a password line").to_string();
    assert!(out.contains(&format!("email: {ada}")) && out.contains("fullname: Ada Lovelace"), "{out}");
    assert!(password.len() >= 16);
    let calls = prepl_calls(c, &ada);
    assert_eq!(
        calls,
        [
            json!({"cmd": "create-profile", "params": {"email": ada, "fullname": "Ada Lovelace", "password": password, "isActive": true}})
        ]
    );
    // The other verbs, each one update-profile with only its part.
    let (ok, out, err) =
        profile_cli(c, &["rename", "--penpot", "p", "-n", n, "--email", &ada, "--fullname", "Ada King"]);
    assert!(ok && out.contains("fullname: Ada King"), "{out}{err}");
    let (ok, out, err) = profile_cli(c, &["deactivate", "--penpot", "p", "-n", n, "--email", &ada]);
    assert!(ok && out.contains("deactivated"), "{out}{err}");
    let (ok, _, err) = profile_cli(c, &["activate", "--penpot", "p", "-n", n, "--email", &ada]);
    assert!(ok, "{err}");
    let calls = prepl_calls(c, &ada);
    assert_eq!(calls[1], json!({"cmd": "update-profile", "params": {"email": ada, "fullname": "Ada King"}}));
    assert_eq!(calls[2], json!({"cmd": "update-profile", "params": {"email": ada, "isActive": false}}));
    assert_eq!(calls[3], json!({"cmd": "update-profile", "params": {"email": ada, "isActive": true}}));

    let exists = format!("exists.{n}@example.com");
    let (ok, _, err) = profile_cli(c, &["create", "--penpot", "p", "-n", n, "--email", &exists, "--fullname", "E"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let clojure = format!("clojure.{n}@example.com");
    let (ok, _, err) = profile_cli(c, &["create", "--penpot", "p", "-n", n, "--email", &clojure, "--fullname", "C"]);
    assert!(!ok && err.contains("answered create-profile with an exception (Invalid token: :)"), "{err}");
    let (ok, out, err) = profile_cli(c, &["delete", "--penpot", "p", "-n", n, "--email", &ada]);
    assert!(ok && out.contains("deleted"), "{err}");
    assert_eq!(
        prepl_calls(c, &ada).last().unwrap(),
        &json!({"cmd": "delete-profile", "params": {"email": ada, "soft": true}})
    );
    let missing = format!("missing.{n}@example.com");
    for verb in ["delete", "deactivate"] {
        let (ok, _, err) = profile_cli(c, &[verb, "--penpot", "p", "-n", n, "--email", &missing]);
        assert!(!ok && err.contains("No profile found"), "{verb}: {err}");
    }

    // Declarative: a PenpotProfile creates the profile with a generated password it keeps.
    let profile = |name: &str, penpot: &str, email: &str, policy: &str, extra: &str| {
        format!(
            "apiVersion: penpot-operator.dev/v1alpha1\nkind: PenpotProfile\nmetadata: {{name: {name}}}\nspec: {{penpotRef: {{name: {penpot}}}, email: '{email}', fullname: Grace Hopper, deletionPolicy: {policy}{extra}}}\n"
        )
    };
    let ready_reason = |name: &str| {
        c.get(n, &format!("penpotprofile/{name}")).and_then(|p| {
            let ready = condition(&p, "Ready")?.clone();
            Some((
                ready["status"].as_str()?.to_string(),
                ready["reason"].as_str()?.to_string(),
                ready["message"].as_str()?.to_string(),
            ))
        })
    };
    let grace = format!("grace.{n}@example.com");
    c.apply_ok(n, &profile("grace", "p", &grace, "Delete", ""));
    wait_until(LONG, "PenpotProfile grace to be created", || ready_reason("grace").filter(|r| r.1 == "Created"));
    let secret = c.get(n, "secret/grace-password").expect("the generated password Secret");
    let stored =
        base64::engine::general_purpose::STANDARD.decode(secret["data"]["password"].as_str().unwrap()).unwrap();
    let calls = prepl_calls(c, &grace);
    assert_eq!(calls.len(), 1, "created exactly once: {calls:?}");
    assert_eq!(calls[0]["params"]["password"], String::from_utf8(stored).unwrap());
    assert_eq!(calls[0]["params"]["isActive"], true);
    let p = c.get(n, "penpotprofile/grace").unwrap();
    assert_eq!(p["metadata"]["finalizers"][0], "penpot-operator.dev/profile");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], p["metadata"]["uid"]);
    assert_eq!(p["status"]["fullname"], "Grace Hopper");

    // A password reset, declaratively: deleting the generated Secret makes a new password,
    // which update-profile sets, once, alone.
    c.kubectl_ok(&["-n", n, "delete", "secret", "grace-password"]);
    wait_until(LONG, "the new password set", || {
        ready_reason("grace").filter(|r| r.0 == "True" && r.1 == "Updated" && r.2.contains("password"))
    });
    let renewed = c.get(n, "secret/grace-password").expect("a new password Secret");
    let renewed =
        base64::engine::general_purpose::STANDARD.decode(renewed["data"]["password"].as_str().unwrap()).unwrap();
    let calls = prepl_calls(c, &grace);
    assert_eq!(calls.len(), 2, "one update after the reset: {calls:?}");
    let renewed = String::from_utf8(renewed).unwrap();
    assert_eq!(calls[1], json!({"cmd": "update-profile", "params": {"email": grace, "password": renewed}}));

    // Spec edits: a new full name and deactivation go in one update; reactivation in the next.
    c.kubectl_ok(&[
        "-n",
        n,
        "patch",
        "penpotprofile",
        "grace",
        "--type=merge",
        "-p",
        r#"{"spec":{"fullname":"Grace B. Hopper","deactivated":true}}"#,
    ]);
    wait_until(LONG, "the edit set", || ready_reason("grace").filter(|r| r.2.contains("deactivated")));
    c.kubectl_ok(&[
        "-n",
        n,
        "patch",
        "penpotprofile",
        "grace",
        "--type=merge",
        "-p",
        r#"{"spec":{"deactivated":false}}"#,
    ]);
    wait_until(LONG, "the reactivation set", || ready_reason("grace").filter(|r| r.2.contains("reactivated")));
    let calls = prepl_calls(c, &grace);
    assert_eq!(
        calls[2..],
        [
            json!({"cmd": "update-profile", "params": {"email": grace, "fullname": "Grace B. Hopper", "isActive": false}}),
            json!({"cmd": "update-profile", "params": {"email": grace, "isActive": true}}),
        ]
    );
    let p = c.get(n, "penpotprofile/grace").unwrap();
    assert_eq!((&p["status"]["fullname"], &p["status"]["deactivated"]), (&json!("Grace B. Hopper"), &json!(false)));
    // The CLI's password reset goes to the same profile.
    let (ok, out, err) = profile_cli(c, &["set-password", "--penpot", "p", "-n", n, "--email", &grace]);
    assert!(ok && out.contains("password: "), "{err}");
    assert_eq!(prepl_calls(c, &grace).len(), 5);

    // Failures show in status: an existing email is adopted, a failing command is reported,
    // a profile created deactivated is created so.
    c.apply_ok(n, &profile("dup", "p", &format!("exists.2.{n}@example.com"), "Retain", ""));
    wait_until(LONG, "AlreadyExists", || ready_reason("dup").filter(|r| r.0 == "True" && r.1 == "AlreadyExists"));
    // Not this resource's profile: a new password Secret or a new name does not touch it.
    c.kubectl_ok(&["-n", n, "delete", "secret", "dup-password"]);
    c.kubectl_ok(&["-n", n, "patch", "penpotprofile", "dup", "--type=merge", "-p", r#"{"spec":{"fullname":"Other"}}"#]);
    c.apply_ok(n, &profile("broken", "p", &format!("clojure.2.{n}@example.com"), "Delete", ""));
    let r = wait_until(LONG, "CreateFailed", || ready_reason("broken").filter(|r| r.1 == "CreateFailed"));
    assert!(r.2.contains("a Penpot before 2.8.0, which reads no JSON?"), "{r:?}");
    c.apply_ok(n, &profile("orphan", "nothere", &format!("o.{n}@example.com"), "Delete", ""));
    wait_until(LONG, "PenpotNotFound", || ready_reason("orphan").filter(|r| r.1 == "PenpotNotFound"));
    let idle = format!("idle.{n}@example.com");
    c.apply_ok(n, &profile("idle", "p", &idle, "Retain", ", deactivated: true"));
    wait_until(LONG, "created deactivated", || ready_reason("idle").filter(|r| r.1 == "Created"));
    assert_eq!(prepl_calls(c, &idle)[0]["params"]["isActive"], false);

    // Deleting: Delete runs delete-profile before the finalizer goes; Retain does not.
    c.kubectl_ok(&["-n", n, "delete", "penpotprofile", "grace", "dup", "orphan", "broken", "idle", "--timeout=90s"]);
    let calls = prepl_calls(c, &grace);
    assert_eq!(calls.last().unwrap(), &json!({"cmd": "delete-profile", "params": {"email": grace, "soft": true}}));
    assert_eq!(calls.len(), 6, "nothing else after the edits: {calls:?}");
    let existing = prepl_calls(c, &format!("exists.2.{n}@example.com"));
    assert!(existing.iter().all(|r| r["cmd"] == "create-profile"), "{existing:?}");
    assert_eq!(prepl_calls(c, &idle).len(), 1, "Retain: not deleted");
    assert_no_secret_values(c, n, &[&c.kubectl_ok(&["-n", n, "get", "events.events.k8s.io", "-o", "json"])]);
}

/// A password recovery makes a deactivated Penpot profile active again (`is-active` doubles as
/// "email verified"), so a deactivated profile is deactivated again at every resync, without
/// a status write each time, even while its password Secret is unusable; a failed try is a
/// Warning Event; once reactivated, the profile is left alone.
#[test]
fn a_deactivated_profile_is_deactivated_again_at_each_resync() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "redeact");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &["--resync-seconds", "2"]);
    ready_penpot(c, n, "p", 1);
    let email = format!("kept.{n}@example.com");
    let deactivations = || {
        let calls = prepl_calls(c, &email);
        calls.iter().filter(|r| r["cmd"] == "update-profile" && r["params"]["isActive"] == false).count()
    };
    let deactivated = |name: &str, email: &str| {
        format!(
            "apiVersion: penpot-operator.dev/v1alpha1\nkind: PenpotProfile\nmetadata: {{name: {name}}}\nspec: {{penpotRef: {{name: p}}, email: '{email}', fullname: Kept, deactivated: true}}\n"
        )
    };
    let ready = |name: &str, reason: &str| {
        let p = c.get(n, &format!("penpotprofile/{name}"))?;
        (condition(&p, "Ready")?["reason"] == reason).then_some(p)
    };
    c.apply_ok(n, &deactivated("kept", &email));
    let created = wait_until(LONG, "created deactivated", || ready("kept", "Created"));
    assert_eq!(prepl_calls(c, &email)[0]["params"]["isActive"], false);
    wait_until(LONG, "two resyncs' deactivations", || (deactivations() >= 2).then_some(()));
    let calls = prepl_calls(c, &email);
    assert!(
        calls[1..]
            .iter()
            .all(|r| *r == json!({"cmd": "update-profile", "params": {"email": email, "isActive": false}})),
        "only the deactivation is sent again: {calls:?}"
    );
    let now = c.get(n, "penpotprofile/kept").unwrap();
    assert_eq!(
        now["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"],
        "a deactivation sent again wrote status"
    );
    // An unusable password Secret holds back the password, not the deactivation.
    let unkeyed = r#"[{"op":"remove","path":"/data/password"}]"#;
    c.kubectl_ok(&["-n", n, "patch", "secret", "kept-password", "--type=json", "-p", unkeyed]);
    wait_until(LONG, "InvalidPasswordSecret", || ready("kept", "InvalidPasswordSecret"));
    let before = deactivations();
    wait_until(LONG, "deactivations going on", || (deactivations() >= before + 2).then_some(()));
    // A failed try leaves status as it is and says so in a Warning Event.
    let busy = format!("busy.{n}@example.com");
    c.apply_ok(n, &deactivated("busy", &busy));
    wait_until(LONG, "created deactivated", || ready("busy", "Created"));
    let warning = wait_until(LONG, "a DeactivationFailed Event", || {
        let events = c.kubectl_ok(&["-n", n, "get", "events.events.k8s.io", "-o", "json"]);
        let events: Value = serde_json::from_str(&events).ok()?;
        events["items"].as_array()?.iter().find(|e| e["reason"] == "DeactivationFailed").cloned()
    });
    assert_eq!((&warning["type"], &warning["regarding"]["name"]), (&json!("Warning"), &json!("busy")));
    let note = warning["note"].as_str().unwrap_or_default();
    assert!(note.contains("the backend refused update-profile: the database is busy (db-busy)"), "{note}");
    assert!(ready("busy", "Created").is_some(), "a failed deactivation changed status");
    // Reactivated: the deactivations stop.
    c.kubectl_ok(&[
        "-n",
        n,
        "patch",
        "penpotprofile",
        "kept",
        "--type=merge",
        "-p",
        r#"{"spec":{"deactivated":false}}"#,
    ]);
    wait_until(LONG, "reactivated", || {
        let calls = prepl_calls(c, &email);
        (calls.last()? == &json!({"cmd": "update-profile", "params": {"email": email, "isActive": true}})).then_some(())
    });
    let settled = prepl_calls(c, &email).len();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(prepl_calls(c, &email).len(), settled, "sent after reactivation: {:?}", prepl_calls(c, &email));
}

/// The bad-input table: every row either is refused by the API server with the field named,
/// or leaves the running pods alone while the status names the Secret and the key.
#[test]
fn bad_input_table() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "badin");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);

    // Refused by the API server, field named.
    let penpot_rows = [
        ("empty publicUri", "  publicUri: ''\n", "spec.publicUri"),
        ("wrong type", "  publicUri: https://a.example/\n  replicas: two\n", "spec.replicas"),
        (
            "secret in another namespace",
            "  publicUri: https://a.example/\n  redis: {secretRef: {name: other/redis}}\n",
            "spec.redis.secretRef.name",
        ),
        ("newline in publicUri", "  publicUri: \"https://a.example/\\nX: y\"\n", "spec.publicUri"),
        ("space in host", "  publicUri: https://a b.example/\n", "spec.publicUri"),
        ("too many replicas", "  publicUri: https://a.example/\n  replicas: 1000\n", "spec.replicas"),
    ];
    for (row, spec, field) in penpot_rows {
        let out = c.apply(
            n,
            &format!("apiVersion: penpot-operator.dev/v1alpha1\nkind: Penpot\nmetadata: {{name: bad}}\nspec:\n{spec}"),
        );
        assert!(!out.ok && out.stderr.contains(field), "{row}: expected a rejection naming {field}: {}", out.stderr);
    }

    ready_penpot(c, n, "p", 1);
    let running = pods(c, n, "p");
    let hash = config_hash(&c.get(n, "statefulset/p").unwrap());
    let big = "x".repeat(1000 * 1024);
    // (row, Secret keys, what the status must say)
    type Row<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let redis_rows: Vec<Row> = vec![
        ("empty host", vec![("hostname", String::new())], r#"key "hostname" is missing or empty"#),
        (
            "port out of range",
            vec![("hostname", "valkey".into()), ("port", "70000".into())],
            r#"key "port" is not a port number"#,
        ),
        (
            "negative port",
            vec![("hostname", "valkey".into()), ("port", "-1".into())],
            r#"key "port" is not a port number"#,
        ),
        (
            "1 MiB value",
            vec![("hostname", "valkey".into()), ("password", big)],
            r#"key "password" is longer than 4096 bytes"#,
        ),
        (
            "newline injection",
            vec![("uri", "redis://valkey:6379\nPENPOT_FLAGS=enable-x".into())],
            r#"key "uri" contains control characters"#,
        ),
        ("space in uri", vec![("uri", "redis://val key:6379".into())], r#"key "uri" is not a valid URI"#),
        ("userinfo injection", vec![("hostname", "evil@valkey".into())], r#"key "hostname" is not a valid host name"#),
        ("fragment injection", vec![("hostname", "valkey#x".into())], r#"key "hostname" is not a valid host name"#),
        (
            "wrong scheme",
            vec![("uri", "http://valkey:6379".into())],
            r#"key "uri" must start with redis:// or rediss://"#,
        ),
    ];
    for (row, pairs, expect) in &redis_rows {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Keys from the previous row must not linger: replace the Secret wholesale.
        let yaml = secret_yaml("p-redis", &pairs);
        let out = c.kubectl_in(&["-n", n, "replace", "-f", "-"], Some(&yaml));
        assert!(out.ok, "{row}: {}", out.stderr);
        let p = wait_until(LONG, row, || {
            let p = c.get(n, "penpot/p")?;
            status_message(&p).contains(expect).then_some(p)
        });
        assert!(status_message(&p).contains(r#"Secret "p-redis""#), "{row}: {}", status_message(&p));
        assert_eq!(p["status"]["phase"], "Blocked", "{row}");
        assert_eq!(pods(c, n, "p"), running, "{row}: running pods were disturbed");
        assert_eq!(config_hash(&c.get(n, "statefulset/p").unwrap()), hash, "{row}: bad data reached the pods");
    }

    // Non-UTF-8 bytes can only come through `data`.
    let out = c.kubectl_in(
        &["-n", n, "replace", "-f", "-"],
        Some("apiVersion: v1\nkind: Secret\nmetadata: {name: p-redis}\ndata: {hostname: dmFsa2V5, password: //79}\n"),
    );
    assert!(out.ok, "{}", out.stderr);
    wait_until(LONG, "non-UTF-8", || {
        status_message(&c.get(n, "penpot/p")?).contains(r#"key "password" is not valid UTF-8"#).then_some(())
    });
    assert_eq!(pods(c, n, "p"), running);

    // YAML-looking values are data, not structure: accepted, and they arrive byte for byte.
    let tricky = "a: b # {c: [d]} --- !!binary";
    let out = c.kubectl_in(
        &["-n", n, "replace", "-f", "-"],
        Some(&redis_secret("p-redis", "6379").replace(REDIS_PASSWORD, tricky)),
    );
    assert!(out.ok, "{}", out.stderr);
    wait_ready(c, n, "p");
    let config = c.get(n, "secret/p-config").unwrap();
    let layer =
        base64::engine::general_purpose::STANDARD.decode(config["data"]["001-penpot.yaml"].as_str().unwrap()).unwrap();
    let layer: Value = serde_saphyr::from_str(&String::from_utf8(layer).unwrap()).unwrap();
    let uri = layer["services"]["backend"]["environment"]["PENPOT_REDIS_URI"].as_str().unwrap();
    let decoded = percent_encoding::percent_decode_str(uri.split('@').next().unwrap().trim_start_matches("redis://:"))
        .decode_utf8()
        .unwrap();
    assert_eq!(decoded, tricky);
}

/// Fault: the operator is SIGKILLed at pseudo-random points while a rollout is under way,
/// six times over. The final state equals an undisturbed render of the same inputs, the
/// secret key was created once, and nothing exists twice.
#[test]
fn sigkilled_during_a_rollout_converges_to_the_undisturbed_state() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "kill");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    ready_penpot_with(c, n, &kubeconfig);

    let key = c.get(n, "secret/p-secret-key").unwrap()["data"].clone();
    // A small deterministic generator: reproducible kill points per run, different per process.
    let mut state = u64::from(std::process::id()) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..6 {
        if round == 2 {
            // Start a rollout between kills: new password, three replicas.
            c.apply_ok(n, &postgresql_secret("p-postgresql", PG_PASSWORD_ROTATED));
            c.kubectl_ok(&["-n", n, "patch", "penpot/p", "--type=merge", "-p", r#"{"spec":{"replicas":3}}"#]);
        }
        let mut op = Operator::start(c, n, &kubeconfig, &format!("k{round}"), &[]);
        std::thread::sleep(Duration::from_millis(50 + next() % 1500));
        op.kill(); // SIGKILL: no graceful shutdown, no lease release
    }
    let _op = Operator::start(c, n, &kubeconfig, "final", &[]);
    wait_until(LONG, "the rollout to finish", || {
        let p = c.get(n, "penpot/p")?;
        let sts = c.get(n, "statefulset/p")?;
        let st = &sts["status"];
        (condition(&p, "Ready")?["status"] == "True"
            && p["status"]["observedGeneration"] == p["metadata"]["generation"]
            && st["readyReplicas"] == 3
            && st["updateRevision"] == st["currentRevision"])
            .then_some(())
    });

    assert_eq!(c.get(n, "secret/p-secret-key").unwrap()["data"], key, "the secret key changed");
    let sts = c.get(n, "statefulset/p").unwrap();
    assert!(
        render_from_cluster(c, n).contains(&config_hash(&sts)),
        "the converged config differs from an undisturbed render"
    );
    let managed = c.kubectl_ok(&[
        "-n",
        n,
        "get",
        "secrets,services,statefulsets,networkpolicies,configmaps",
        "-l",
        "app.kubernetes.io/managed-by=penpot-operator",
        "-o",
        "jsonpath={range .items[*]}{.kind}/{.metadata.name} {end}",
    ]);
    let mut objects: Vec<&str> = managed.split_whitespace().collect();
    objects.sort();
    assert_eq!(
        objects,
        [
            "ConfigMap/p-dashboard",
            "NetworkPolicy/p",
            "Secret/p-config",
            "Secret/p-secret-key",
            "Service/p",
            "Service/p-endpoints",
            "StatefulSet/p"
        ],
        "duplicate or missing objects after the kills"
    );
    assert_eq!(pods(c, n, "p").len(), 3);
}

/// Relation Secrets and a Penpot, converged by a short-lived operator.
fn ready_penpot_with(c: &Cluster, n: &str, kubeconfig: &std::path::Path) {
    let _op = Operator::start(c, n, kubeconfig, "setup", &[]);
    ready_penpot(c, n, "p", 1);
}

/// Fault: the leader is paused (SIGSTOP) past its lease. Once the follower has taken over,
/// the resumed old leader must not write a single object: its write gate closed on its own
/// clock, before the lease could be taken. It exits non-zero to restart as a follower.
#[test]
fn a_paused_leader_stops_writing_before_the_new_leader_starts() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "pause");
    let n = ns.name.as_str();
    let (kube_a, user_a) = operator_identity(c, n, "operator-a");
    let (kube_b, user_b) = operator_identity(c, n, "operator-b");
    let holder = || {
        c.get(n, "lease/penpot-operator-leader").and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    let mut a = Operator::start(c, n, &kube_a, "replica-a", &["--leader-elect"]);
    wait_until(LONG, "replica-a to lead", || (holder()? == "replica-a").then_some(()));
    let _b = Operator::start(c, n, &kube_b, "replica-b", &["--leader-elect"]);
    ready_penpot(c, n, "p", 1);

    a.signal("STOP");
    let lease = wait_until(Duration::from_secs(90), "replica-b to take over", || {
        let lease = c.get(n, "lease/penpot-operator-leader")?;
        (lease["spec"]["holderIdentity"] == "replica-b").then_some(lease)
    });
    let takeover = lease["spec"]["acquireTime"].as_str().unwrap().to_string();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    c.kubectl_ok(&["-n", n, "patch", "penpot/p", "--type=merge", "-p", r#"{"spec":{"replicas":2}}"#]);
    a.signal("CONT");

    let status = wait_until(LONG, "the old leader to step down", || a.exited());
    assert!(!status.success(), "a leader that lost its lease must exit non-zero: {status:?}");
    wait_until(LONG, "the new leader to apply the change", || {
        (c.get(n, "statefulset/p")?["spec"]["replicas"] == 2).then_some(())
    });
    let late: Vec<Value> = c
        .writes_by(&user_a)
        .into_iter()
        .filter(|e| e["stageTimestamp"].as_str().is_some_and(|t| t > takeover.as_str()))
        .collect();
    assert!(late.is_empty(), "the paused leader wrote after the takeover at {takeover}: {late:?}");
    assert!(c.writes_by(&user_b).iter().any(|e| e["objectRef"]["resource"] == "statefulsets"));
}

/// What `render` computes offline from the inputs the cluster holds for Penpot `p`, the secret
/// key included: the state an undisturbed operator converges to.
fn render_from_cluster(c: &Cluster, n: &str) -> String {
    let inputs: Vec<(String, String)> =
        ["penpot/p", "secret/p-postgresql", "secret/p-redis", "secret/p-s3", "secret/p-secret-key", "statefulset/p"]
            .iter()
            .map(|w| (w.to_string(), c.kubectl_ok(&["-n", n, "get", w, "-o", "yaml"])))
            .collect();
    penpot_operator::cli::render::render_documents(&inputs, || unreachable!("the key Secret is in the input")).unwrap()
}

/// Image, readiness and uid of each pod of `instance`, by name.
fn pod_states(c: &Cluster, n: &str, instance: &str) -> Vec<(String, String, bool, String)> {
    let selector = format!("app.kubernetes.io/instance={instance}");
    let list: Value =
        serde_json::from_str(&c.kubectl_ok(&["-n", n, "get", "pods", "-l", &selector, "-o", "json"])).unwrap();
    let mut out: Vec<(String, String, bool, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let backend = p["spec"]["containers"].as_array().unwrap().iter().find(|c| c["name"] == "penpot").unwrap();
            let ready = p["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                backend["image"].as_str().unwrap().to_string(),
                ready,
                p["metadata"]["uid"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A version change runs in the last pod first and the others wait until it is Ready (kwok is
/// told to hold it unready, like a migration that has not finished); a downgrade afterwards is
/// refused and no pod is touched.
#[test]
fn a_version_change_rolls_one_pod_first_and_a_downgrade_is_refused() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "upgrade");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    relation_secrets(c, n, "p");
    let at = |version: &str| {
        penpot_yaml("p", 3).replace("  replicas: 3\n", &format!("  replicas: 3\n  version: {version}\n"))
    };
    c.apply_ok(n, &at("2.16.1"));
    wait_ready(c, n, "p");
    let p = c.get(n, "penpot/p").unwrap();
    assert_eq!(p["status"]["version"], "2.16.1");
    let before = pod_states(c, n, "p");
    assert!(
        before.iter().all(|(_, image, ready, _)| image == "docker.io/penpotapp/backend:2.16.1" && *ready),
        "{before:?}"
    );
    assert_eq!(before.len(), 3);

    // 2.17.0, and the new pod does not get Ready.
    let held =
        at("2.17.0").replace("spec:\n", "spec:\n  podAnnotations: {e2e.penpot-operator.dev/unready: \"true\"}\n");
    c.apply_ok(n, &held);
    let p = wait_until(LONG, "the upgrade of the first pod", || {
        let p = c.get(n, "penpot/p")?;
        (condition(&p, "Ready")?["reason"] == "UpgradingFirstPod").then_some(p)
    });
    let message = status_message(&p);
    assert!(message.contains("2.16.1 to 2.17.0") && message.contains("pod p-2"), "{message}");
    wait_until(LONG, "p-2 on 2.17.0", || {
        let states = pod_states(c, n, "p");
        states.iter().any(|(name, image, _, _)| name == "p-2" && image.ends_with(":2.17.0")).then_some(())
    });
    // Others wait: several reconciles later (status polls every 15 s while rolling) p-0 and
    // p-1 are the same pods on 2.16.1, and the StatefulSet still holds them back.
    std::thread::sleep(Duration::from_secs(20));
    let during = pod_states(c, n, "p");
    assert_eq!(during[..2], before[..2], "pods other than the first changed while it was not Ready");
    assert!(!during[2].2, "the held pod is Ready: {during:?}");
    let sts = c.get(n, "statefulset/p").unwrap();
    assert_eq!(sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 2);
    assert_eq!(sts["metadata"]["annotations"]["penpot-operator.dev/migrated-version"], "2.16.1");
    assert_eq!(c.get(n, "penpot/p").unwrap()["status"]["version"], "2.16.1");

    // The migration finishes: the first pod turns Ready, then the rest follow.
    c.apply_ok(n, &at("2.17.0"));
    wait_until(LONG, "every pod on 2.17.0 and Ready", || {
        let states = pod_states(c, n, "p");
        (states.len() == 3 && states.iter().all(|(_, image, ready, _)| image.ends_with(":2.17.0") && *ready))
            .then_some(())
    });
    wait_ready(c, n, "p");
    let p = c.get(n, "penpot/p").unwrap();
    assert_eq!(p["status"]["version"], "2.17.0");
    let sts = c.get(n, "statefulset/p").unwrap();
    assert_eq!(sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
    let events = c.kubectl_ok(&["-n", n, "get", "events.events.k8s.io", "-o", "json"]);
    assert!(events.contains("UpgradingFirstPod") && events.contains("\"Upgraded\""), "{events}");

    // Back to 2.16.1: refused, naming both versions; nothing is touched.
    let upgraded = pod_states(c, n, "p");
    let generation = sts["metadata"]["generation"].clone();
    c.apply_ok(n, &at("2.16.1"));
    let p = wait_until(LONG, "the downgrade to be refused", || {
        let p = c.get(n, "penpot/p")?;
        (condition(&p, "Ready")?["reason"] == "DowngradeRefused").then_some(p)
    });
    assert_eq!(p["status"]["phase"], "Blocked");
    let message = status_message(&p);
    assert!(message.contains("2.16.1") && message.contains("2.17.0"), "{message}");
    assert_eq!(pod_states(c, n, "p"), upgraded);
    assert_eq!(c.get(n, "statefulset/p").unwrap()["metadata"]["generation"], generation);
}

/// With `spec.upgrade.backupBeforeUpgrade` and a CloudNativePG Secret, a version change first
/// makes a `Backup` of that cluster and holds every pod on the old version until CloudNativePG
/// reports it completed (played here by patching its status; the CRD is a stub).
#[test]
fn a_pre_upgrade_backup_holds_every_pod_until_it_completed() {
    let Some(c) = cluster() else { return };
    c.kubectl_in(&["apply", "-f", "-"], Some(&stub_crd("postgresql.cnpg.io", "Backup", "backups")));
    wait_established(c, "backups.postgresql.cnpg.io");
    let ns = Namespace::new(c, "backup");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    relation_secrets(c, n, "p");
    c.kubectl_ok(&["-n", n, "label", "secret/p-postgresql", "cnpg.io/cluster=pg"]);
    let at = |version: &str| {
        penpot_yaml("p", 2).replace(
            "  replicas: 2\n",
            &format!("  replicas: 2\n  version: {version}\n  upgrade: {{backupBeforeUpgrade: true}}\n"),
        )
    };
    c.apply_ok(n, &at("2.16.1"));
    wait_ready(c, n, "p");
    assert!(c.get(n, "backup.postgresql.cnpg.io/p-before-2-16-1").is_none(), "a first install made a backup");
    let before = pod_states(c, n, "p");

    c.apply_ok(n, &at("2.17.0"));
    let p = wait_until(LONG, "the pre-upgrade backup", || {
        let p = c.get(n, "penpot/p")?;
        (condition(&p, "Ready")?["reason"] == "BackingUpBeforeUpgrade").then_some(p)
    });
    assert!(status_message(&p).contains("p-before-2-17-0"), "{}", status_message(&p));
    let backup = c.get(n, "backup.postgresql.cnpg.io/p-before-2-17-0").expect("the Backup");
    assert_eq!(backup["spec"]["cluster"]["name"], "pg");
    assert_eq!(backup["metadata"]["ownerReferences"][0]["uid"], p["metadata"]["uid"]);
    // No pod moves while the backup runs.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(pod_states(c, n, "p"), before);
    let sts = c.get(n, "statefulset/p").unwrap();
    assert_eq!(sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 2);

    c.kubectl_ok(&[
        "-n",
        n,
        "patch",
        "backup.postgresql.cnpg.io/p-before-2-17-0",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"completed"}}"#,
    ]);
    wait_until(LONG, "every pod on 2.17.0 and Ready after the backup", || {
        let states = pod_states(c, n, "p");
        (states.len() == 2 && states.iter().all(|(_, image, ready, _)| image.ends_with(":2.17.0") && *ready))
            .then_some(())
    });
    wait_ready(c, n, "p");
    assert_eq!(c.get(n, "penpot/p").unwrap()["status"]["version"], "2.17.0");
}
