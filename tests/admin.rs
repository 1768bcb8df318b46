//! e2e of what issue 15 gave admins, on the test control plane (kwok's node): filesystem
//! storage, the workload ServiceAccount with keyless S3, the CA bundle, the Gateway API route,
//! and the schema rules guarding them. What the API server holds is asserted; the pods these
//! features change really run in tests/node.rs.

#[path = "e2e/support.rs"]
mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const LONG: Duration = Duration::from_secs(120);

fn base(name: &str) -> String {
    format!(
        "apiVersion: penpot-operator.dev/v1alpha1\nkind: Penpot\nmetadata: {{name: {name}}}\nspec:\n  publicUri: https://a.example/\n"
    )
}

#[test]
fn schema_rules_of_storage_identity_bundle_and_gateway_name_their_fields() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "admin-crd");
    let full = format!(
        "{}  replicas: 2\n  storage: {{filesystem: {{size: 5Gi, storageClassName: nfs, accessMode: ReadWriteMany}}}}\n  serviceAccount: {{annotations: {{eks.amazonaws.com/role-arn: 'arn:aws:iam::1:role/p'}}}}\n  caBundle: {{configMapRef: {{name: corp-ca, key: ca.pem}}}}\n  gateway: {{parentRefs: [{{name: shared, namespace: infra, sectionName: https}}], hostnames: [design.example.com]}}\n",
        base("full")
    );
    let out = c.apply(&ns.name, &full);
    assert!(out.ok, "every new field set, validly: {}", out.stderr);
    let cases = [
        (
            "  s3: {secretRef: {name: s3}}\n  storage: {filesystem: {}}\n",
            "spec.s3 and spec.storage.filesystem are exclusive",
        ),
        ("  replicas: 2\n  storage: {filesystem: {}}\n", "accessMode must be ReadWriteMany with more than one replica"),
        ("  storage: {filesystem: {size: 1Ti5}}\n", "spec.storage.filesystem.size"),
        ("  serviceAccount: {}\n", "serviceAccount needs exactly one of name"),
        ("  serviceAccount: {name: a, annotations: {x: 'z'}}\n", "serviceAccount needs exactly one of name"),
        ("  caBundle: {}\n", "caBundle needs exactly one of secretRef and configMapRef"),
        ("  caBundle: {secretRef: {name: a, key: 'a/b'}}\n", "spec.caBundle.secretRef.key"),
        ("  gateway: {parentRefs: []}\n", "spec.gateway.parentRefs"),
        ("  gateway: {parentRefs: [{name: g}], hostnames: ['Bad Host']}\n", "spec.gateway.hostnames[0]"),
    ];
    for (spec, message) in cases {
        let out = c.apply(&ns.name, &format!("{}{spec}", base("bad")));
        assert!(!out.ok, "accepted:\n{spec}");
        assert!(out.stderr.contains(message), "rejection of\n{spec}does not say {message:?}: {}", out.stderr);
    }
}

/// A hostPath PersistentVolume only `class` claims bind to (the control plane has no
/// provisioner); the PV controller binds it like any.
fn volume(c: &Cluster, class: &str, mode: &str) {
    c.kubectl_in(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {class}}}\nspec:\n  storageClassName: {class}\n  capacity: {{storage: 5Gi}}\n  accessModes: [{mode}]\n  hostPath: {{path: /tmp/{class}, type: DirectoryOrCreate}}\n"
        )),
    );
}

/// One key of the Penpot `p`'s rendered config Secret, decoded.
fn config_text(c: &Cluster, ns: &str, key: &str) -> String {
    let config = c.get(ns, "secret/p-config").expect("the config Secret");
    let encoded = config["data"][key].as_str().unwrap_or_else(|| panic!("no key {key} in the config Secret"));
    String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).unwrap()).unwrap()
}

fn message(c: &Cluster, ns: &str, name: &str) -> String {
    c.get(ns, &format!("penpot/{name}")).map(|p| status_message(&p)).unwrap_or_default()
}

