//! e2e: tenants who try to use the operator against the cluster (issue 14). Each test asserts
//! the outcome and that another Penpot in the same operator's care keeps reconciling.

#[path = "e2e/support.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;

const LONG: Duration = Duration::from_secs(120);

/// An identity provider that misbehaves, on the host's global address (not loopback, which
/// the operator refuses): `/bomb/` streams an endless JSON body, `/redirect/` answers 302 to
/// `/good/`, `/good/` answers a valid provider configuration. Records the paths it was asked.
struct HostileIdp {
    base: String,
    paths: Arc<Mutex<Vec<String>>>,
}

impl HostileIdp {
    fn start() -> HostileIdp {
        let host = std::env::var("PENPOT_E2E_HOST_IP").ok().filter(|h| !h.is_empty()).unwrap_or("127.0.0.1".into());
        let listener = TcpListener::bind((host.as_str(), 0)).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (seen, good) = (paths.clone(), base.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, good) = (seen.clone(), good.clone());
                std::thread::spawn(move || answer(stream, &seen, &good));
            }
        });
        HostileIdp { base, paths }
    }

    fn asked(&self, prefix: &str) -> usize {
        self.paths.lock().unwrap().iter().filter(|p| p.starts_with(prefix)).count()
    }
}

fn answer(mut stream: TcpStream, seen: &Mutex<Vec<String>>, base: &str) {
    let mut line = String::new();
    if BufReader::new(&stream).read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
    seen.lock().unwrap().push(path.clone());
    if path.starts_with("/bomb/") {
        // 2 GiB, sent until the reader hangs up.
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"a\":\"");
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..2048 {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
    } else if path.starts_with("/redirect/") {
        let to = format!("{base}/good/.well-known/openid-configuration");
        let _ =
            write!(stream, "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    } else {
        let body = format!(
            r#"{{"issuer":"{base}/good/","authorization_endpoint":"{base}/auth","token_endpoint":"{base}/token","userinfo_endpoint":"{base}/userinfo"}}"#
        );
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

/// A Penpot with OIDC (and the SMTP it needs) from `issuer`.
fn oidc_penpot(c: &Cluster, ns: &str, name: &str, issuer: &str) {
    relation_secrets(c, ns, name);
    c.apply_ok(
        ns,
        &secret_yaml(
            &format!("{name}-smtp"),
            &[("host", "mail.example.com"), ("port", "587"), ("transport_security", "starttls")],
        ),
    );
    c.apply_ok(
        ns,
        &secret_yaml(
            &format!("{name}-oidc"),
            &[("client_id", "penpot"), ("client_secret", "oidc-client-secret"), ("issuer_url", issuer)],
        ),
    );
    let spec = format!(
        "{}  smtp: {{secretRef: {{name: {name}-smtp}}, fromAddress: penpot@example.com}}\n  oidc: {{secretRef: {{name: {name}-oidc}}}}\n",
        penpot_yaml(name, 1)
    );
    c.apply_ok(ns, &spec);
}

fn blocked_message(c: &Cluster, ns: &str, name: &str) -> String {
    wait_until(LONG, &format!("{name} Blocked on discovery"), || {
        let p = c.get(ns, &format!("penpot/{name}"))?;
        let message = status_message(&p);
        message.contains("discovery from").then_some(message)
    })
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix(" kB")?.trim().parse().ok()).unwrap_or(0)
}

/// Issuers that point inside the cluster are refused after resolution; a redirect is not
/// followed; a 2 GiB body is cut at 64 KiB; status says only "discovery failed", the log says
/// why; and a well-behaved Penpot next to them becomes Ready.
#[test]
fn oidc_discovery_cannot_be_aimed_inside_the_cluster() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "ssrf");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let mut op = Operator::start(c, n, &kubeconfig, "op", &[]);
    let idp = HostileIdp::start();
    // Something that answers on loopback, as the operator's own /metrics or a sidecar would.
    let loopback = TcpListener::bind("127.0.0.1:0").unwrap();
    let loopback_port = loopback.local_addr().unwrap().port();
    let host = idp.base.trim_start_matches("http://").split(':').next().unwrap().to_string();

    let cases = [
        ("metadata", "http://169.254.169.254/latest/meta-data/".to_string(), "a link-local address (cloud metadata)"),
        ("loopback", format!("http://127.0.0.1:{loopback_port}/"), "a loopback address"),
        (
            "localhost",
            format!("http://localhost:{loopback_port}/"),
            "resolves only to refused addresses (a loopback address)",
        ),
        ("kubelet", format!("https://{host}:10250/"), "a kubelet or etcd port"),
        ("redirect", format!("{}/redirect/", idp.base), "redirects are not followed"),
        ("bomb", format!("{}/bomb/", idp.base), "longer than 65536 bytes"),
    ];
    // A well-behaved Penpot first: the operator's memory once it has reconciled something.
    oidc_penpot(c, n, "good", &format!("{}/good/", idp.base));
    wait_ready(c, n, "good");
    let before = rss_kib(op.pid());
    for (name, issuer, _) in &cases {
        oidc_penpot(c, n, name, issuer);
    }
    // Another one next to the hostile ones.
    oidc_penpot(c, n, "good2", &format!("{}/good/", idp.base));
    wait_ready(c, n, "good2");

    let log = || std::fs::read_to_string(&op.log).unwrap_or_default();
    for (name, issuer, why) in &cases {
        let message = blocked_message(c, n, name);
        let url = format!("{issuer}.well-known/openid-configuration");
        assert_eq!(
            message,
            format!("oidc relation: discovery from {url} failed (the operator's log says why; retried every 30 s)"),
            "{name}: status must not tell a tenant what the operator reached"
        );
        wait_until(LONG, &format!("the log line saying why {name} failed"), || {
            log()
                .lines()
                .any(|l| l.contains("OIDC discovery failed") && l.contains(&url) && l.contains(why))
                .then_some(())
        });
    }
    // Both good Penpots share one cached discovery; the redirect added nothing.
    assert_eq!(idp.asked("/good/"), 1, "the redirect must not be followed");
    assert!(idp.asked("/bomb/") >= 1);
    let after = rss_kib(op.pid());
    eprintln!("operator RSS: {before} KiB before, {after} KiB after the 2 GiB response");
    assert!(after < before + 32 * 1024, "the operator's memory grew from {before} to {after} KiB");
    assert!(op.is_running(), "the operator must survive every issuer");
}

