//! The charm fixture test: the Penpot charm's unit-test relation data rendered by the operator
//! must give the backend environment the charm expects, except for the documented deviations.
//! Plus the render properties the reconcile relies on: flags, TLS mapping, https enforcement,
//! the config hash and the Pebble layer shape.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use penpot_operator::crd::{
    ExporterSpec, Images, Penpot, PenpotSpec, PostgresqlRelation, Relation, SecretRef, UpgradeSpec,
};
use penpot_operator::relations::{Relations, SecretData, oidc, postgresql, redis, s3, smtp};
use penpot_operator::render::rollout::{Backup, Live, MIGRATED_ANNOTATION};
use penpot_operator::render::version::Version;
use penpot_operator::render::{Desired, Inputs, RenderError, SpecError, render};
use serde_json::Value;

const SECRET_KEY: &str = "fixture-secret-key-0123456789abcdef0123456789abcdef";
const CONFIG_HASH_ANNOTATION: &str = "penpot-operator.dev/config-hash";

type Data = BTreeMap<String, Vec<u8>>;

fn d(pairs: &[(&str, &str)]) -> Data {
    pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

// The charm's unit-test fixtures (tests/unit/conftest.py of the Penpot charm).

fn pg_data(password: &str) -> Data {
    d(&[
        ("endpoints", "postgresql-endpoint:5432"),
        ("database", "penpot"),
        ("username", "postgresql-username"),
        ("password", password),
    ])
}

fn redis_data() -> Data {
    d(&[("hostname", "redis-hostname"), ("port", "6379")])
}

fn s3_data() -> Data {
    d(&[
        ("access-key", "s3-access-key"),
        ("secret-key", "s3-secret-key"),
        ("bucket", "penpot"),
        ("endpoint", "s3-endpoint"),
    ])
}

fn smtp_data(security: &str) -> Data {
    d(&[
        ("auth_type", "none"),
        ("domain", "example.com"),
        ("host", "smtp-host"),
        ("port", "1025"),
        ("transport_security", security),
    ])
}

fn oidc_data() -> Data {
    d(&[
        ("client_id", "penpot"),
        ("client_secret", "oidc-client-secret"),
        ("issuer_url", "https://idp.example.com/realms/penpot"),
        ("authorization_endpoint", "https://idp.example.com/auth"),
        ("token_endpoint", "https://idp.example.com/token"),
        ("userinfo_endpoint", "https://idp.example.com/userinfo"),
    ])
}

fn parse_smtp(data: &Data) -> smtp::Smtp {
    smtp::parse(&SecretData::new(Relation::Smtp, "smtp", data), None).expect("smtp fixture parses")
}

fn relations_with(pg_password: &str) -> Relations {
    Relations {
        postgresql: postgresql::parse(&SecretData::new(Relation::Postgresql, "postgresql", &pg_data(pg_password)))
            .expect("postgresql fixture parses"),
        redis: redis::parse(&SecretData::new(Relation::Redis, "redis", &redis_data())).expect("redis fixture parses"),
        s3: Some(s3::parse(&SecretData::new(Relation::S3, "s3", &s3_data()), false).expect("s3 fixture parses")),
        smtp: Some(parse_smtp(&smtp_data("none"))),
        oidc: None,
        google: None,
        github: None,
        gitlab: None,
        ldap: None,
    }
}

fn relations() -> Relations {
    relations_with("postgresql-password")
}

fn spec() -> PenpotSpec {
    PenpotSpec { public_uri: Some("https://penpot.local/".into()), replicas: 1, ..Default::default() }
}

fn penpot(spec: PenpotSpec) -> Penpot {
    let mut p = Penpot::new("penpot", spec);
    p.metadata.namespace = Some("test".into());
    p
}

/// What the controller passes for a first install without the Prometheus Operator.
fn inputs(relations: Relations) -> Inputs {
    Inputs {
        relations,
        secret_key: SECRET_KEY.into(),
        prometheus_operator: false,
        init_image: "example.org/penpot-operator:1".into(),
        live: None,
        backup: Backup::NotNeeded,
        ca_bundle: None,
        gateway_api: false,
    }
}

fn render_ok(p: &Penpot, relations: Relations) -> Desired {
    match render(p, &inputs(relations)) {
        Ok(desired) => desired,
        Err(e) => panic!("render failed: {e}"),
    }
}

fn config_text(desired: &Desired, key: &str) -> String {
    let data = desired.config.data.as_ref().expect("config Secret has data");
    let ByteString(bytes) = data.get(key).unwrap_or_else(|| panic!("config Secret has no key {key:?}"));
    String::from_utf8(bytes.clone()).expect("config is UTF-8")
}

fn layer(desired: &Desired, key: &str) -> Value {
    let yaml = config_text(desired, key);
    serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{key} is not YAML: {e}\n{yaml}"))
}

fn service_env(desired: &Desired, service: &str) -> BTreeMap<String, String> {
    let file = if service == "exporter" { "001-exporter.yaml" } else { "001-penpot.yaml" };
    let layer = layer(desired, file);
    let env = layer["services"][service]["environment"]
        .as_object()
        .unwrap_or_else(|| panic!("service {service} has no environment: {layer:#}"));
    env.iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap_or_else(|| panic!("{k} is not a string but {v}"));
            (k.clone(), v.to_string())
        })
        .collect()
}

fn backend_env(desired: &Desired) -> BTreeMap<String, String> {
    service_env(desired, "backend")
}

fn show(env: &BTreeMap<String, String>) -> String {
    env.iter().map(|(k, v)| format!("  {k}={v}\n")).collect()
}

/// Asserts `env[key] == want`, printing the whole environment on failure.
fn assert_env(env: &BTreeMap<String, String>, key: &str, want: &str) {
    assert_eq!(env.get(key).map(String::as_str), Some(want), "{key} in backend environment:\n{}", show(env));
}

/// The frontend flags from config.js.
fn frontend_flags(desired: &Desired) -> String {
    js_var(desired, "penpotFlags")
}

fn js_var(desired: &Desired, name: &str) -> String {
    let js = config_text(desired, "config.js");
    let prefix = format!("var {name} = ");
    let line =
        js.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("config.js has no {name}:\n{js}"));
    let literal = line.strip_suffix(';').unwrap_or_else(|| panic!("{name} line does not end with ';': {line}"));
    serde_json::from_str(literal).unwrap_or_else(|e| panic!("{name} is not a string literal ({e}): {literal}"))
}

fn pod_annotations(desired: &Desired) -> BTreeMap<String, String> {
    desired
        .statefulset
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.clone())
        .expect("pod template has annotations")
}

const CHARM_FLAGS: &str = "disable-log-emails disable-registration disable-telemetry enable-login-with-password enable-prepl-server enable-smtp";

