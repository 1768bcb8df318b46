//! The Pebble layers of the three containers: `penpot` runs the backend, `exporter` the
//! exporter, `nginx` the frontend. The layer is the single source of each service's
//! environment; the image's own (PATH, JAVA_HOME, ...) reaches the services through Pebble.

use std::collections::BTreeMap;

use crate::relations::{Relations, logins::LdapSecurity, smtp::TransportSecurity};

use super::flags::Flags;
use super::paths;
use crate::crd::LokiSpec;

use super::pebble::{Action, Check, Layer, Level, LogTarget, Override, Service};
use super::validate::Settings;
use super::version::Version;

pub struct LayerInputs<'a> {
    pub instance: &'a str,
    pub settings: &'a Settings,
    pub relations: &'a Relations,
    pub flags: &'a Flags,
    pub secret_key: &'a str,
    pub logging: Option<&'a Logging<'a>>,
    /// `spec.env`, checked against the operator's own variables before the layers are made.
    pub extra_env: Option<&'a crate::crd::ExtraEnv>,
    /// `spec.caBundle` is set: the init container wrote the trust files of `paths::CA_DIR`.
    pub private_ca: bool,
    /// `spec.oidc`: how the IdP's users map to Penpot's (roles, claims).
    pub oidc_options: Option<&'a crate::crd::OidcRelation>,
}

/// The JVM's trust store replaced by the public roots plus `spec.caBundle`'s. Through
/// `JAVA_TOOL_OPTIONS`, which every JVM reads, so `JAVA_OPTS` stays the user's (heap sizing).
fn java_trust_options() -> String {
    format!(
        "-Djavax.net.ssl.trustStore={} -Djavax.net.ssl.trustStoreType=JKS -Djavax.net.ssl.trustStorePassword={}",
        paths::TRUST_STORE,
        crate::trust::TRUST_STORE_PASSWORD
    )
}