#[test]
fn filesystem_storage_makes_a_claim_that_outlives_a_switch_to_s3_and_identity_makes_s3_keys_optional() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "admin-fs");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    c.apply_ok(n, &postgresql_secret("p-postgresql", PG_PASSWORD));
    c.apply_ok(n, &redis_secret("p-redis", "6379"));
    let without_storage = penpot_yaml("p", 1).replace("  s3:\n    secretRef: {name: p-s3}\n", "");
    c.apply_ok(n, &without_storage);
    wait_until(LONG, "status naming both ways to store assets", || {
        message(c, n, "p").contains("s3 or storage.filesystem").then_some(())
    });

    let class = format!("assets-{n}");
    volume(c, &class, "ReadWriteOnce");
    let filesystem = format!("{without_storage}  storage:\n    filesystem: {{size: 1Gi, storageClassName: {class}}}\n");
    c.apply_ok(n, &filesystem);
    wait_ready(c, n, "p");
    let claim = c.get(n, "pvc/p-assets").expect("the assets claim");
    let uid = c.get(n, "penpot/p").unwrap()["metadata"]["uid"].clone();
    assert_eq!(claim["metadata"]["ownerReferences"][0]["uid"], uid);
    assert_eq!(claim["spec"]["accessModes"], serde_json::json!(["ReadWriteOnce"]));
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    wait_until(LONG, "the claim bound to its volume", || {
        (c.get(n, "pvc/p-assets")?["status"]["phase"] == "Bound").then_some(())
    });
    let sts = c.get(n, "statefulset/p").unwrap();
    let pod = &sts["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "assets").expect("assets volume");
    assert_eq!(volume["persistentVolumeClaim"]["claimName"], "p-assets");
    let layer = config_text(c, n, "001-penpot.yaml");
    assert!(layer.contains("PENPOT_OBJECTS_STORAGE_BACKEND: fs"), "{layer}");
    assert!(!layer.contains("AWS_ACCESS_KEY_ID"), "{layer}");

    // To S3 with a cloud identity and a bucket-only Secret: the keys are not needed, the
    // ServiceAccount is made, and the claim with the uploaded files stays.
    c.apply_ok(n, &secret_yaml("p-s3", &[("bucket", "penpot"), ("region", "eu-west-1")]));
    let identity = format!(
        "{}  serviceAccount:\n    annotations: {{eks.amazonaws.com/role-arn: 'arn:aws:iam::1:role/penpot'}}\n",
        penpot_yaml("p", 1)
    );
    c.apply_ok(n, &identity);
    let account = wait_until(LONG, "the workload ServiceAccount", || c.get(n, "serviceaccount/p"));
    assert_eq!(account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], "arn:aws:iam::1:role/penpot");
    assert_eq!(account["automountServiceAccountToken"], false);
    assert_eq!(account["metadata"]["ownerReferences"][0]["uid"], uid);
    wait_until(LONG, "the pods on the ServiceAccount", || {
        let sts = c.get(n, "statefulset/p")?;
        (sts["spec"]["template"]["spec"]["serviceAccountName"] == "p").then_some(())
    });
    wait_ready(c, n, "p");
    assert!(c.get(n, "pvc/p-assets").is_some(), "the assets claim is never pruned");

    // Without the identity a bucket-only Secret is refused, naming the key; the ServiceAccount
    // goes, the running StatefulSet stays.
    c.apply_ok(n, &penpot_yaml("p", 1));
    wait_until(LONG, "status naming the missing key", || {
        let m = message(c, n, "p");
        (m.contains("\"p-s3\"") && m.contains("\"access-key\"")).then_some(())
    });
    assert!(c.get(n, "statefulset/p").is_some(), "nothing torn down");
}

/// A self-signed test CA (openssl, P-256).
const CA_ONE: &str = include_str!("e2e/test-ca.pem");

fn ca_config_map(pem: &str) -> String {
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: corp-ca}}\ndata:\n  ca.crt: |\n{indented}")
}

