//! Relation Secrets with arbitrary keys and bytes, parsed and rendered.
//!
//! No input may panic. When the data resolves, the Pebble layer the operator writes must read
//! back with every user-supplied value exactly where it was put: a value cannot add a key,
//! a service or a line to the layer.

#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use penpot_operator::crd::{Penpot, PenpotSpec, Relation};
use penpot_operator::relations::{self, Found, Resolution, SecretData};
use penpot_operator::render::{self, Inputs, paths};
use serde_json::Value;

/// Every key some relation parser reads, so the fuzzer gets past "is missing" quickly.
const KEYS: &str = "endpoints host hostname port database dbname username user password uri url tls \
    access-key AWS_ACCESS_KEY_ID secret-key AWS_SECRET_ACCESS_KEY bucket BUCKET_NAME region BUCKET_REGION \
    BUCKET_HOST BUCKET_PORT endpoint path s3-uri-style domain auth_type transport_security skip_ssl_verify \
    client_id client-id client_secret client-secret issuer_url issuer authorization_endpoint token_endpoint \
    userinfo_endpoint scope";

/// Data every relation accepts: the fuzzer starts from a rendering instance and edits it, so
/// it spends its time past "is missing" (OIDC gives its endpoints: render does no discovery).
const BASELINE: &[(Relation, &str, &str)] = &[
    (Relation::Postgresql, "endpoints", "pg.db.svc:5432"),
    (Relation::Postgresql, "database", "penpot"),
    (Relation::Postgresql, "username", "penpot"),
    (Relation::Postgresql, "password", "pg-password"),
    (Relation::Redis, "hostname", "valkey.db.svc"),
    (Relation::Redis, "port", "6379"),
    (Relation::S3, "access-key", "penpot"),
    (Relation::S3, "secret-key", "s3-secret"),
    (Relation::S3, "bucket", "penpot"),
    (Relation::S3, "endpoint", "http://minio.storage.svc:9000"),
    (Relation::Smtp, "host", "mail.example.com"),
    (Relation::Smtp, "port", "587"),
    (Relation::Smtp, "user", "penpot"),
    (Relation::Smtp, "password", "smtp-password"),
    (Relation::Smtp, "domain", "example.com"),
    (Relation::Oidc, "client_id", "penpot"),
    (Relation::Oidc, "client_secret", "oidc-secret"),
    (Relation::Oidc, "issuer_url", "https://idp.example.com/realms/penpot"),
    (Relation::Oidc, "authorization_endpoint", "https://idp.example.com/auth"),
    (Relation::Oidc, "token_endpoint", "https://idp.example.com/token"),
    (Relation::Oidc, "userinfo_endpoint", "https://idp.example.com/userinfo"),
];

/// One edit of the baseline: set a key to arbitrary bytes, or remove it.
#[derive(Arbitrary, Debug)]
struct Edit {
    relation: u8,
    /// A word of `KEYS`, or (past its end) the free-form `raw_key`.
    key: u8,
    raw_key: String,
    value: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    edits: Vec<Edit>,
    with_smtp: bool,
    with_oidc: bool,
    image_tag: u8,
}

fuzz_target!(|input: Input| {
    let spec: PenpotSpec = serde_json::from_value(serde_json::json!({
        "publicUri": "https://penpot.example.com",
        "images": {"penpot": format!("penpotapp/backend:2.{}.0", input.image_tag % 20)},
        "postgresql": {"secretRef": {"name": "pg"}},
        "redis": {"secretRef": {"name": "redis"}},
        "s3": {"secretRef": {"name": "s3"}},
        "smtp": input.with_smtp.then(|| serde_json::json!({"secretRef": {"name": "smtp"}})),
        "oidc": input.with_oidc.then(|| serde_json::json!({"secretRef": {"name": "oidc"}})),
    }))
    .expect("the fixed spec parses");
    let mut found = Found::new();
    for (relation, key, value) in BASELINE {
        if let Some(secret) = spec.secret_name(*relation) {
            let (_, data) = found.entry(*relation).or_insert_with(|| (secret.to_string(), BTreeMap::new()));
            data.insert(key.to_string(), value.as_bytes().to_vec());
        }
    }
    for e in input.edits {
        let relation = Relation::ALL[usize::from(e.relation) % Relation::ALL.len()];
        let Some((_, data)) = found.get_mut(&relation) else { continue };
        let key = KEYS.split_whitespace().nth(usize::from(e.key)).map_or(e.raw_key, str::to_string);
        match e.value {
            Some(value) => data.insert(key, value),
            None => data.remove(&key),
        };
    }

    for (relation, (name, data)) in &found {
        let check = relations::check(&spec, &SecretData::new(*relation, name, data));
        if let Err(e) = check {
            assert_eq!(e.relation, *relation);
            assert_eq!(&e.secret, name);
        }
    }
    let Resolution::Ready(resolved) = relations::resolve(&spec, &found) else { return };
    let mut penpot = Penpot::new("fuzz", spec);
    penpot.metadata.namespace = Some("default".into());
    let inputs = Inputs {
        relations: *resolved,
        secret_key: "k".repeat(64),
        prometheus_operator: true,
        init_image: "example.org/penpot-operator:1".into(),
        live: None,
        backup: Default::default(),
        ca_bundle: None,
        gateway_api: false,
    };
    let Ok(desired) = render::render(&penpot, &inputs) else { return };

    let data = desired.config.data.unwrap_or_default();
    let layer = data.get(paths::PENPOT_LAYER_FILE).expect("the config Secret holds the penpot layer");
    let layer = std::str::from_utf8(&layer.0).expect("the layer is UTF-8");
    let layer: Value = serde_saphyr::from_str(layer).expect("the rendered layer is YAML");
    let env = &layer["services"]["backend"]["environment"];
    let r = &inputs.relations;
    for (key, want) in [
        ("PENPOT_DATABASE_URI", &r.postgresql.uri),
        ("PENPOT_DATABASE_USERNAME", &r.postgresql.username),
        ("PENPOT_DATABASE_PASSWORD", &r.postgresql.password),
        ("PENPOT_REDIS_URI", &r.redis.uri),
    ] {
        assert_eq!(env[key].as_str(), Some(want.as_str()), "{key} did not survive the layer YAML");
    }
    if let Some(keys) = r.s3.as_ref().and_then(|s3| s3.keys.as_ref()) {
        for (key, want) in [("AWS_ACCESS_KEY_ID", &keys.access_key), ("AWS_SECRET_ACCESS_KEY", &keys.secret_key)] {
            assert_eq!(env[key].as_str(), Some(want.as_str()), "{key} did not survive the layer YAML");
        }
    }
    let services: Vec<&String> = layer["services"].as_object().expect("services is a map").keys().collect();
    assert_eq!(services, ["backend"], "unexpected services");
});