/// Environment of the backend service.
pub fn backend_environment(i: &LayerInputs) -> BTreeMap<String, String> {
    let s = i.settings;
    let r = i.relations;
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    set("PENPOT_PUBLIC_URI", s.public_uri.clone());
    set("PENPOT_SECRET_KEY", i.secret_key.to_string());
    set("PENPOT_FLAGS", i.flags.backend_str());
    set("PENPOT_TELEMETRY_ENABLED", s.telemetry.to_string());
    if let Some(bytes) = s.max_body_size {
        set("PENPOT_HTTP_SERVER_MAX_BODY_SIZE", bytes.to_string());
    }
    if !s.registration_domains.is_empty() {
        set("PENPOT_REGISTRATION_DOMAIN_WHITELIST", s.registration_domains.join(","));
    }
    set("PENPOT_TENANT", s.tenant.clone());
    if i.private_ca {
        set("JAVA_TOOL_OPTIONS", java_trust_options());
    }

    set("PENPOT_DATABASE_URI", r.postgresql.uri.clone());
    set("PENPOT_DATABASE_USERNAME", r.postgresql.username.clone());
    set("PENPOT_DATABASE_PASSWORD", r.postgresql.password.clone());
    set("PENPOT_DATABASE_MAX_POOL_SIZE", s.pool_size.to_string());

    set("PENPOT_REDIS_URI", r.redis.uri.clone());

    // Penpot 2.11 renamed the storage settings; the old names still win if both are set, so
    // only one family is ever rendered.
    let modern = s.version >= Version::OBJECTS_STORAGE_NAMES;
    match &r.s3 {
        Some(s3) if !s.filesystem_storage => {
            // Without keys (workload identity) the AWS SDK's default chain takes over.
            if let Some(keys) = &s3.keys {
                set("AWS_ACCESS_KEY_ID", keys.access_key.clone());
                set("AWS_SECRET_ACCESS_KEY", keys.secret_key.clone());
            }
            let (backend_key, backend_value, prefix) = if modern {
                ("PENPOT_OBJECTS_STORAGE_BACKEND", "s3", "PENPOT_OBJECTS_STORAGE_S3")
            } else {
                ("PENPOT_ASSETS_STORAGE_BACKEND", "assets-s3", "PENPOT_STORAGE_ASSETS_S3")
            };
            set(backend_key, backend_value.into());
            set(&format!("{prefix}_BUCKET"), s3.bucket.clone());
            set(&format!("{prefix}_REGION"), s3.region.clone());
            if let Some(endpoint) = &s3.endpoint {
                set(&format!("{prefix}_ENDPOINT"), endpoint.clone());
            }
        }
        // Validation guarantees one of the two; the volume is mounted at ASSETS_DIR, the
        // directory nginx's `/internal/assets` serves (the backend's default is relative).
        _ => {
            let (backend_key, backend_value, dir_key) = if modern {
                ("PENPOT_OBJECTS_STORAGE_BACKEND", "fs", "PENPOT_OBJECTS_STORAGE_FS_DIRECTORY")
            } else {
                ("PENPOT_ASSETS_STORAGE_BACKEND", "assets-fs", "PENPOT_STORAGE_ASSETS_FS_DIRECTORY")
            };
            set(backend_key, backend_value.into());
            set(dir_key, paths::ASSETS_DIR.into());
        }
    }

    if let Some(smtp) = &r.smtp {
        set("PENPOT_SMTP_HOST", smtp.host.clone());
        set("PENPOT_SMTP_PORT", smtp.port.to_string());
        if let Some(user) = &smtp.username {
            set("PENPOT_SMTP_USERNAME", user.clone());
        }
        if let Some(password) = &smtp.password {
            set("PENPOT_SMTP_PASSWORD", password.clone());
        }
        // Penpot's TLS is STARTTLS and its SSL is implicit TLS (the charm has them swapped).
        set("PENPOT_SMTP_TLS", (smtp.security == TransportSecurity::StartTls).to_string());
        set("PENPOT_SMTP_SSL", (smtp.security == TransportSecurity::Tls).to_string());
        set("PENPOT_SMTP_DEFAULT_FROM", smtp.from.clone());
        set("PENPOT_SMTP_DEFAULT_REPLY_TO", smtp.from.clone());
    }

    if let Some(oidc) = &r.oidc {
        set("PENPOT_OIDC_CLIENT_ID", oidc.client_id.clone());
        set("PENPOT_OIDC_CLIENT_SECRET", oidc.client_secret.clone());
        set("PENPOT_OIDC_BASE_URI", oidc.issuer.clone());
        set("PENPOT_OIDC_SCOPES", oidc.scopes.clone());
        if let Some(e) = &oidc.endpoints {
            set("PENPOT_OIDC_AUTH_URI", e.authorization.clone());
            set("PENPOT_OIDC_TOKEN_URI", e.token.clone());
            set("PENPOT_OIDC_USER_URI", e.userinfo.clone());
        }
    }
    if let Some(o) = i.oidc_options.filter(|_| r.oidc.is_some()) {
        if !o.roles.is_empty() {
            set("PENPOT_OIDC_ROLES", o.roles.join(" "));
        }
        let claims = [
            ("PENPOT_OIDC_ROLES_ATTR", &o.roles_attribute),
            ("PENPOT_OIDC_NAME_ATTR", &o.name_attribute),
            ("PENPOT_OIDC_EMAIL_ATTR", &o.email_attribute),
        ];
        for (key, value) in claims {
            if let Some(value) = value {
                set(key, value.clone());
            }
        }
        if let Some(source) = o.user_info_source {
            set("PENPOT_OIDC_USER_INFO_SOURCE", source.as_str().into());
        }
    }
    for (prefix, client) in [("GOOGLE", &r.google), ("GITHUB", &r.github), ("GITLAB", &r.gitlab)] {
        if let Some(c) = client {
            set(&format!("PENPOT_{prefix}_CLIENT_ID"), c.client_id.clone());
            set(&format!("PENPOT_{prefix}_CLIENT_SECRET"), c.client_secret.clone());
            if let Some(base) = &c.base_uri {
                set(&format!("PENPOT_{prefix}_BASE_URI"), base.clone());
            }
        }
    }
    if let Some(ldap) = &r.ldap {
        set("PENPOT_LDAP_HOST", ldap.host.clone());
        set("PENPOT_LDAP_PORT", ldap.port.to_string());
        set("PENPOT_LDAP_SSL", (ldap.security == LdapSecurity::Tls).to_string());
        set("PENPOT_LDAP_STARTTLS", (ldap.security == LdapSecurity::StartTls).to_string());
        set("PENPOT_LDAP_BASE_DN", ldap.base_dn.clone());
        let optional = [
            ("PENPOT_LDAP_BIND_DN", &ldap.bind_dn),
            ("PENPOT_LDAP_BIND_PASSWORD", &ldap.bind_password),
            ("PENPOT_LDAP_USER_QUERY", &ldap.user_query),
            ("PENPOT_LDAP_ATTRS_USERNAME", &ldap.attrs_username),
            ("PENPOT_LDAP_ATTRS_EMAIL", &ldap.attrs_email),
            ("PENPOT_LDAP_ATTRS_FULLNAME", &ldap.attrs_fullname),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                set(key, value.clone());
            }
        }
    }
    if s.version >= Version::SSRF_PROTECTION && !s.ssrf_allowed_hosts.is_empty() {
        set("PENPOT_SSRF_ALLOWED_HOSTS", s.ssrf_allowed_hosts.join(","));
    }
    env
}