#[test]
fn a_ca_bundle_from_a_config_map_reaches_the_pods_and_its_changes_roll_them() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "admin-ca");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    relation_secrets(c, n, "p");
    c.apply_ok(n, &format!("{}  caBundle:\n    configMapRef: {{name: corp-ca}}\n", penpot_yaml("p", 1)));
    wait_until(LONG, "waiting for the ConfigMap, named", || {
        message(c, n, "p").contains("caBundle (ConfigMap corp-ca not found)").then_some(())
    });
    c.apply_ok(n, &ca_config_map(CA_ONE));
    wait_ready(c, n, "p");
    let config = c.get(n, "secret/p-config").unwrap();
    assert!(config["data"]["ca-bundle.pem"].is_string(), "the bundle is in the config Secret");
    let sts = c.get(n, "statefulset/p").unwrap();
    let init = &sts["spec"]["template"]["spec"]["initContainers"][0];
    assert!(init["command"].as_array().unwrap().iter().any(|a| a == "--ca-bundle"), "{init}");
    let layer = config_text(c, n, "001-penpot.yaml");
    assert!(
        layer.contains("JAVA_TOOL_OPTIONS") && layer.contains("-Djavax.net.ssl.trustStore=/operator/ca/truststore.jks"),
        "{layer}"
    );
    let hash = config_hash(&sts);

    // A second CA in the ConfigMap: the watch sees it, the pods roll.
    c.apply_ok(n, &ca_config_map(&format!("{CA_ONE}{CA_ONE}")));
    wait_until(LONG, "a new configuration after the bundle changed", || {
        let sts = c.get(n, "statefulset/p")?;
        (config_hash(&sts) != hash).then_some(())
    });

    // Garbage in the ConfigMap: refused naming the object and key, the pods keep running.
    let before = c.get(n, "statefulset/p").unwrap();
    c.apply_ok(n, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: corp-ca}\ndata: {ca.crt: not a certificate}\n");
    wait_until(LONG, "status naming the bundle's problem", || {
        let m = message(c, n, "p");
        m.contains("spec.caBundle: ConfigMap corp-ca key \"ca.crt\" holds no PEM certificate").then_some(())
    });
    let p = c.get(n, "penpot/p").unwrap();
    assert_eq!(condition(&p, "Stalled").map(|s| s["status"].clone()), Some(Value::from("True")), "{p}");
    let after = c.get(n, "statefulset/p").unwrap();
    assert_eq!(config_hash(&after), config_hash(&before), "a bad bundle changes nothing that runs");
}

/// Gateway API's own CRDs, from its pinned module (tests/harness/build.sh copies them).
fn install_gateway_api(c: &Cluster) {
    let cache = std::env::var("PENPOT_E2E_CACHE").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        let home = std::env::var("XDG_CACHE_HOME")
            .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
        format!("{home}/penpot-operator-e2e")
    });
    for crd in ["gatewayclasses", "gateways", "httproutes"] {
        let file = format!("{cache}/crds/gateway.networking.k8s.io_{crd}.yaml");
        assert!(std::path::Path::new(&file).exists(), "{file} is missing: run tests/harness/build.sh");
        let out = c.kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &file]);
        assert!(out.ok, "{file}: {}", out.stderr);
        wait_established(c, &format!("{crd}.gateway.networking.k8s.io"));
    }
}