/// The charm's expected backend environment (test_penpot_pebble_layer), with the deviations:
/// - storage settings use the 2.11+ names and the endpoint is a URL (the SDK needs a scheme);
/// - `disable-onboarding-questions` is gone from the flags (removed from Penpot);
/// - `JAVA_HOME` is the image's business, not the layer's;
/// - the secret key, tenant and pool size are rendered explicitly.
fn expected_backend_env() -> BTreeMap<String, String> {
    [
        ("AWS_ACCESS_KEY_ID", "s3-access-key"),
        ("AWS_SECRET_ACCESS_KEY", "s3-secret-key"),
        ("PENPOT_OBJECTS_STORAGE_BACKEND", "s3"),
        ("PENPOT_OBJECTS_STORAGE_S3_BUCKET", "penpot"),
        ("PENPOT_OBJECTS_STORAGE_S3_ENDPOINT", "https://s3-endpoint"),
        ("PENPOT_OBJECTS_STORAGE_S3_REGION", "us-east-1"),
        ("PENPOT_DATABASE_PASSWORD", "postgresql-password"),
        ("PENPOT_DATABASE_URI", "postgresql://postgresql-endpoint:5432/penpot"),
        ("PENPOT_DATABASE_USERNAME", "postgresql-username"),
        ("PENPOT_FLAGS", CHARM_FLAGS),
        ("PENPOT_PUBLIC_URI", "https://penpot.local/"),
        ("PENPOT_REDIS_URI", "redis://redis-hostname:6379"),
        ("PENPOT_SMTP_DEFAULT_FROM", "no-reply@example.com"),
        ("PENPOT_SMTP_DEFAULT_REPLY_TO", "no-reply@example.com"),
        ("PENPOT_SMTP_HOST", "smtp-host"),
        ("PENPOT_SMTP_PORT", "1025"),
        ("PENPOT_SMTP_SSL", "false"),
        ("PENPOT_SMTP_TLS", "false"),
        ("PENPOT_TELEMETRY_ENABLED", "false"),
        // Operator additions.
        ("PENPOT_SECRET_KEY", SECRET_KEY),
        ("PENPOT_TENANT", "default"),
        ("PENPOT_DATABASE_MAX_POOL_SIZE", "60"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

const OLD_STORAGE_PREFIXES: [&str; 2] = ["PENPOT_ASSETS_STORAGE_", "PENPOT_STORAGE_ASSETS_"];
const NEW_STORAGE_PREFIX: &str = "PENPOT_OBJECTS_STORAGE_";

#[test]
fn charm_fixture_backend_environment() {
    let desired = render_ok(&penpot(spec()), relations());
    let env = backend_env(&desired);
    let want = expected_backend_env();
    assert_eq!(
        env,
        want,
        "backend environment differs from the charm's\nrendered:\n{}\nwanted:\n{}",
        show(&env),
        show(&want)
    );
    for key in env.keys() {
        assert!(
            !OLD_STORAGE_PREFIXES.iter().any(|p| key.starts_with(p)),
            "2.17 image renders the old storage name {key}:\n{}",
            show(&env)
        );
    }
    assert_eq!(frontend_flags(&desired), "disable-registration enable-login-with-password");
    assert_eq!(js_var(&desired, "penpotPublicURI"), "https://penpot.local/");
    assert_eq!(desired.public_uri, "https://penpot.local/");
    assert_eq!(desired.version.to_string(), "2.17.0");
}

#[test]
fn charm_fixture_old_image_uses_old_storage_names() {
    let p = penpot(PenpotSpec {
        images: Images { penpot: Some("x/penpot:2.10.0".into()), ..Default::default() },
        ..spec()
    });
    let desired = render_ok(&p, relations());
    let env = backend_env(&desired);
    assert_eq!(desired.version.to_string(), "2.10.0");
    assert_env(&env, "PENPOT_ASSETS_STORAGE_BACKEND", "assets-s3");
    assert_env(&env, "PENPOT_STORAGE_ASSETS_S3_BUCKET", "penpot");
    assert_env(&env, "PENPOT_STORAGE_ASSETS_S3_ENDPOINT", "https://s3-endpoint");
    assert_env(&env, "PENPOT_STORAGE_ASSETS_S3_REGION", "us-east-1");
    for key in env.keys() {
        assert!(!key.starts_with(NEW_STORAGE_PREFIX), "2.10 image renders the new storage name {key}:\n{}", show(&env));
    }
    // Everything but the storage family is as for 2.17.
    let mut rest = env.clone();
    rest.retain(|k, _| !OLD_STORAGE_PREFIXES.iter().any(|p| k.starts_with(p)));
    let mut want = expected_backend_env();
    want.retain(|k, _| !k.starts_with(NEW_STORAGE_PREFIX));
    assert_eq!(rest, want, "2.10 backend environment:\n{}", show(&env));
}

#[test]
fn smtp_transport_security_mapping() {
    // Penpot's TLS is STARTTLS and its SSL is implicit TLS.
    for (security, tls, ssl) in [("none", "false", "false"), ("starttls", "true", "false"), ("tls", "false", "true")] {
        let relations = Relations { smtp: Some(parse_smtp(&smtp_data(security))), ..relations() };
        let env = backend_env(&render_ok(&penpot(spec()), relations));
        assert_eq!(env.get("PENPOT_SMTP_TLS").map(String::as_str), Some(tls), "{security}:\n{}", show(&env));
        assert_eq!(env.get("PENPOT_SMTP_SSL").map(String::as_str), Some(ssl), "{security}:\n{}", show(&env));
        assert_env(&env, "PENPOT_SMTP_PORT", "1025");
    }
}

#[test]
fn smtp_credentials_and_absence() {
    let with_auth = d(&[
        ("auth_type", "plain"),
        ("domain", "example.com"),
        ("host", "smtp-host"),
        ("port", "1025"),
        ("user", "smtp-user"),
        ("password", "smtp-password"),
    ]);
    let env = backend_env(&render_ok(&penpot(spec()), Relations { smtp: Some(parse_smtp(&with_auth)), ..relations() }));
    assert_env(&env, "PENPOT_SMTP_USERNAME", "smtp-user");
    assert_env(&env, "PENPOT_SMTP_PASSWORD", "smtp-password");
    assert_env(&env, "PENPOT_SMTP_DEFAULT_FROM", "smtp-user@example.com");

    // The fixture has auth_type none: no credentials at all.
    let env = backend_env(&render_ok(&penpot(spec()), relations()));
    assert!(!env.contains_key("PENPOT_SMTP_USERNAME") && !env.contains_key("PENPOT_SMTP_PASSWORD"), "{}", show(&env));

    // Without the relation: no SMTP settings, smtp disabled.
    let env = backend_env(&render_ok(&penpot(spec()), Relations { smtp: None, ..relations() }));
    assert!(!env.keys().any(|k| k.starts_with("PENPOT_SMTP_")), "{}", show(&env));
    assert_env(
        &env,
        "PENPOT_FLAGS",
        "disable-log-emails disable-registration disable-smtp disable-telemetry enable-login-with-password enable-prepl-server",
    );
}

#[test]
fn oidc_switches_login_flags() {
    let oidc = oidc::parse(&SecretData::new(Relation::Oidc, "oidc", &oidc_data())).expect("oidc parses");
    let desired = render_ok(&penpot(spec()), Relations { oidc: Some(oidc), ..relations() });
    let env = backend_env(&desired);
    assert_env(
        &env,
        "PENPOT_FLAGS",
        "disable-log-emails disable-login-with-password disable-registration disable-telemetry enable-login-with-oidc enable-oidc-registration enable-prepl-server enable-smtp",
    );
    assert_eq!(
        frontend_flags(&desired),
        "disable-login-with-password disable-registration enable-login-with-oidc enable-oidc-registration"
    );
    assert_env(&env, "PENPOT_OIDC_CLIENT_ID", "penpot");
    assert_env(&env, "PENPOT_OIDC_CLIENT_SECRET", "oidc-client-secret");
    assert_env(&env, "PENPOT_OIDC_BASE_URI", "https://idp.example.com/realms/penpot/");
    assert_env(&env, "PENPOT_OIDC_AUTH_URI", "https://idp.example.com/auth");
    assert_env(&env, "PENPOT_OIDC_TOKEN_URI", "https://idp.example.com/token");
    assert_env(&env, "PENPOT_OIDC_USER_URI", "https://idp.example.com/userinfo");
    assert_env(&env, "PENPOT_OIDC_SCOPES", "openid profile email");

    // OIDC without SMTP cannot be served.
    let oidc = oidc::parse(&SecretData::new(Relation::Oidc, "oidc", &oidc_data())).expect("oidc parses");
    let err = render(&penpot(spec()), &inputs(Relations { oidc: Some(oidc), smtp: None, ..relations() }))
        .expect_err("oidc without smtp renders");
    assert!(matches!(err, RenderError::Spec(SpecError::SmtpRequiredBy(Relation::Oidc))), "{err}");
}

#[test]
fn http_public_uri_needs_opt_in() {
    let http = PenpotSpec { public_uri: Some("http://penpot.local/".into()), ..spec() };
    let result = render(&penpot(http.clone()), &inputs(relations()));
    match result {
        Err(RenderError::Spec(SpecError::HttpsRequired(uri))) => assert_eq!(uri, "http://penpot.local/"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("http public URI rendered without allowInsecureHttp"),
    }

    let desired = render_ok(&penpot(PenpotSpec { allow_insecure_http: true, ..http }), relations());
    let env = backend_env(&desired);
    assert_env(&env, "PENPOT_PUBLIC_URI", "http://penpot.local/");
    assert!(env["PENPOT_FLAGS"].split(' ').any(|f| f == "disable-secure-session-cookies"), "{}", show(&env));
}

#[test]
fn config_hash_is_stable() {
    let a = render_ok(&penpot(spec()), relations());
    let b = render_ok(&penpot(spec()), relations());
    assert_eq!(a.config_hash, b.config_hash);
    assert_eq!(a.config.data, b.config.data, "config bytes differ between two renders");
    assert_eq!(
        serde_json::to_value(&a.statefulset).expect("serialises"),
        serde_json::to_value(&b.statefulset).expect("serialises"),
        "StatefulSet differs between two renders"
    );
    assert_eq!(a.config_hash.len(), 32);
    assert_eq!(pod_annotations(&a).get(CONFIG_HASH_ANNOTATION), Some(&a.config_hash));
}

#[test]
fn config_hash_follows_relation_data() {
    let before = render_ok(&penpot(spec()), relations());
    let after = render_ok(&penpot(spec()), relations_with("rotated-password"));
    assert_ne!(before.config_hash, after.config_hash, "a new database password must roll the pods");
    assert_eq!(pod_annotations(&after).get(CONFIG_HASH_ANNOTATION), Some(&after.config_hash));
    assert_ne!(
        pod_annotations(&before).get(CONFIG_HASH_ANNOTATION),
        pod_annotations(&after).get(CONFIG_HASH_ANNOTATION),
        "pod template annotation did not change"
    );
    assert_env(&backend_env(&after), "PENPOT_DATABASE_PASSWORD", "rotated-password");
}

#[test]
fn config_hash_ignores_unrelated_fields() {
    let before = render_ok(&penpot(spec()), relations());
    let annotated = PenpotSpec {
        pod_annotations: [("example.com/team".to_string(), "design".to_string())].into(),
        pod_labels: [("example.com/tier".to_string(), "web".to_string())].into(),
        ..spec()
    };
    let after = render_ok(&penpot(annotated), relations());
    assert_eq!(before.config_hash, after.config_hash, "podAnnotations must not change the config hash");
    let annotations = pod_annotations(&after);
    assert_eq!(annotations.get("example.com/team").map(String::as_str), Some("design"));
    assert_eq!(annotations.get(CONFIG_HASH_ANNOTATION), Some(&before.config_hash));
}

#[test]
fn pool_size_divides_connections() {
    let cases = [
        (1, None, "60"), // capped at Penpot's default
        (2, None, "45"),
        (3, None, "30"),
        (0, None, "60"), // scaled to zero: sized as one replica
        (3, Some(20), "6"),
        (4, Some(1000), "60"),
    ];
    for (replicas, max_connections, want) in cases {
        let postgresql = max_connections
            .map(|m| PostgresqlRelation { secret_ref: SecretRef { name: "pg".into() }, max_connections: Some(m) });
        let desired = render_ok(&penpot(PenpotSpec { replicas, postgresql, ..spec() }), relations());
        let env = backend_env(&desired);
        assert_eq!(
            env.get("PENPOT_DATABASE_MAX_POOL_SIZE").map(String::as_str),
            Some(want),
            "replicas {replicas}, maxConnections {max_connections:?}:\n{}",
            show(&env)
        );
        // A first install starts one pod, which migrates the database (see rollout tests).
        assert_eq!(desired.statefulset.spec.as_ref().and_then(|s| s.replicas), Some(replicas.min(1)));
    }

    let too_small = PenpotSpec {
        replicas: 3,
        postgresql: Some(PostgresqlRelation { secret_ref: SecretRef { name: "pg".into() }, max_connections: Some(5) }),
        ..spec()
    };
    let err = render(&penpot(too_small), &inputs(relations())).expect_err("1 connection per replica accepted");
    assert!(matches!(err, RenderError::Spec(SpecError::PoolTooSmall { max: 5, replicas: 3 })), "{err}");
}

#[test]
fn exporter_can_be_disabled() {
    let on = render_ok(&penpot(spec()), relations());
    let exporter_layer = layer(&on, "001-exporter.yaml");
    assert!(exporter_layer["services"].get("exporter").is_some(), "{exporter_layer:#}");
    assert!(exporter_layer["checks"].get("exporter-up").is_some(), "{exporter_layer:#}");
    let exporter_env = service_env(&on, "exporter");
    assert_eq!(exporter_env.get("PENPOT_REDIS_URI").map(String::as_str), Some("redis://redis-hostname:6379"));
    let names = |d: &Desired| -> Vec<String> {
        let pod = d.statefulset.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        pod.containers.iter().map(|c| c.name.clone()).collect()
    };
    assert_eq!(names(&on), ["exporter", "nginx", "penpot"]);

    let off = render_ok(&penpot(PenpotSpec { exporter: Some(ExporterSpec { enabled: false }), ..spec() }), relations());
    assert!(!off.config.data.as_ref().unwrap().contains_key("001-exporter.yaml"));
    assert_eq!(names(&off), ["nginx", "penpot"]);
    assert!(layer(&off, "001-penpot.yaml")["services"].get("backend").is_some());
    assert!(config_text(&off, "nginx.conf").contains("the exporter is disabled"));
    assert_ne!(on.config_hash, off.config_hash);
}

/// A Go duration: one or more number+unit pairs.
fn is_duration(s: &str) -> bool {
    let re = regex::Regex::new(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$").expect("valid regex");
    re.is_match(s)
}

const DURATION_FIELDS: [&str; 5] = ["period", "timeout", "kill-delay", "backoff-delay", "backoff-limit"];

fn check_durations(what: &str, obj: &Value) -> usize {
    let mut seen = 0;
    for field in DURATION_FIELDS {
        if let Some(v) = obj.get(field) {
            let s = v.as_str().unwrap_or_else(|| panic!("{what}: {field} is not a string: {v}"));
            assert!(is_duration(s), "{what}: {field} {s:?} has no unit");
            seen += 1;
        }
    }
    seen
}

#[test]
fn layers_replace_everything() {
    let oidc = oidc::parse(&SecretData::new(Relation::Oidc, "oidc", &oidc_data())).expect("oidc parses");
    let variants = [
        ("default", render_ok(&penpot(spec()), relations())),
        (
            "exporter off",
            render_ok(&penpot(PenpotSpec { exporter: Some(ExporterSpec { enabled: false }), ..spec() }), relations()),
        ),
        ("oidc", render_ok(&penpot(spec()), Relations { oidc: Some(oidc), ..relations() })),
    ];
    for (variant, desired) in &variants {
        let mut durations = 0;
        for (file, want_services) in [("001-penpot.yaml", &["backend"][..]), ("001-nginx.yaml", &["frontend"][..])] {
            let layer = layer(desired, file);
            let what = format!("{variant} {file}");
            assert!(layer["summary"].is_string() && layer["description"].is_string(), "{what}: {layer:#}");
            let services = layer["services"].as_object().unwrap_or_else(|| panic!("{what}: no services"));
            for s in want_services {
                assert!(services.contains_key(*s), "{what}: no {s} service");
            }
            for (name, svc) in services {
                assert_eq!(svc["override"], "replace", "{what}: service {name}: {svc:#}");
                assert_eq!(svc["startup"], "enabled", "{what}: service {name}: {svc:#}");
                assert!(svc["command"].as_str().is_some_and(|c| !c.is_empty()), "{what}: service {name} command");
                durations += check_durations(&format!("{what}: service {name}"), svc);
            }
            let checks = layer["checks"].as_object().unwrap_or_else(|| panic!("{what}: no checks"));
            assert!(!checks.is_empty(), "{what}: no checks");
            for (name, check) in checks {
                assert_eq!(check["override"], "replace", "{what}: check {name}: {check:#}");
                let kinds = ["http", "tcp", "exec"].iter().filter(|k| check.get(**k).is_some()).count();
                assert_eq!(kinds, 1, "{what}: check {name} must have exactly one of http/tcp/exec: {check:#}");
                durations += check_durations(&format!("{what}: check {name}"), check);
            }
        }
        assert!(durations > 0, "{variant}: no durations checked");
    }
}

#[test]
fn owned_objects_carry_namespace_and_names() {
    let desired = render_ok(&penpot(spec()), relations());
    assert_eq!(desired.config.metadata.name.as_deref(), Some("penpot-config"));
    assert_eq!(desired.config.metadata.namespace.as_deref(), Some("test"));
    assert_eq!(desired.statefulset.metadata.namespace.as_deref(), Some("test"));
    assert_eq!(desired.service.metadata.name.as_deref(), Some("penpot"));
    assert_eq!(desired.headless_service.metadata.name.as_deref(), Some("penpot-endpoints"));
    let keys: Vec<&str> =
        desired.config.data.as_ref().expect("config data").keys().map(String::as_str).collect::<Vec<_>>();
    assert_eq!(keys, ["001-exporter.yaml", "001-nginx.yaml", "001-penpot.yaml", "config.js", "nginx.conf"]);
    assert!(desired.ingress.is_none(), "no ingress without spec.ingress");
}

#[test]
fn ingress_nginx_gets_the_upload_size_and_websocket_timeouts_and_the_user_wins() {
    use penpot_operator::crd::IngressSpec;
    let with = |class: Option<&str>, annotations: &[(&str, &str)]| {
        let ingress = IngressSpec {
            class_name: class.map(str::to_string),
            host: Some("penpot.local".into()),
            annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        let desired = render_ok(&penpot(PenpotSpec { ingress: Some(ingress), ..spec() }), relations());
        desired.ingress.and_then(|i| i.metadata.annotations).unwrap_or_default()
    };
    let body = "nginx.ingress.kubernetes.io/proxy-body-size";
    let read = "nginx.ingress.kubernetes.io/proxy-read-timeout";
    for class in [None, Some("nginx"), Some("ingress-nginx-internal")] {
        let a = with(class, &[]);
        assert_eq!(a.get(body).map(String::as_str), Some("350m"), "{class:?}: {a:?}");
        assert_eq!(a.get(read).map(String::as_str), Some("3600"), "{class:?}: {a:?}");
    }
    assert!(with(Some("traefik"), &[]).is_empty(), "another controller gets no ingress-nginx annotations");
    assert_eq!(with(Some("nginx"), &[(body, "1g")]).get(body).map(String::as_str), Some("1g"), "the user's value wins");
}

#[test]
fn readiness_is_the_backends_readyz_and_a_static_nginx_answer() {
    let desired = render_ok(&penpot(spec()), relations());
    let pod = desired.statefulset.spec.and_then(|s| s.template.spec).expect("pod spec");
    let readiness = |name: &str| {
        let c = pod.containers.iter().find(|c| c.name == name).expect("container");
        let get = c.readiness_probe.as_ref().and_then(|p| p.http_get.clone()).expect("httpGet readiness");
        (get.path.unwrap_or_default(), get.port)
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(readiness("penpot"), ("/readyz".to_string(), IntOrString::Int(6060)));
    assert_eq!(readiness("nginx"), ("/_penpot/nginx-ready".to_string(), IntOrString::Int(8080)));
}

fn running(migrated: &str, template: &str, replicas: i32, ready: i32, updated: i32) -> Live {
    Live {
        migrated: Version::parse(migrated),
        template: Version::parse(template),
        observed: true,
        replicas,
        ready,
        updated,
    }
}

fn render_live(spec: PenpotSpec, live: Option<Live>) -> Result<Desired, RenderError> {
    render(&penpot(spec), &Inputs { live, ..inputs(relations()) })
}

fn strategy(desired: &Desired) -> (i32, i32, Option<String>) {
    let sts = &desired.statefulset;
    let spec = sts.spec.as_ref().unwrap();
    let partition = spec.update_strategy.as_ref().unwrap().rolling_update.as_ref().unwrap().partition.unwrap();
    let migrated = sts.metadata.annotations.as_ref().and_then(|a| a.get(MIGRATED_ANNOTATION).cloned());
    (spec.replicas.unwrap(), partition, migrated)
}

#[test]
fn a_version_change_runs_one_pod_first_and_a_downgrade_is_refused() {
    let at = |v: &str| PenpotSpec { version: Some(v.into()), replicas: 3, ..spec() };
    // Steady on 2.16.1: every pod follows the spec, the images carry the version.
    let steady = render_live(at("2.16.1"), Some(running("2.16.1", "2.16.1", 3, 3, 3))).unwrap();
    assert_eq!(strategy(&steady), (3, 0, Some("2.16.1".into())));
    let pod = steady.statefulset.spec.as_ref().unwrap().template.spec.clone().unwrap();
    let images: Vec<&str> = pod.containers.iter().filter_map(|c| c.image.as_deref()).collect();
    assert_eq!(
        images,
        [
            "docker.io/penpotapp/exporter:2.16.1",
            "docker.io/penpotapp/frontend:2.16.1",
            "docker.io/penpotapp/backend:2.16.1"
        ]
    );

    // 2.17.0: the last pod only; the record stays at 2.16.1 until that pod is Ready.
    let first = render_live(at("2.17.0"), Some(running("2.16.1", "2.16.1", 3, 3, 3))).unwrap();
    assert_eq!(strategy(&first), (3, 2, Some("2.16.1".into())));
    let migrating = render_live(at("2.17.0"), Some(running("2.16.1", "2.17.0", 3, 2, 1))).unwrap();
    assert_eq!(strategy(&migrating), (3, 2, Some("2.16.1".into())));
    let done = render_live(at("2.17.0"), Some(running("2.16.1", "2.17.0", 3, 3, 1))).unwrap();
    assert_eq!(strategy(&done), (3, 0, Some("2.17.0".into())));
    // The pods roll once the first is Ready: the template is the same in all three renders.
    assert_eq!(first.statefulset.spec.as_ref().unwrap().template, done.statefulset.spec.as_ref().unwrap().template);

    // Back to 2.16.1 once the database is at 2.17.0: refused, naming both versions.
    match render_live(at("2.16.1"), Some(running("2.17.0", "2.17.0", 3, 3, 3))) {
        Err(e @ RenderError::Refused(_)) => {
            let message = e.to_string();
            assert!(message.contains("2.16.1") && message.contains("2.17.0"), "{message}");
            assert!(message.contains("spec.upgrade.allowDowngrade"), "{message}");
        }
        other => panic!("downgrade not refused: {other:?}"),
    }
    let allowed =
        PenpotSpec { upgrade: Some(UpgradeSpec { allow_downgrade: true, ..Default::default() }), ..at("2.16.1") };
    let forced = render_live(allowed, Some(running("2.17.0", "2.17.0", 3, 3, 3))).unwrap();
    assert_eq!(strategy(&forced), (3, 2, Some("2.17.0".into())));

    // A first install starts one pod, then all of them.
    assert_eq!(strategy(&render_live(at("2.17.0"), None).unwrap()), (1, 0, None));
}

#[test]
fn images_follow_the_version_unless_set() {
    let versioned = |v: Option<&str>, images: Images| {
        let d = render_ok(&penpot(PenpotSpec { version: v.map(str::to_string), images, ..spec() }), relations());
        let pod = d.statefulset.spec.unwrap().template.spec.unwrap();
        pod.containers.into_iter().map(|c| (c.name, c.image.unwrap())).collect::<BTreeMap<_, _>>()
    };
    let default = versioned(None, Images::default());
    assert_eq!(default["penpot"], format!("docker.io/penpotapp/backend:{}", Version::CURRENT));
    let rock = Images { penpot: Some("example.org/penpot-rock:2.16.0-24.04".into()), ..Default::default() };
    // The tag of images.penpot still names the version when spec.version is unset.
    let by_tag = versioned(None, rock.clone());
    assert_eq!(by_tag["penpot"], "example.org/penpot-rock:2.16.0-24.04");
    assert_eq!(by_tag["nginx"], "docker.io/penpotapp/frontend:2.16.0");
    assert_eq!(versioned(Some("2.17.0"), rock)["exporter"], "docker.io/penpotapp/exporter:2.17.0");
}

#[test]
fn exporter_and_frontend_get_what_penpot_2_17_reads() {
    let oidc = oidc::parse(&SecretData::new(Relation::Oidc, "oidc", &oidc_data())).expect("oidc parses");
    let oidc = oidc::Oidc { display_name: Some("Corp SSO".into()), ..oidc };
    let desired = render_ok(&penpot(spec()), Relations { oidc: Some(oidc), ..relations() });
    // The public URI ends in a slash; the exporter swaps the internal URI's text for it in SVGs.
    let exporter = service_env(&desired, "exporter");
    assert_eq!(exporter["PENPOT_PUBLIC_URI"], "https://penpot.local");
    assert_eq!(exporter["PENPOT_INTERNAL_URI"], "http://localhost:8080");
    assert!(config_text(&desired, "config.js").contains("var penpotOIDCName = \"Corp SSO\";"));
}

/// The settings admins ask for most (issue 15, item 4): upload size for nginx and the backend
/// alike, the registration domain whitelist, telemetry, and extra environment per container.
#[test]
fn admin_settings_reach_nginx_and_the_backend() {
    let defaults = render_ok(&penpot(spec()), relations());
    let env = backend_env(&defaults);
    assert!(!env.contains_key("PENPOT_HTTP_SERVER_MAX_BODY_SIZE"), "Penpot's default needs no variable");
    assert!(!env.contains_key("PENPOT_REGISTRATION_DOMAIN_WHITELIST"));
    assert_env(&env, "PENPOT_TELEMETRY_ENABLED", "false");
    assert!(config_text(&defaults, "nginx.conf").contains("client_max_body_size 367001600;"));

    let mut s = spec();
    s.max_upload_size = Some("1Gi".into());
    s.ingress = Some(penpot_operator::crd::IngressSpec { host: Some("penpot.local".into()), ..Default::default() });
    s.registration_domains = vec!["example.com".into(), "example.org".into()];
    s.telemetry = true;
    s.env = Some(penpot_operator::crd::ExtraEnv {
        backend: [("PENPOT_AUTO_FILE_SNAPSHOT_EVERY".to_string(), "5".to_string())].into(),
        exporter: [("PENPOT_BROWSER_POOL_MAX".to_string(), "3".to_string())].into(),
    });
    let desired = render_ok(&penpot(s), relations());
    let env = backend_env(&desired);
    assert_env(&env, "PENPOT_HTTP_SERVER_MAX_BODY_SIZE", "1073741824");
    assert!(config_text(&desired, "nginx.conf").contains("client_max_body_size 1073741824;"));
    let ingress = desired.ingress.as_ref().expect("an Ingress");
    let annotations = ingress.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/proxy-body-size"], "1073741824",
        "ingress-nginx's limit follows"
    );
    assert_env(&env, "PENPOT_REGISTRATION_DOMAIN_WHITELIST", "example.com,example.org");
    assert_env(&env, "PENPOT_TELEMETRY_ENABLED", "true");
    assert!(env["PENPOT_FLAGS"].contains("enable-telemetry") && !env["PENPOT_FLAGS"].contains("disable-telemetry"));
    assert_env(&env, "PENPOT_AUTO_FILE_SNAPSHOT_EVERY", "5");
    assert_eq!(service_env(&desired, "exporter").get("PENPOT_BROWSER_POOL_MAX").map(String::as_str), Some("3"));
}

/// Extra environment never overrides the operator: a variable it sets (here, or through a
/// relation that is absent now) is refused by name, and so is a name a shell would not take.
#[test]
fn extra_environment_cannot_override_the_operator() {
    let with_env = |container: &str, name: &str| {
        let mut s = spec();
        let vars: BTreeMap<String, String> = [(name.to_string(), "x".to_string())].into();
        s.env = Some(if container == "backend" {
            penpot_operator::crd::ExtraEnv { backend: vars, ..Default::default() }
        } else {
            penpot_operator::crd::ExtraEnv { exporter: vars, ..Default::default() }
        });
        render(&penpot(s), &inputs(relations())).err().map(|e| e.to_string())
    };
    for (container, name) in [
        ("backend", "PENPOT_SECRET_KEY"),
        ("backend", "PENPOT_FLAGS"),
        ("backend", "PENPOT_DATABASE_URI"),
        // No OIDC relation here: still the relation's to set.
        ("backend", "PENPOT_OIDC_CLIENT_ID"),
        ("exporter", "PENPOT_REDIS_URI"),
        ("exporter", "PENPOT_PUBLIC_URI"),
    ] {
        let error = with_env(container, name).unwrap_or_else(|| panic!("{container} {name} was accepted"));
        assert!(
            error.contains(&format!("spec.env.{container} sets {name}")) && error.contains("operator sets itself"),
            "{error}"
        );
    }
    let error = with_env("backend", "1BAD-NAME").expect("a bad name is refused");
    assert!(error.contains("spec.env.backend has the variable name \"1BAD-NAME\""), "{error}");
    assert_eq!(with_env("backend", "JAVA_OPTS"), None, "an ordinary variable is accepted");
    // AWS credentials belong to the S3 relation or the cloud identity, even where none is rendered.
    let error = with_env("exporter", "AWS_SESSION_TOKEN").expect("S3 credentials are the relation's");
    assert!(error.contains("spec.env.exporter sets AWS_SESSION_TOKEN"), "{error}");
}

/// Scheduling and disruption (issue 15, item 3): a PodDisruptionBudget of one pod at a time
/// once there is more than one replica, topology spread with the Penpot's own selector filled
/// in, and the priority class.
#[test]
fn disruption_budget_spread_and_priority() {
    assert!(render_ok(&penpot(spec()), relations()).pod_disruption_budget.is_none(), "one replica: no budget");
    let mut s = spec();
    s.replicas = 3;
    s.priority_class_name = Some("penpot-high".into());
    s.topology_spread_constraints = vec![
        serde_json::from_value(serde_json::json!({
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"
        }))
        .unwrap(),
    ];
    let desired = render_ok(&penpot(s), relations());
    let budget = desired.pod_disruption_budget.as_ref().expect("a budget with three replicas");
    let budget_spec = budget.spec.as_ref().unwrap();
    assert_eq!(serde_json::to_value(&budget_spec.max_unavailable).unwrap(), 1);
    let selector = serde_json::json!({"matchLabels": {"app.kubernetes.io/instance": "penpot", "app.kubernetes.io/name": "penpot"}});
    assert_eq!(serde_json::to_value(&budget_spec.selector).unwrap(), selector);
    let pod = desired.statefulset.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.priority_class_name.as_deref(), Some("penpot-high"));
    let spread = &pod.topology_spread_constraints.as_ref().unwrap()[0];
    assert_eq!(serde_json::to_value(&spread.label_selector).unwrap(), selector, "the Penpot's selector filled in");
    assert!(desired.objects().unwrap().iter().any(|o| o.kind.as_str() == "PodDisruptionBudget"), "applied and pruned");
}

/// Monitoring that kube-prometheus-stack picks up (issue 15, item 7): the user's labels on the
/// PodMonitor, the PrometheusRule and the dashboard ConfigMap; the operator's own refused.
#[test]
fn monitoring_labels_reach_what_prometheus_and_grafana_select() {
    let mut s = spec();
    s.monitoring = Some(penpot_operator::crd::MonitoringSpec {
        enabled: true,
        labels: [
            ("release".to_string(), "kube-prometheus-stack".to_string()),
            ("grafana_dashboard".to_string(), "penpot".to_string()),
        ]
        .into(),
    });
    let with_operator = Inputs { prometheus_operator: true, ..inputs(relations()) };
    let desired = render(&penpot(s.clone()), &with_operator).expect("renders");
    let label = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str| {
        meta.labels.as_ref().and_then(|l| l.get(key)).cloned()
    };
    for meta in [&desired.pod_monitor.as_ref().unwrap().metadata, &desired.prometheus_rule.as_ref().unwrap().metadata] {
        assert_eq!(label(meta, "release").as_deref(), Some("kube-prometheus-stack"));
        assert_eq!(label(meta, "app.kubernetes.io/instance").as_deref(), Some("penpot"), "the operator's labels stay");
    }
    assert_eq!(
        label(&desired.dashboard.metadata, "grafana_dashboard").as_deref(),
        Some("penpot"),
        "the user's value wins"
    );
    assert_eq!(label(&desired.dashboard.metadata, "release").as_deref(), Some("kube-prometheus-stack"));

    s.monitoring.as_mut().unwrap().labels.insert("app.kubernetes.io/instance".into(), "other".into());
    let error = render(&penpot(s), &with_operator).expect_err("a reserved label is refused").to_string();
    assert!(error.contains("spec.monitoring.labels sets \"app.kubernetes.io/instance\""), "{error}");
}

fn filesystem(claim_name: Option<&str>, access_mode: penpot_operator::crd::AccessMode) -> PenpotSpec {
    PenpotSpec {
        storage: Some(penpot_operator::crd::StorageSpec {
            filesystem: Some(penpot_operator::crd::FilesystemStorage {
                claim_name: claim_name.map(str::to_string),
                size: "50Gi".into(),
                storage_class_name: Some("nfs".into()),
                access_mode,
            }),
        }),
        ..spec()
    }
}

/// Filesystem storage (issue 15, item 1): without S3, assets go to a claim mounted by the
/// backend (read-write) and nginx (read-only) at the path nginx's `/internal/assets` serves;
/// the backend is told `fs` and that directory, and gets no S3 credentials.
#[test]
fn filesystem_storage_mounts_one_claim_in_backend_and_nginx() {
    use penpot_operator::crd::AccessMode;
    let no_s3 = || Relations { s3: None, ..relations() };
    let desired = render_ok(&penpot(filesystem(None, AccessMode::ReadWriteOnce)), no_s3());
    let claim = desired.assets_claim.as_ref().expect("the operator makes the claim");
    assert_eq!(claim.metadata.name.as_deref(), Some("penpot-assets"));
    let claim_spec = serde_json::to_value(claim.spec.as_ref().unwrap()).unwrap();
    assert_eq!(
        claim_spec,
        serde_json::json!({"accessModes": ["ReadWriteOnce"], "storageClassName": "nfs", "resources": {"requests": {"storage": "50Gi"}}})
    );
    assert!(desired.objects().unwrap().iter().any(|o| o.kind.as_str() == "PersistentVolumeClaim"));

    let env = backend_env(&desired);
    assert_eq!(env.get("PENPOT_OBJECTS_STORAGE_BACKEND").map(String::as_str), Some("fs"), "{}", show(&env));
    assert_eq!(env.get("PENPOT_OBJECTS_STORAGE_FS_DIRECTORY").map(String::as_str), Some("/opt/data/assets"));
    assert!(!env.keys().any(|k| k.starts_with("AWS_") || k.contains("_S3_")), "{}", show(&env));
    assert!(config_text(&desired, "nginx.conf").contains("alias /opt/data/assets;"));

    let pod = desired.statefulset.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let volume = pod.volumes.iter().flatten().find(|v| v.name == "assets").expect("an assets volume");
    assert_eq!(volume.persistent_volume_claim.as_ref().unwrap().claim_name, "penpot-assets");
    let mounts = |name: &str| {
        let c = pod.containers.iter().find(|c| c.name == name).unwrap();
        c.volume_mounts.iter().flatten().filter(|m| m.name == "assets").cloned().collect::<Vec<_>>()
    };
    let (nginx, backend) = (mounts("nginx"), mounts("penpot"));
    assert_eq!((nginx.len(), backend.len()), (1, 1), "one mount in each");
    assert_eq!((nginx[0].mount_path.as_str(), nginx[0].read_only), ("/opt/data/assets", Some(true)));
    assert_eq!((backend[0].mount_path.as_str(), backend[0].read_only), ("/opt/data/assets", None));
    assert!(mounts("exporter").is_empty(), "the exporter uploads through the API");

    // Before 2.11 the same, under the old names.
    let mut old = filesystem(None, AccessMode::ReadWriteOnce);
    old.version = Some("2.10.1".into());
    let env = backend_env(&render_ok(&penpot(old), no_s3()));
    assert_eq!(env.get("PENPOT_ASSETS_STORAGE_BACKEND").map(String::as_str), Some("assets-fs"));
    assert_eq!(env.get("PENPOT_STORAGE_ASSETS_FS_DIRECTORY").map(String::as_str), Some("/opt/data/assets"));

    // An existing claim: mounted, not made.
    let mut many = filesystem(Some("shared-assets"), AccessMode::ReadWriteMany);
    many.replicas = 3;
    let desired = render_ok(&penpot(many), no_s3());
    assert!(desired.assets_claim.is_none());
    let pod = desired.statefulset.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let volume = pod.volumes.iter().flatten().find(|v| v.name == "assets").unwrap();
    assert_eq!(volume.persistent_volume_claim.as_ref().unwrap().claim_name, "shared-assets");

    // S3 renders no volume and no alias.
    let desired = render_ok(&penpot(spec()), relations());
    assert!(desired.assets_claim.is_none() && !config_text(&desired, "nginx.conf").contains("/internal/assets"));
}

/// The storage choices the operator refuses, each naming the fields.
#[test]
fn filesystem_storage_refusals_name_the_fields() {
    use penpot_operator::crd::AccessMode;
    let error = |spec: PenpotSpec, relations: Relations| match render(&penpot(spec), &inputs(relations)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("rendered"),
    };
    let mut rwo = filesystem(None, AccessMode::ReadWriteOnce);
    rwo.replicas = 2;
    let e = error(rwo, Relations { s3: None, ..relations() });
    assert!(e.contains("spec.storage.filesystem.accessMode") && e.contains("ReadWriteMany"), "{e}");
    let e = error(filesystem(None, AccessMode::ReadWriteOnce), relations());
    assert!(e.contains("spec.s3 and spec.storage.filesystem"), "{e}");
    let e = error(spec(), Relations { s3: None, ..relations() });
    assert!(e.contains("set spec.s3 (a bucket) or spec.storage.filesystem"), "{e}");
}

/// Cloud identity (issue 15, item 3): annotations make the pods' own ServiceAccount (token not
/// mounted: identity webhooks project their own), a name uses an existing one, and an S3
/// relation without keys renders no AWS variables, so the SDK's default chain takes over.
#[test]
fn workload_identity_service_account_and_keyless_s3() {
    use penpot_operator::crd::WorkloadServiceAccount;
    let mut s = spec();
    s.service_account = Some(WorkloadServiceAccount {
        name: None,
        annotations: Some(
            [("eks.amazonaws.com/role-arn".to_string(), "arn:aws:iam::1:role/penpot".to_string())].into(),
        ),
    });
    let bucket_only = d(&[("bucket", "penpot"), ("region", "eu-west-1")]);
    let keyless = s3::parse(&SecretData::new(Relation::S3, "s3", &bucket_only), true).unwrap();
    let desired = render_ok(&penpot(s), Relations { s3: Some(keyless), ..relations() });
    let account = desired.service_account.as_ref().expect("a ServiceAccount with annotations");
    assert_eq!(account.metadata.name.as_deref(), Some("penpot"));
    assert_eq!(
        account.metadata.annotations.as_ref().unwrap().get("eks.amazonaws.com/role-arn").map(String::as_str),
        Some("arn:aws:iam::1:role/penpot")
    );
    assert_eq!(account.automount_service_account_token, Some(false));
    let pod = desired.statefulset.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("penpot"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let env = backend_env(&desired);
    assert!(!env.keys().any(|k| k.starts_with("AWS_")), "{}", show(&env));
    assert_eq!(env.get("PENPOT_OBJECTS_STORAGE_S3_BUCKET").map(String::as_str), Some("penpot"));
    assert!(desired.objects().unwrap().iter().any(|o| o.kind.as_str() == "ServiceAccount"));

    let mut s = spec();
    s.service_account = Some(WorkloadServiceAccount { name: Some("penpot-irsa".into()), annotations: None });
    let desired = render_ok(&penpot(s), relations());
    assert!(desired.service_account.is_none(), "an existing account is used, not made");
    let pod = desired.statefulset.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("penpot-irsa"));

    let desired = render_ok(&penpot(spec()), relations());
    let pod = desired.statefulset.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert!(desired.service_account.is_none() && pod.service_account_name.is_none(), "the namespace's default");
}

/// Gateway API (issue 15, item 6): an HTTPRoute to the Service on the public URI's host, its
/// parents as given; refused, naming the field, when the cluster has no Gateway API.
#[test]
fn gateway_http_route_to_the_service() {
    use penpot_operator::crd::{GatewayParentRef, GatewaySpec};
    let mut s = spec();
    s.gateway = Some(GatewaySpec {
        parent_refs: vec![GatewayParentRef {
            name: "shared".into(),
            namespace: Some("infra".into()),
            section_name: Some("https".into()),
        }],
        hostnames: vec![],
    });
    let with_gateway = Inputs { gateway_api: true, ..inputs(relations()) };
    let desired = render(&penpot(s.clone()), &with_gateway).expect("renders");
    let route = desired.http_route.as_ref().expect("an HTTPRoute");
    let value = serde_json::to_value(route).unwrap();
    assert_eq!(value["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(value["kind"], "HTTPRoute");
    assert_eq!(
        value["spec"],
        serde_json::json!({
            "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shared", "namespace": "infra", "sectionName": "https"}],
            "hostnames": ["penpot.local"],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"kind": "Service", "name": "penpot", "port": 8080}],
            }],
        })
    );
    assert_eq!(value["metadata"]["ownerReferences"], serde_json::Value::Null, "no uid offline, no owner");
    assert!(desired.objects().unwrap().iter().any(|o| o.kind.as_str() == "HTTPRoute"));

    s.gateway.as_mut().unwrap().hostnames = vec!["design.example.com".into()];
    let desired = render(&penpot(s.clone()), &with_gateway).unwrap();
    let value = serde_json::to_value(desired.http_route.unwrap()).unwrap();
    assert_eq!(value["spec"]["hostnames"], serde_json::json!(["design.example.com"]));

    let e = render(&penpot(s), &inputs(relations())).expect_err("no Gateway API").to_string();
    assert!(e.contains("spec.gateway") && e.contains("gateway.networking.k8s.io/v1"), "{e}");
    assert!(render_ok(&penpot(spec()), relations()).http_route.is_none());
}

/// More login options (issue 15, item 5): Google, GitHub, GitLab and LDAP from their Secrets,
/// each with its flag; OIDC's roles and claims; the callback URIs for status; password login
/// and OIDC's need for SMTP as the user's choice, today's behaviour the default.
#[test]
fn login_providers_reach_the_backend_and_status() {
    use penpot_operator::crd::{OidcRelation, UserInfoSource};
    use penpot_operator::relations::logins;
    let client = |d: &Data, gitlab: bool| {
        let relation = if gitlab { Relation::Gitlab } else { Relation::Google };
        logins::oauth_client(&SecretData::new(relation, "x", d), gitlab).unwrap()
    };
    let ldap_data = d(&[
        ("host", "ldap.corp.svc"),
        ("transport_security", "starttls"),
        ("base_dn", "dc=corp,dc=example"),
        ("bind_dn", "cn=penpot,dc=corp,dc=example"),
        ("bind_password", "ldap-bind-secret"),
    ]);
    let providers = Relations {
        google: Some(client(&d(&[("client_id", "g-id"), ("client_secret", "g-secret")]), false)),
        gitlab: Some(client(
            &d(&[("client-id", "gl-id"), ("client-secret", "gl-secret"), ("base_uri", "https://gitlab.corp.example/")]),
            true,
        )),
        ldap: Some(logins::ldap(&SecretData::new(Relation::Ldap, "ldap", &ldap_data)).unwrap()),
        oidc: Some(oidc::parse(&SecretData::new(Relation::Oidc, "oidc", &oidc_data())).unwrap()),
        ..relations()
    };
    let mut s = spec();
    s.public_uri = Some("https://penpot.example.com/design/".into());
    s.oidc = Some(OidcRelation {
        roles: vec!["designer".into(), "staff".into()],
        roles_attribute: Some("realm_access.roles".into()),
        email_attribute: Some("mail".into()),
        user_info_source: Some(UserInfoSource::Token),
        ..OidcRelation::from_secret("oidc")
    });
    let desired = render_ok(&penpot(s.clone()), providers.clone());
    let env = backend_env(&desired);
    for (key, want) in [
        ("PENPOT_GOOGLE_CLIENT_ID", "g-id"),
        ("PENPOT_GOOGLE_CLIENT_SECRET", "g-secret"),
        ("PENPOT_GITLAB_CLIENT_ID", "gl-id"),
        ("PENPOT_GITLAB_BASE_URI", "https://gitlab.corp.example"),
        ("PENPOT_LDAP_HOST", "ldap.corp.svc"),
        ("PENPOT_LDAP_PORT", "389"),
        ("PENPOT_LDAP_STARTTLS", "true"),
        ("PENPOT_LDAP_SSL", "false"),
        ("PENPOT_LDAP_BASE_DN", "dc=corp,dc=example"),
        ("PENPOT_LDAP_BIND_PASSWORD", "ldap-bind-secret"),
        ("PENPOT_OIDC_ROLES", "designer staff"),
        ("PENPOT_OIDC_ROLES_ATTR", "realm_access.roles"),
        ("PENPOT_OIDC_EMAIL_ATTR", "mail"),
        ("PENPOT_OIDC_USER_INFO_SOURCE", "token"),
    ] {
        assert_eq!(env.get(key).map(String::as_str), Some(want), "{key}\n{}", show(&env));
    }
    assert!(!env.contains_key("PENPOT_GITHUB_CLIENT_ID") && !env.contains_key("PENPOT_OIDC_NAME_ATTR"));
    let flags = &env["PENPOT_FLAGS"];
    for flag in
        ["enable-login-with-google", "enable-login-with-gitlab", "enable-login-with-ldap", "enable-login-with-oidc"]
    {
        assert!(flags.contains(flag), "{flag}: {flags}");
    }
    // Sign-up through the providers only.
    assert!(
        flags.contains("disable-login-with-password")
            && flags.contains("disable-registration")
            && flags.contains("enable-oidc-registration"),
        "{flags}"
    );
    assert!(config_text(&desired, "config.js").contains("enable-login-with-google"));
    assert_eq!(
        desired.redirect_uris,
        [
            ("gitlab", "https://penpot.example.com/api/auth/oidc/callback"),
            ("google", "https://penpot.example.com/api/auth/oidc/callback"),
            ("oidc", "https://penpot.example.com/api/auth/oidc/callback"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into()
    );

    // Before 2.12 each provider had its own callback.
    let mut old = s.clone();
    old.version = Some("2.11.1".into());
    let desired = render_ok(&penpot(old), providers.clone());
    assert_eq!(desired.redirect_uris["google"], "https://penpot.example.com/api/auth/oauth/google/callback");

    // Password login kept on request; OIDC without SMTP when asked not to need it.
    s.password_login = Some(true);
    s.oidc.as_mut().unwrap().require_smtp = false;
    let desired = render_ok(&penpot(s), Relations { smtp: None, ..providers });
    assert!(backend_env(&desired)["PENPOT_FLAGS"].contains("enable-login-with-password"));
    // No way in at all is refused, naming the field.
    let mut closed = spec();
    closed.password_login = Some(false);
    let e = render(&penpot(closed), &inputs(relations())).expect_err("nobody could log in").to_string();
    assert!(e.contains("spec.passwordLogin"), "{e}");
    // And without any provider, today's flags and no callback.
    let desired = render_ok(&penpot(spec()), relations());
    assert!(desired.redirect_uris.is_empty());
    assert!(backend_env(&desired)["PENPOT_FLAGS"].contains("disable-registration"));
}