/// Environment of the exporter service.
pub fn exporter_environment(i: &LayerInputs) -> BTreeMap<String, String> {
    let s = i.settings;
    let local_frontend = format!("http://localhost:{}", paths::NGINX_PORT);
    let mut env = BTreeMap::new();
    if s.version >= Version::EXPORTER_INTERNAL_URI {
        // 2.17 loads pages from the internal URI, and in exported SVGs replaces the internal
        // URI's text with the public URI's: both without a trailing slash, or links get `//`.
        env.insert("PENPOT_PUBLIC_URI".into(), s.public_uri.trim_end_matches('/').to_string());
        env.insert("PENPOT_INTERNAL_URI".into(), local_frontend);
    } else {
        // Older exporters load the public URI in Chromium: point them at this pod's nginx.
        env.insert("PENPOT_PUBLIC_URI".into(), local_frontend);
    }
    env.insert("PENPOT_REDIS_URI".into(), i.relations.redis.uri.clone());
    env.insert("PENPOT_TENANT".into(), s.tenant.clone());
    env.insert("PENPOT_SECRET_KEY".into(), i.secret_key.to_string());
    env.insert("PENPOT_TEMPDIR".into(), "/tmp/penpot-exporter".into());
    if i.private_ca {
        // Node adds these to its own roots.
        env.insert("NODE_EXTRA_CA_CERTS".into(), paths::CA_EXTRA.into());
    }
    env
}

/// The operator's variables plus the user's (which never collide: `check_extra_env`).
fn with_extra(mut env: BTreeMap<String, String>, extra: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    for (name, value) in extra.into_iter().flatten() {
        env.entry(name.clone()).or_insert_with(|| value.clone());
    }
    env
}

fn description(instance: &str) -> String {
    format!("Rendered by penpot-operator for Penpot {instance}; edits are overwritten.")
}

/// A layer of one service and its checks.
fn layer(
    summary: &str,
    instance: &str,
    logging: Option<&Logging>,
    service: (&str, Service),
    checks: BTreeMap<String, Check>,
) -> Layer {
    let services: BTreeMap<String, Service> = [(service.0.to_string(), service.1)].into();
    Layer {
        summary: summary.into(),
        description: description(instance),
        log_targets: log_targets(logging, &services),
        services,
        checks,
    }
}

pub fn penpot_layer(i: &LayerInputs) -> Layer {
    let backend = Service {
        environment: with_extra(backend_environment(i), i.extra_env.map(|e| &e.backend)),
        working_dir: Some(paths::BACKEND_DIR.into()),
        // A dead backend is a dead pod: let Kubernetes see it, count it and back off.
        ..Service::new("Penpot backend", paths::BACKEND_COMMAND, Action::Shutdown)
    };
    let checks = [
        (
            "backend-ready".to_string(),
            Check::http(Some(Level::Ready), format!("http://localhost:{}/readyz", paths::BACKEND_PORT), "10s", 3),
        ),
        // TCP, not /readyz: a database outage must not restart every backend. The threshold
        // gives a cold JVM five minutes to open its port.
        ("backend-alive".to_string(), Check::tcp(Some(Level::Alive), paths::BACKEND_PORT, "30s", 10)),
    ]
    .into();
    layer("Penpot backend", i.instance, i.logging, ("backend", backend), checks)
}

pub fn exporter_layer(i: &LayerInputs) -> Layer {
    let exporter = Service {
        environment: with_extra(exporter_environment(i), i.extra_env.map(|e| &e.exporter)),
        working_dir: Some(paths::EXPORTER_DIR.into()),
        on_check_failure: [("exporter-up".to_string(), Action::Restart)].into(),
        // Exports are optional: restart the exporter rather than fail the pod.
        ..Service::new("Penpot exporter", paths::EXPORTER_COMMAND, Action::Restart)
    };
    let checks = [(
        "exporter-up".to_string(),
        Check::http(None, format!("http://localhost:{}/readyz", paths::EXPORTER_PORT), "30s", 3),
    )]
    .into();
    layer("Penpot exporter", i.instance, i.logging, ("exporter", exporter), checks)
}

pub fn nginx_layer(instance: &str, logging: Option<&Logging>) -> Layer {
    let frontend = Service::new("Penpot frontend (nginx)", paths::NGINX_COMMAND, Action::Shutdown);
    let checks = [
        ("frontend-alive".to_string(), Check::tcp(Some(Level::Alive), paths::NGINX_PORT, "10s", 3)),
        (
            "frontend-ready".to_string(),
            Check::http(
                Some(Level::Ready),
                format!("http://localhost:{}{}", paths::NGINX_PORT, paths::NGINX_HEALTH_PATH),
                "10s",
                3,
            ),
        ),
    ]
    .into();
    layer("Penpot frontend", instance, logging, ("frontend", frontend), checks)
}

/// Where a layer's service logs go, from `spec.logging`.
pub struct Logging<'a> {
    pub loki: &'a LokiSpec,
    pub instance: &'a str,
    pub namespace: &'a str,
}

fn log_targets(logging: Option<&Logging>, services: &BTreeMap<String, Service>) -> BTreeMap<String, LogTarget> {
    let Some(l) = logging else { return BTreeMap::new() };
    let mut labels = l.loki.labels.clone();
    labels.insert("penpot_instance".into(), l.instance.into());
    labels.insert("namespace".into(), l.namespace.into());
    // Pebble fills in $POD_NAME from the service environment if a user adds it; keep ours static.
    [(
        "loki".to_string(),
        LogTarget {
            override_: Override::Replace,
            type_: "loki".into(),
            location: l.loki.url.clone(),
            services: services.keys().cloned().collect(),
            labels,
        },
    )]
    .into()
}