/// A Penpot asking for an HTTPRoute before the cluster serves the Gateway API says so, and
/// takes the CRDs up within a minute of their install (no watch tells the operator; before,
/// it took up to ten); its route is pruned when `spec.gateway` goes.
#[test]
fn an_http_route_with_the_real_gateway_api_crds_and_pruned_when_dropped() {
    let Some(c) = cluster() else { return };
    // Only this test uses the Gateway API: a rerun on the same cluster starts without it too.
    for crd in ["gatewayclasses", "gateways", "httproutes"] {
        let name = format!("crd/{crd}.gateway.networking.k8s.io");
        c.kubectl_ok(&["delete", &name, "--ignore-not-found", "--wait=true", "--timeout=60s"]);
    }
    let ns = Namespace::new(c, "admin-gw");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    relation_secrets(c, n, "p");
    let gateway = "  gateway:\n    parentRefs: [{name: shared, namespace: infra, sectionName: https}]\n";
    c.apply_ok(n, &format!("{}{gateway}", penpot_yaml("p", 1)));
    let waiting = wait_until(LONG, "p to say it lacks the Gateway API", || {
        let p = c.get(n, "penpot/p")?;
        let ready = condition(&p, "Ready")?;
        let message = ready["message"].as_str()?.to_string();
        message.contains("Gateway API").then_some(message)
    });
    assert!(waiting.contains("install its CRDs or use spec.ingress"), "{waiting}");
    install_gateway_api(c);
    wait_until(Duration::from_secs(90), "p to take up the Gateway API", || c.get(n, "httproute/p"));
    wait_ready(c, n, "p");
    let route = c.get(n, "httproute/p").expect("the HTTPRoute");
    let uid = c.get(n, "penpot/p").unwrap()["metadata"]["uid"].clone();
    assert_eq!(route["metadata"]["ownerReferences"][0]["uid"], uid);
    assert_eq!(route["spec"]["hostnames"], serde_json::json!(["p.example.com"]));
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "shared");
    let backend = &route["spec"]["rules"][0]["backendRefs"][0];
    assert_eq!((backend["name"].as_str(), backend["port"].as_i64()), (Some("p"), Some(8080)));
    // The real schema defaulted what the operator left out, and the operator does not fight it.
    assert_eq!(backend["weight"], 1, "{route}");

    c.apply_ok(n, &penpot_yaml("p", 1));
    wait_until(LONG, "the HTTPRoute pruned", || c.get(n, "httproute/p").is_none().then_some(()));
    wait_ready(c, n, "p");
}