/// Spec values that would reach further than their own Penpot are refused by the API server,
/// the field named: `$` in Loki labels or URL (Pebble expands variables, the secret key among
/// them), a PenpotProfile's malformed references. A dotted Penpot name (the API server allows
/// it; Services do not) is Stalled by the operator, naming metadata.name, with nothing applied.
#[test]
fn spec_values_that_reach_further_are_refused_with_the_field_named() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "tenant-input");
    let penpot = |name: &str, extra: &str| {
        format!(
            "apiVersion: penpot-operator.dev/v1alpha1\nkind: Penpot\nmetadata: {{name: {name}}}\nspec:\n  publicUri: https://a.example/\n{extra}"
        )
    };
    let cases = [
        (
            penpot("p", "  logging: {loki: {url: 'http://loki:3100/push', labels: {team: '$PENPOT_SECRET_KEY'}}}\n"),
            "spec.logging.loki.labels.team",
        ),
        (penpot("p", "  logging: {loki: {url: 'http://loki:3100/$PENPOT_SECRET_KEY'}}\n"), "spec.logging.loki.url"),
        (
            "apiVersion: penpot-operator.dev/v1alpha1\nkind: PenpotProfile\nmetadata: {name: x}\nspec: {penpotRef: {name: Bad.Name}, email: a@b.c, fullname: A}\n".to_string(),
            "spec.penpotRef.name",
        ),
        (
            "apiVersion: penpot-operator.dev/v1alpha1\nkind: PenpotProfile\nmetadata: {name: x}\nspec: {penpotRef: {name: p}, email: a@b.c, fullname: A, passwordSecretRef: {name: '../x'}}\n".to_string(),
            "spec.passwordSecretRef.name",
        ),
    ];
    for (yaml, field) in cases {
        let out = c.apply(&ns.name, &yaml);
        assert!(!out.ok, "accepted:\n{yaml}");
        assert!(out.stderr.contains(field), "the refusal of\n{yaml}does not name {field:?}: {}", out.stderr);
    }

    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    relation_secrets(c, n, "team.a");
    c.apply_ok(n, &penpot_yaml("team.a", 1));
    let message = wait_until(LONG, "team.a Stalled", || {
        let p = c.get(n, "penpot/team.a")?;
        let message = status_message(&p);
        message.contains("metadata.name").then_some(message)
    });
    assert!(message.contains("must be a DNS label"), "{message}");
    assert!(c.get(n, "statefulset/team.a").is_none() && c.get(n, "service/team.a").is_none(), "nothing is applied");
}

