//! `penpot-operator render`: the reconcile's output for a Penpot and its Secrets, offline.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResourceExt, ResourceExt};
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
    let assume = Assume { prometheus_operator: args.prometheus_operator, init_image: &args.init_image };
    match render_with(&inputs, &assume, secrets::generate_secret_key) {
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
    render_with(inputs, &Assume::default(), new_key)
}

/// What the offline render takes as given about the cluster and the operator.
pub struct Assume<'a> {
    /// The Prometheus Operator is installed.
    pub prometheus_operator: bool,
    pub init_image: &'a str,
}

impl Default for Assume<'_> {
    fn default() -> Self {
        Assume { prometheus_operator: false, init_image: render::statefulset::DEFAULT_INIT_IMAGE }
    }
}

/// `render_documents` under explicit assumptions. A StatefulSet in the input named like the
/// Penpot is taken as the one running (`kubectl get penpot,secret,statefulset -o yaml`), so a
/// version change renders as the controller would carry it out.
pub fn render_with(
    inputs: &[(String, String)],
    assume: &Assume,
    new_key: impl Fn() -> String,
) -> Result<String, InputError> {
    let mut penpot: Option<(String, Value)> = None;
    let mut secret_docs: BTreeMap<String, Secret> = BTreeMap::new();
    let mut statefulsets: BTreeMap<String, StatefulSet> = BTreeMap::new();
    let mut config_maps: BTreeMap<String, ConfigMap> = BTreeMap::new();
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
                "ConfigMap" => {
                    let map: ConfigMap =
                        serde_json::from_value(doc).map_err(|e| InputError::Invalid(label, e.to_string()))?;
                    config_maps.insert(name, map);
                }
                "StatefulSet" => {
                    let sts: StatefulSet =
                        serde_json::from_value(doc).map_err(|e| InputError::Invalid(label, e.to_string()))?;
                    statefulsets.insert(name, sts);
                }
                _ => eprintln!(
                    "note: {label}: ignored (only Penpot, Secret, ConfigMap and StatefulSet documents are read)"
                ),
            }
        }
    }
    let (label, doc) = penpot.ok_or(InputError::NoPenpot)?;
    let penpot = checked_penpot(label, doc)?;
    let secret_key = secret_key(&penpot, &secret_docs, new_key)?;
    let mut found = relations::Found::new();
    for (relation, name) in penpot.spec.referenced_secrets() {
        if let Some(secret) = secret_docs.get(name) {
            found.insert(relation, (name.to_string(), relations::secret_data(secret)));
        }
    }

    let mut out: Vec<Value> = Vec::new();
    let observation = match relations::resolve(&penpot.spec, &found) {
        Resolution::Missing(missing) => Observation::WaitingForRelations { missing, workload: None },
        Resolution::Invalid(e) => {
            Observation::Blocked { reason: Reason::InvalidRelation, message: e.to_string(), workload: None }
        }
        Resolution::Ready(relations) => {
            if relations.oidc.as_ref().is_some_and(|o| o.endpoints.is_none()) {
                eprintln!("note: offline render does not discover OIDC endpoints; the operator fills them in");
            }
            let running = statefulsets.get(&penpot.name_any());
            let inputs = render::Inputs {
                relations: *relations,
                secret_key: secret_key.clone(),
                prometheus_operator: assume.prometheus_operator,
                init_image: assume.init_image.to_string(),
                live: running.map(render::rollout::Live::of),
                // Offline there is no Backup to look at; the operator takes it before upgrading.
                backup: render::rollout::Backup::NotNeeded,
                ca_bundle: offline_ca_bundle(&penpot, &secret_docs, &config_maps)?,
                // Offline, a spec.gateway is rendered as asked: the cluster is not there to ask.
                gateway_api: true,
            };
            match render::render(&penpot, &inputs) {
                Ok(desired) => {
                    // Like the controller, the key Secret appears once the relations resolve.
                    let version = desired.version.to_string();
                    out.push(to_value(&secrets::secret_key_secret(&render::meta(&penpot, &version), &secret_key))?);
                    let objects = desired.objects().map_err(|e| InputError::Output(e.to_string()))?;
                    out.extend(objects.into_iter().map(|o| o.value));
                    // Offline, no StatefulSet controller has looked at it yet.
                    let workload = StatefulSet { status: None, ..desired.statefulset };
                    Observation::Applied { workload, config_hash: desired.config_hash, rollout: desired.rollout }
                }
                Err(e) => {
                    Observation::Blocked { reason: e.reason(), message: e.to_string(), workload: running.cloned() }
                }
            }
        }
    };
    // A fixed clock: the same input prints the same output.
    let status =
        status::compute(&status::Context::of(&penpot, Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)), &observation);
    let penpot = Penpot { status: Some(status), ..penpot };
    out.push(to_value(&penpot)?);
    serde_saphyr::to_string_multiple(&out).map_err(|e| InputError::Output(e.to_string()))
}

/// The Penpot document, checked against the CRD's own schema (as the API server would) and
/// parsed; a status in the input is dropped.
fn checked_penpot(label: String, doc: Value) -> Result<Penpot, InputError> {
    let schema = serde_json::to_value(Penpot::crd()).map_err(|e| InputError::Output(e.to_string()))?;
    let open_api = schema.pointer("/spec/versions/0/schema/openAPIV3Schema").cloned().unwrap_or(Value::Null);
    crate::schema::check(&open_api, &doc, "").map_err(|e| InputError::Invalid(label.clone(), e))?;
    let penpot: Penpot = serde_json::from_value(doc).map_err(|e| InputError::Invalid(label, e.to_string()))?;
    Ok(Penpot { status: None, ..penpot })
}

/// The key from the input's `<name>-secret-key` Secret, or a new one.
fn secret_key(
    penpot: &Penpot,
    secret_docs: &BTreeMap<String, Secret>,
    new_key: impl Fn() -> String,
) -> Result<String, InputError> {
    let key_name = labels::secret_key_secret_name(&penpot.name_any());
    let Some(existing) = secret_docs.get(&key_name) else { return Ok(new_key()) };
    secrets::read_secret_key(&relations::secret_data(existing)).ok_or_else(|| {
        InputError::Invalid(key_name.clone(), format!("key {:?} is not a usable secret key", secrets::SECRET_KEY_FIELD))
    })
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, InputError> {
    serde_json::to_value(v).map_err(|e| InputError::Output(e.to_string()))
}

/// `spec.caBundle` from the input's Secrets and ConfigMaps. Missing or invalid stops the
/// render, naming it.
fn offline_ca_bundle(
    penpot: &Penpot,
    secrets: &BTreeMap<String, Secret>,
    config_maps: &BTreeMap<String, ConfigMap>,
) -> Result<Option<String>, InputError> {
    let Some(source) = &penpot.spec.ca_bundle else { return Ok(None) };
    let name = |r: Option<&str>| r.unwrap_or_default().to_string();
    let secret = secrets.get(&name(source.secret_ref.as_ref().map(|r| r.name.as_str())));
    let config_map = config_maps.get(&name(source.config_map_ref.as_ref().map(|r| r.name.as_str())));
    match crate::trust::Bundle::from_source(source, secret, config_map) {
        crate::trust::Bundle::Found(pem) => Ok(Some(pem)),
        crate::trust::Bundle::None => Ok(None),
        crate::trust::Bundle::Missing(what) => {
            Err(InputError::Invalid("spec.caBundle".into(), format!("{what} is not in the input")))
        }
        crate::trust::Bundle::Invalid(message) => Err(InputError::Invalid("spec.caBundle".into(), message)),
    }
}