fn key_of(c: &Cluster, ns: &str) -> String {
    c.get(ns, "secret/p-secret-key")
        .and_then(|s| s["data"]["secret-key"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Issue 15, item 10: `rotate-secret-key` asks for confirmation, replaces the key, the pods
/// roll onto it, status says when the key was made, and no "key replaced" warning fires (the
/// rotation was asked for).
#[test]
fn rotate_secret_key_replaces_the_key_and_rolls_the_pods() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "admin-key");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    ready_penpot(c, n, "p", 1);
    let (key, hash) = (key_of(c, n), config_hash(&c.get(n, "statefulset/p").unwrap()));
    let created = wait_until(LONG, "status.secretKeyCreated", || {
        c.get(n, "penpot/p")?["status"]["secretKeyCreated"].as_str().map(str::to_string)
    });
    // Creation times have one-second resolution.
    std::thread::sleep(Duration::from_millis(1100));

    let rotate = |extra: &[&str]| operator_cli(c, &[&["rotate-secret-key", "p", "-n", n], extra].concat());
    let (ok, _, stderr) = rotate(&[]);
    assert!(!ok && stderr.contains("ends every session") && stderr.contains("--yes"), "{stderr}");
    assert_eq!(key_of(c, n), key, "nothing changes without --yes");

    let (ok, stdout, stderr) = rotate(&["--yes"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Secret p-secret-key holds a new key"), "{stdout}");
    let new_key = key_of(c, n);
    assert!(!new_key.is_empty() && new_key != key, "a new key");
    wait_until(LONG, "the pods rolling onto the new key", || {
        (config_hash(&c.get(n, "statefulset/p")?) != hash).then_some(())
    });
    let later = wait_until(LONG, "status.secretKeyCreated moved on", || {
        let at = c.get(n, "penpot/p")?["status"]["secretKeyCreated"].as_str()?.to_string();
        (at > created).then_some(at)
    });
    wait_ready(c, n, "p");
    assert_eq!(key_of(c, n), new_key, "the operator kept the rotated key");
    let events = c.kubectl_ok(&["-n", n, "get", "events", "-o", "json"]);
    assert!(!events.contains("SecretKeyReplaced"), "a requested rotation is not a surprise: {later}");
}

/// Issue 15, item 5: login providers from their Secrets; status shows the callback URIs to
/// register; a bad LDAP Secret is refused naming the key, the running pods untouched.
#[test]
fn login_providers_from_secrets_and_their_callback_uris_in_status() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "admin-login");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let _op = Operator::start(c, n, &kubeconfig, "op", &[]);
    relation_secrets(c, n, "p");
    // Values from tests/e2e/secret-values.txt: the leak check greps the run for them.
    c.apply_ok(n, &secret_yaml("google", &[("client_id", "g-id"), ("client_secret", "google-client-secret-Hq4w")]));
    c.apply_ok(
        n,
        &secret_yaml(
            "gitlab",
            &[
                ("client_id", "gl-id"),
                ("client_secret", "gitlab-client-secret-Vn8c"),
                ("base_uri", "https://gitlab.corp.example"),
            ],
        ),
    );
    let ldap = [
        ("host", "ldap.corp.svc"),
        ("base_dn", "dc=corp,dc=example"),
        ("bind_dn", "cn=penpot"),
        ("bind_password", "ldap-bind-secret-Tr5d"),
    ];
    c.apply_ok(n, &secret_yaml("ldap", &ldap));
    let providers = "  google: {secretRef: {name: google}}\n  gitlab: {secretRef: {name: gitlab}}\n  ldap: {secretRef: {name: ldap}}\n  passwordLogin: true\n";
    c.apply_ok(n, &format!("{}{providers}", penpot_yaml("p", 1)));
    wait_ready(c, n, "p");
    let p = c.get(n, "penpot/p").unwrap();
    assert_eq!(
        p["status"]["redirectUris"],
        serde_json::json!({
            "gitlab": "https://p.example.com/api/auth/oidc/callback",
            "google": "https://p.example.com/api/auth/oidc/callback",
        })
    );
    let config_js = config_text(c, n, "config.js");
    for flag in
        ["enable-login-with-google", "enable-login-with-gitlab", "enable-login-with-ldap", "enable-login-with-password"]
    {
        assert!(config_js.contains(flag), "{flag}: {config_js}");
    }

    let hash = config_hash(&c.get(n, "statefulset/p").unwrap());
    // An empty value counts as absent (apply merges stringData into data, so a dropped key stays).
    c.apply_ok(
        n,
        &secret_yaml("ldap", &[("host", "ldap.corp.svc"), ("base_dn", ""), ("bind_password", "ldap-bind-secret-Tr5d")]),
    );
    wait_until(LONG, "status naming the LDAP key", || {
        message(c, n, "p").contains("ldap relation: Secret \"ldap\" key \"base_dn\" is missing").then_some(())
    });
    assert_eq!(config_hash(&c.get(n, "statefulset/p").unwrap()), hash, "nothing that runs changed");
}

/// The `status.checks` entry of `relation`: result and message.
fn check_of(p: &Value, relation: &str) -> Option<(String, String)> {
    let entry = p.pointer("/status/checks")?.as_array()?.iter().find(|c| c["relation"] == relation)?;
    Some((entry["result"].as_str()?.to_string(), entry["message"].as_str()?.to_string()))
}

#[test]
fn preflight_checks_report_each_relation_in_status_and_follow_its_secret() {
    let Some(c) = cluster() else { return };
    let Some(s) = relation_servers() else { return };
    let ns = Namespace::new(c, "admin-checks");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    // The servers listen on loopback, which the egress fence refuses unless an admin allows it.
    let _operator =
        Operator::start(c, n, &kubeconfig, "checks", &["--relation-checks=true", "--egress-allow-host", "127.0.0.1"]);
    let v = |k: &str| s[k].as_str();
    let pg = |password| {
        secret_yaml(
            "pg",
            &[
                ("host", v("PG_HOST")),
                ("port", v("PG_PORT")),
                ("database", "penpot"),
                ("username", v("PG_USER")),
                ("password", password),
            ],
        )
    };
    let others = [
        (
            "redis",
            vec![
                ("hostname", "REDIS_HOST"),
                ("port", "REDIS_PORT"),
                ("username", "REDIS_USER"),
                ("password", "REDIS_PASSWORD"),
            ],
        ),
        (
            "s3",
            vec![
                ("endpoint", "S3_ENDPOINT"),
                ("bucket", "S3_BUCKET"),
                ("region", "S3_REGION"),
                ("access-key", "S3_ACCESS_KEY"),
                ("secret-key", "S3_SECRET_KEY"),
            ],
        ),
        (
            "smtp",
            vec![("host", "SMTP_HOST"), ("port", "SMTP_PORT"), ("user", "SMTP_USER"), ("password", "SMTP_PASSWORD")],
        ),
    ];
    c.apply_ok(n, &pg(v("PG_PASSWORD")));
    for (name, keys) in others {
        let mut pairs: Vec<(&str, &str)> = keys.iter().map(|(key, var)| (*key, v(var))).collect();
        if name == "smtp" {
            pairs.extend([("transport_security", "starttls"), ("domain", "example.com")]);
        }
        c.apply_ok(n, &secret_yaml(name, &pairs));
    }
    // STARTTLS is verified against the Penpot's own CA bundle, as the backend verifies it.
    let ca = std::fs::read_to_string(v("RELATIONS_CA")).unwrap();
    c.apply_ok(n, &secret_yaml("corp-ca", &[("ca.crt", &ca)]));
    c.apply_ok(
        n,
        &format!(
            "{}  postgresql: {{secretRef: {{name: pg}}}}\n  redis: {{secretRef: {{name: redis}}}}\n  s3: {{secretRef: {{name: s3}}}}\n  smtp: {{secretRef: {{name: smtp}}}}\n  caBundle: {{secretRef: {{name: corp-ca}}}}\n",
            base("p")
        ),
    );

    let passed = wait_until(LONG, "every relation check passed", || {
        let p = c.get(n, "penpot/p")?;
        let all = ["postgresql", "redis", "s3", "smtp"].map(|r| check_of(&p, r));
        all.iter().all(|x| x.as_ref().is_some_and(|(result, _)| result == "Passed")).then_some(p)
    });
    let reachable = condition(&passed, "RelationsReachable").cloned().unwrap_or_default();
    assert_eq!(reachable["status"], "True", "{reachable}");
    assert_eq!(check_of(&passed, "smtp").unwrap().1, "logged in as penpot; sender penpot@example.com accepted");
    wait_ready(c, n, "p");

    // A wrong password: the check fails in the server's words, naming the relation in the
    // condition; the others still pass.
    c.apply_ok(n, &pg("relpw-wrong-e2e-3c9a"));
    let failed = wait_until(LONG, "the postgresql check failed", || {
        let p = c.get(n, "penpot/p")?;
        check_of(&p, "postgresql").filter(|(result, _)| result == "Failed").map(|_| p)
    });
    let (_, message) = check_of(&failed, "postgresql").unwrap();
    assert!(message.contains("password authentication failed for user \"penpot\""), "{message}");
    let reachable = condition(&failed, "RelationsReachable").cloned().unwrap_or_default();
    assert_eq!((reachable["status"].as_str(), reachable["reason"].as_str()), (Some("False"), Some("CheckFailed")));
    assert!(reachable["message"].as_str().unwrap_or_default().contains("check failed: postgresql"), "{reachable}");
    assert_eq!(check_of(&failed, "redis").map(|x| x.0), Some("Passed".into()));

    let (ok, out, err) = operator_cli(c, &["status", "p", "-n", n]);
    assert!(ok, "{err}");
    assert!(out.contains("check Failed: the server refused: password authentication failed"), "{out}");
    assert!(out.contains("check Passed: bucket penpot answered a signed HeadBucket"), "{out}");
    let status = failed["status"].to_string();
    for secret in ["PG_PASSWORD", "REDIS_PASSWORD", "S3_SECRET_KEY", "SMTP_PASSWORD"] {
        assert!(!status.contains(v(secret)) && !out.contains(v(secret)), "{secret} shown");
    }
    assert!(!status.contains("relpw-wrong-e2e-3c9a"));
}

/// A stand-in OTLP/HTTP collector: accepts `POST /v1/traces` and keeps each body, as the
/// OpenTelemetry Collector's receiver would (the Collector itself is not built here).
fn otlp_receiver() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path_ok = line.starts_with("POST /v1/traces ");
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let status = if path_ok { "200 OK" } else { "404 Not Found" };
                    if path_ok {
                        kept.lock().unwrap().push(body);
                    }
                    let reply = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
                    );
                    if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, bodies)
}