/// A relation Secret rewritten 20 times a second for 30 s: the debounce folds the storm, so
/// the StatefulSet's pod template changes a handful of times rather than hundreds, the last
/// value is what runs, and another Penpot created during the storm becomes Ready.
#[test]
fn a_flapping_relation_secret_does_not_roll_the_pods_on_every_value() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "flap");
    let n = ns.name.clone();
    let (kubeconfig, _) = operator_identity(c, &n, "penpot-operator");
    let _op = Operator::start(c, &n, &kubeconfig, "op", &[]);
    ready_penpot(c, &n, "p", 1);
    let generation = |c: &Cluster| c.get(&n, "statefulset/p").unwrap()["metadata"]["generation"].as_i64().unwrap();
    let before = generation(c);

    let admin = c.kubeconfig.clone();
    let storm = std::thread::spawn({
        let n = n.clone();
        move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                use k8s_openapi::api::core::v1::Secret;
                use kube::api::{Patch, PatchParams};
                let kubeconfig = kube::config::Kubeconfig::read_from(&admin).unwrap();
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
                let secrets: kube::Api<Secret> = kube::Api::namespaced(kube::Client::try_from(config).unwrap(), &n);
                let start = std::time::Instant::now();
                let mut writes = 0u32;
                while start.elapsed() < Duration::from_secs(30) {
                    let port = 6379 + (writes % 2) + 2 * u32::from(start.elapsed() >= Duration::from_secs(29));
                    let patch = serde_json::json!({"stringData": {"port": port.to_string()}});
                    secrets.patch("p-redis", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
                    writes += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                writes
            })
        }
    });
    // Another tenant's Penpot, during the storm.
    ready_penpot(c, &n, "q", 1);
    let writes = storm.join().unwrap();
    // The last value written is 6381 or 6382; the operator settles on it.
    let last = c.get(&n, "secret/p-redis").unwrap()["data"]["port"].as_str().unwrap().to_string();
    wait_until(LONG, "the last value to be rendered", || {
        let config = c.get(&n, "secret/p-config")?;
        let layer = config["data"]["001-penpot.yaml"].as_str()?;
        use base64::Engine;
        let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(layer).ok()?).ok()?;
        let port = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&last).ok()?).ok()?;
        text.contains(&format!(":{port}")).then_some(())
    });
    let rollouts = generation(c) - before;
    eprintln!("{writes} Secret writes in 30 s; {rollouts} pod template changes");
    assert!(writes >= 200, "the storm was too weak to show anything: {writes} writes");
    assert!(rollouts <= 5, "{rollouts} pod template changes for one storm of {writes} writes");
}

/// A pod with the Penpot's labels, Ready and first in name order, made by someone who may
/// create pods: the operator's port-forward to the PREPL (and the password in its request)
/// still goes only to a pod of the Penpot's own StatefulSet, as the API server's audit log
/// shows; and it never execs.
#[test]
fn a_look_alike_pod_never_receives_the_profile_request() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "spoof");
    let n = ns.name.as_str();
    let (kubeconfig, user) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    ready_penpot(c, n, "p", 1);
    c.apply_ok(
        n,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a-spoof, labels: {app.kubernetes.io/name: penpot, app.kubernetes.io/instance: p}}\nspec: {containers: [{name: penpot, image: evil}]}\n",
    );
    wait_until(LONG, "the look-alike Ready", || {
        let pod = c.get(n, "pod/a-spoof")?;
        let ready =
            pod["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(())
    });
    let email = format!("grace.{n}@example.com");
    c.apply_ok(n, &penpot_profile_yaml("grace", "p", &email));
    wait_profile(c, n, "grace", "Created");
    let requests = c.requests_by(&user);
    let to = |subresource: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|e| e["objectRef"]["subresource"] == subresource)
            .map(|e| e["objectRef"]["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let forwards = to("portforward");
    assert!(!forwards.is_empty(), "no port-forward in the audit log");
    assert!(forwards.iter().all(|pod| pod == "p-0"), "the port-forward went to {forwards:?}");
    assert_eq!(to("exec"), Vec::<String>::new());
}

/// What a cluster-wide install's account may do outside the Penpots' business: nothing in
/// kube-system's Leases, no pods, no nodes, no RBAC.
#[test]
fn the_operators_account_cannot_touch_the_control_plane() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "rights");
    let n = ns.name.as_str();
    c.kubectl_ok(&["-n", n, "create", "serviceaccount", "penpot-operator"]);
    let binding = format!("e2e-rights-{n}");
    c.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        &binding,
        "--clusterrole=penpot-operator",
        &format!("--serviceaccount={n}:penpot-operator"),
    ]);
    let leader =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rbac/leader-election.yaml")).unwrap();
    c.kubectl_in(
        &["apply", "-n", n, "-f", "-"],
        Some(&leader.replace("namespace: penpot-operator", &format!("namespace: {n}"))),
    );
    let who = format!("system:serviceaccount:{n}:penpot-operator");
    let can = |verb: &str, what: &str, namespace: &str| {
        c.kubectl(&["auth", "can-i", verb, what, "-n", namespace, "--as", &who]).stdout.trim().to_string()
    };
    let checks = [
        ("update", "leases", "kube-system", "no"),
        ("get", "leases", "kube-system", "no"),
        ("update", "leases", n, "yes"),
        ("list", "leases", n, "no"),
        ("create", "pods", "kube-system", "no"),
        ("delete", "pods", n, "no"),
        ("get", "nodes", "default", "no"),
        ("create", "rolebindings", n, "no"),
        ("update", "penpots", n, "no"),
        ("get", "secrets", n, "yes"),
    ];
    let answers: Vec<(String, &str)> = checks.iter().map(|(v, w, ns, expected)| (can(v, w, ns), *expected)).collect();
    let _ = c.kubectl(&["delete", "clusterrolebinding", &binding]);
    for ((verb, what, namespace, _), (answer, expected)) in checks.iter().zip(answers) {
        assert_eq!(answer, expected, "can the operator {verb} {what} in {namespace}?");
    }
}

