//! `penpot-operator render`: the reconcile's output for a Penpot and its Secrets, offline.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::cli::RenderArgs;
use crate::conditions::Reason;
use crate::crd::Penpot;
use crate::relations::{self, Resolution};
use crate::render::{self, labels, secrets};
use crate::status::{self, Observation};

/// Invalid input: exit status 2 and a message naming the document and field.
#[derive(thiserror::Error, Debug)]
pub enum InputError {
    #[error("{0}: cannot read: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: not YAML: {1}")]
    Yaml(String, String),
    #[error("no Penpot found in the input")]
    NoPenpot,
    #[error("{0}: a second Penpot; render takes exactly one")]
    TwoPenpots(String),
    #[error("{0}: {1}")]
    Invalid(String, String),
    #[error("cannot serialise the output: {0}")]
    Output(String),
}

pub fn main(args: &RenderArgs) -> ExitCode {
    let mut inputs = Vec::new();
    for path in &args.files {
        match read(path) {
            Ok(text) => inputs.push((path.display().to_string(), text)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match render_with(&inputs, args.prometheus_operator, secrets::generate_secret_key) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn read(path: &Path) -> Result<String, InputError> {
    let name = path.display().to_string();
    if name == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| InputError::Read("<stdin>".into(), e))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| InputError::Read(name, e))
}

/// Renders (source name, YAML text) inputs into one multi-document YAML stream.
/// `new_key` supplies the secret key when the input holds no `<name>-secret-key` Secret.
pub fn render_documents(inputs: &[(String, String)], new_key: impl Fn() -> String) -> Result<String, InputError> {
    render_with(inputs, false, new_key)
}

/// `render_documents`, optionally as if the Prometheus Operator were installed.
pub fn render_with(
    inputs: &[(String, String)],
    prometheus_operator: bool,
    new_key: impl Fn() -> String,
) -> Result<String, InputError> {
    let mut penpot: Option<(String, Value)> = None;
    let mut secret_docs: BTreeMap<String, Secret> = BTreeMap::new();
    for (source, text) in inputs {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| InputError::Yaml(source.clone(), e.to_string()))?;
        // `kubectl get -o yaml` of several objects gives one `List`: read its items.
        let docs = docs.into_iter().flat_map(|d| match d.get("kind").and_then(Value::as_str) {
            Some("List") => d.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
            _ => vec![d],
        });
        for (i, doc) in docs.enumerate().filter(|(_, d)| !d.is_null()) {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
            let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?").to_string();
            let label = format!("{source} document {} ({kind} {name})", i + 1);
            match kind.as_str() {
                "Penpot" if penpot.is_some() => return Err(InputError::TwoPenpots(label)),
                "Penpot" => penpot = Some((label, doc)),
                "Secret" => {
                    let secret: Secret =
                        serde_json::from_value(doc).map_err(|e| InputError::Invalid(label, e.to_string()))?;
                    secret_docs.insert(name, secret);
                }
                _ => eprintln!("note: {label}: ignored (only Penpot and Secret documents are read)"),
            }
        }
    }
    let (label, doc) = penpot.ok_or(InputError::NoPenpot)?;
    let schema = serde_json::to_value(Penpot::crd()).map_err(|e| InputError::Output(e.to_string()))?;
    let open_api = schema.pointer("/spec/versions/0/schema/openAPIV3Schema").cloned().unwrap_or(Value::Null);
    crate::schema::check(&open_api, &doc, "").map_err(|e| InputError::Invalid(label.clone(), e))?;
    let mut penpot: Penpot = serde_json::from_value(doc).map_err(|e| InputError::Invalid(label, e.to_string()))?;
    penpot.status = None;

    let name = penpot.metadata.name.clone().unwrap_or_default();
    let version = render::penpot_version(&penpot);
    let version_str = version.to_string();
    let mut out: Vec<Value> = Vec::new();

    let key_name = labels::secret_key_secret_name(&name);
    let secret_key = match secret_docs.get(&key_name) {
        Some(existing) => secrets::read_secret_key(&with_string_data(existing)).ok_or_else(|| {
            InputError::Invalid(
                key_name.clone(),
                format!("key {:?} is not a usable secret key", secrets::SECRET_KEY_FIELD),
            )
        })?,
        None => new_key(),
    };

    let mut found = relations::Found::new();
    for (relation, secret_name) in penpot.spec.referenced_secrets() {
        if let Some(s) = secret_docs.get(secret_name) {
            let data = with_string_data(s).data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
            found.insert(relation, (secret_name.to_string(), data));
        }
    }
    let ctx = status::Context {
        generation: penpot.metadata.generation,
        previous: None,
        now: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        public_uri: render::validate::public_uri(&penpot).ok(),
        version: Some(version_str.clone()),
    };
    let status = match relations::resolve(&penpot.spec, &found) {
        Resolution::Missing(missing) => {
            status::compute(&ctx, &Observation::WaitingForRelations { missing, workload: None })
        }
        Resolution::Invalid(e) => status::compute(
            &ctx,
            &Observation::Blocked { reason: Reason::InvalidRelation, message: e.to_string(), workload: None },
        ),
        Resolution::Ready(relations) => {
            if relations.oidc.as_ref().is_some_and(|o| o.endpoints.is_none()) {
                eprintln!("note: offline render does not discover OIDC endpoints; the operator fills them in");
            }
            match render::render(
                &penpot,
                &render::Inputs { relations: *relations, secret_key: secret_key.clone(), prometheus_operator },
            ) {
                Ok(desired) => {
                    // Like the controller, the key Secret appears once the relations resolve.
                    let key_secret = secrets::secret_key_secret(&render::meta(&penpot, &version_str), &secret_key);
                    out.push(to_value(&key_secret)?);
                    let objects = desired.objects().map_err(|e| InputError::Output(e.to_string()))?;
                    out.extend(objects.into_iter().map(|o| o.value));
                    let fresh = StatefulSet { status: None, ..desired.statefulset.clone() };
                    status::compute(&ctx, &Observation::Applied { workload: &fresh, config_hash: desired.config_hash })
                }
                Err(e) => status::compute(
                    &ctx,
                    &Observation::Blocked { reason: Reason::InvalidSpec, message: e.to_string(), workload: None },
                ),
            }
        }
    };
    penpot.status = Some(status);
    out.push(to_value(&penpot)?);
    serde_saphyr::to_string_multiple(&out).map_err(|e| InputError::Output(e.to_string()))
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, InputError> {
    serde_json::to_value(v).map_err(|e| InputError::Output(e.to_string()))
}

/// A Secret as the API server would store it: `stringData` folded into `data`.
fn with_string_data(secret: &Secret) -> Secret {
    let mut s = secret.clone();
    if let Some(string_data) = s.string_data.take() {
        let data = s.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in string_data {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    s
}