/// Every span received: (name, trace id, parent span id, span id, string attributes).
type Span = (String, Vec<u8>, Vec<u8>, Vec<u8>, std::collections::BTreeMap<String, String>);

fn decode_spans(bodies: &[Vec<u8>]) -> Vec<Span> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;
    let mut out = Vec::new();
    for body in bodies {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("an OTLP trace export");
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.clone());
            assert_eq!(service, Some(Any::StringValue("penpot-operator".into())), "the service name");
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                let attributes = span
                    .attributes
                    .iter()
                    .filter_map(|a| match a.value.as_ref()?.value.as_ref()? {
                        Any::StringValue(s) => Some((a.key.clone(), s.clone())),
                        _ => None,
                    })
                    .collect();
                out.push((span.name, span.trace_id, span.parent_span_id, span.span_id, attributes));
            }
        }
    }
    out
}

#[test]
fn reconciles_are_traced_over_otlp_a_span_per_step() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "admin-otlp");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let (port, bodies) = otlp_receiver();
    let endpoint = format!("http://127.0.0.1:{port}");
    // Checks on, against the suite's made-up hosts: they fail, and their spans must carry
    // no more than the log does.
    let _operator =
        Operator::start(c, n, &kubeconfig, "otlp", &["--otlp-endpoint", &endpoint, "--relation-checks=true"]);
    ready_penpot(c, n, "p", 1);

    // The batch goes out every 5 s; wait for a reconcile that applied (it has an apply span).
    let found = wait_until(LONG, "a reconcile trace with every step", || {
        let spans = decode_spans(&bodies.lock().unwrap());
        let root = spans.iter().find(|s| {
            s.0 == "reconcile"
                && s.4.get("penpot").map(String::as_str) == Some("p")
                && s.4.get("namespace").map(String::as_str) == Some(n)
                && spans.iter().any(|child| child.0 == "apply" && child.2 == s.3)
        })?;
        Some((root.clone(), spans.clone()))
    });
    let (root, spans) = found;
    // kube-runtime's own span is the trace's root, saying why the reconcile ran.
    let parent = spans.iter().find(|s| s.3 == root.2).map(|s| (s.0.as_str(), s.2.is_empty(), s.4.clone()));
    let (name, is_root, attributes) = parent.expect("the reconcile span's parent was exported");
    assert_eq!((name, is_root), ("reconciling object", true), "{attributes:?}");
    assert!(attributes.get("object.reason").is_some_and(|r| !r.is_empty()), "{attributes:?}");
    let children: std::collections::BTreeSet<&str> =
        spans.iter().filter(|s| s.1 == root.1 && s.2 == root.3).map(|s| s.0.as_str()).collect();
    for step in ["resolve", "render", "apply", "report"] {
        assert!(children.contains(step), "no {step} span under reconcile: {children:?}");
    }
    // The background checks are a trace of their own, a span per relation.
    let spans = wait_until(LONG, "a relation_checks trace", || {
        let spans = decode_spans(&bodies.lock().unwrap());
        let pass = spans.iter().find(|s| s.0 == "relation_checks" && s.2.is_empty())?;
        let checked: std::collections::BTreeSet<String> = spans
            .iter()
            .filter(|s| s.0 == "check" && s.1 == pass.1)
            .filter_map(|s| s.4.get("relation").cloned())
            .collect();
        (checked.len() == 3).then_some(spans)
    });
    assert!(spans.iter().any(|s| s.0 == "relation_checks" && s.4.get("penpot") == Some(&format!("{n}/p"))));
    // Nothing secret rides along: the relation Secrets' values are nowhere in the export.
    let all: Vec<u8> = bodies.lock().unwrap().concat();
    for secret in [PG_PASSWORD, S3_SECRET, REDIS_PASSWORD] {
        assert!(!all.windows(secret.len()).any(|w| w == secret.as_bytes()), "a secret in the traces");
    }
}