/// Beyond the debounce: two relation changes a few seconds apart roll the pods twice, but the
/// second waits out the rollout interval (15 s after the operator last changed the
/// StatefulSet), and status says so meanwhile.
#[test]
fn a_second_change_soon_after_a_rollout_waits_for_the_interval() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "pace");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    ready_penpot(c, n, "p", 1);
    let hash = || config_hash(&c.get(n, "statefulset/p").unwrap());
    // Past the interval since the install: the first change goes at once.
    std::thread::sleep(Duration::from_secs(16));
    let installed = hash();
    c.apply_ok(n, &redis_secret("p-redis", "6380"));
    let first = std::time::Instant::now();
    let second_hash = wait_until(LONG, "the first change applied", || Some(hash()).filter(|h| *h != installed));
    let first_took = first.elapsed();
    c.apply_ok(n, &redis_secret("p-redis", "6381"));
    let message = wait_until(LONG, "the second change deferred", || {
        let p = c.get(n, "penpot/p")?;
        (condition(&p, "Reconciling")?["reason"] == "RolloutDeferred").then(|| status_message(&p))
    });
    assert!(message.contains("the pods roll at most once every 15 s"), "{message}");
    wait_until(LONG, "the second change applied", || Some(hash()).filter(|h| *h != second_hash));
    let between = first.elapsed();
    eprintln!("first change applied after {first_took:?}, the second {between:?} after the first");
    assert!(first_took < Duration::from_secs(5), "a single change was slowed: {first_took:?}");
    assert!(between >= Duration::from_secs(13), "the second change came {between:?} after the first");
}

/// A PenpotProfile whose Penpot is scaled to 0 cannot run delete-profile anywhere: its
/// deletion is not held (the namespace could never go), and a Warning Event says the profile
/// stays in Penpot.
#[test]
fn a_profile_of_a_scaled_down_penpot_does_not_hold_its_deletion() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "finalizer");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    ready_penpot(c, n, "p", 1);
    let email = format!("ada.{n}@example.com");
    c.apply_ok(n, &penpot_profile_yaml("ada", "p", &email));
    wait_profile(c, n, "ada", "Created");
    c.kubectl_ok(&["-n", n, "patch", "penpot", "p", "--type", "merge", "-p", r#"{"spec": {"replicas": 0}}"#]);
    let deleted = c.kubectl(&["-n", n, "delete", "penpotprofile", "ada", "--timeout=60s"]);
    assert!(deleted.ok, "the deletion was held: {}", deleted.stderr);
    let events = c.kubectl_ok(&["-n", n, "get", "events.events.k8s.io", "-o", "json"]);
    let events: serde_json::Value = serde_json::from_str(&events).unwrap();
    let warning = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "ProfileNotDeleted")
        .unwrap_or_else(|| panic!("no ProfileNotDeleted Event: {events}"));
    assert_eq!(warning["type"], "Warning");
    assert!(warning["note"].as_str().unwrap().contains("scaled to 0"), "{warning}");
}
