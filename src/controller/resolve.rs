//! Reads what one reconcile needs: the relation Secrets, the secret key (created once when
//! absent) and, for OIDC with only an issuer, the discovered endpoints.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::{Api, Resource, ResourceExt};

use crate::crd::{Penpot, Relation};
use crate::relations::{self, Resolution};
use crate::render::owned::{OptionalApi, controller_uid};
use crate::render::{self, labels, secrets};

use crate::conditions::Reason;
use crate::trust::Bundle;

use super::oidc_discovery::Discovery;
use super::{Context, Error, backup};
use crate::error::{AtStep, Step};

/// The outcome of resolving a Penpot's inputs.
pub enum Resolved {
    /// Required relations are absent.
    Missing(relations::Missing),
    /// A Secret exists but its data cannot be used; the message names Secret and key.
    Invalid { reason: Reason, message: String },
    /// OIDC endpoint discovery failed; the message names the issuer, never a secret.
    DiscoveryFailed(String),
    /// Everything render needs, the StatefulSet as read for it (apply reuses the read) and
    /// when the secret key was made (for status).
    Ready(Box<render::Inputs>, Box<Workload>, Option<Time>),
}

/// The StatefulSet named like the Penpot, whoever holds it, and the watch epoch taken
/// before it was read.
pub struct Workload {
    pub epoch: u64,
    pub statefulset: Option<StatefulSet>,
}

impl Workload {
    /// The StatefulSet, if this Penpot controls it.
    pub fn of(&self, penpot: &Penpot) -> Option<&StatefulSet> {
        self.statefulset.as_ref().filter(|s| controlled_by(s, penpot))
    }
}

pub async fn resolve(penpot: &Penpot, ns: &str, ctx: &Context) -> Result<Resolved, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let spec = &penpot.spec;

    // Fetch every referenced Secret once.
    let mut found = relations::Found::new();
    // The CloudNativePG cluster the PostgreSQL Secret belongs to, for the pre-upgrade backup.
    let mut cnpg_cluster = None;
    for (relation, name) in spec.referenced_secrets() {
        if let Some(secret) = secrets.get_opt(name).await.at(Step::Resolve)? {
            if relation == Relation::Postgresql {
                cnpg_cluster = secret.labels().get(render::backup::CNPG_CLUSTER_LABEL).cloned();
            }
            found.insert(relation, (name.to_string(), relations::secret_data(&secret)));
        }
    }
    let mut relations = match relations::resolve(spec, &found) {
        Resolution::Ready(r) => *r,
        Resolution::Missing(missing) => return Ok(Resolved::Missing(missing)),
        Resolution::Invalid(e) => {
            return Ok(Resolved::Invalid { reason: Reason::InvalidRelation, message: e.to_string() });
        }
    };

    let ca_bundle = match ca_bundle(spec, ns, ctx).await? {
        Bundle::None => None,
        Bundle::Found(pem) => Some(pem),
        Bundle::Missing(what) => {
            let missing =
                relations::Missing { relations: vec![format!("caBundle ({what} not found)")], secrets: vec![] };
            return Ok(Resolved::Missing(missing));
        }
        Bundle::Invalid(message) => return Ok(Resolved::Invalid { reason: Reason::InvalidSpec, message }),
    };

    if let Some(oidc) = relations.oidc.as_mut()
        && oidc.endpoints.is_none()
    {
        match ctx.discovery.endpoints(&oidc.issuer, ca_bundle.as_deref()).await {
            Discovery::Found(endpoints) => oidc.endpoints = Some(endpoints),
            Discovery::Failed(message) => return Ok(Resolved::DiscoveryFailed(message)),
        }
    }

    // Where a version change stands is read from the StatefulSet running now.
    let workload = Workload { epoch: ctx.seen.epoch(), statefulset: workload(ns, &penpot.name_any(), ctx).await? };
    let ran_before = workload.of(penpot).is_some()
        || penpot.status.as_ref().is_some_and(|s| crate::conditions::is_ready(&s.conditions));
    let (secret_key, secret_key_created) = match secret_key(penpot, &secrets, ran_before, ctx).await? {
        Ok(key) => key,
        Err(message) => return Ok(Resolved::Invalid { reason: Reason::InvalidSecretKey, message }),
    };
    let prometheus_operator = ctx.serves(OptionalApi::PrometheusOperator).await;
    let gateway_api = spec.gateway.is_some() && ctx.serves(OptionalApi::GatewayApi).await;
    let live = workload.of(penpot).map(render::rollout::Live::of);
    let to = render::penpot_version(penpot);
    let wants_backup = spec.upgrade.as_ref().is_some_and(|u| u.backup_before_upgrade);
    let backup = match (wants_backup, render::rollout::pending_change(live.as_ref(), to), &spec.postgresql) {
        (true, Some(_), Some(pg)) => {
            backup::before_upgrade(penpot, ns, to, &pg.secret_ref.name, cnpg_cluster.as_deref(), ctx).await?
        }
        _ => render::rollout::Backup::NotNeeded,
    };
    let inputs = render::Inputs {
        relations,
        secret_key,
        prometheus_operator,
        init_image: ctx.init_image.clone(),
        live,
        backup,
        ca_bundle,
        gateway_api,
    };
    Ok(Resolved::Ready(Box::new(inputs), Box::new(workload), secret_key_created))
}

/// `spec.caBundle`'s object read and checked.
async fn ca_bundle(spec: &crate::crd::PenpotSpec, ns: &str, ctx: &Context) -> Result<Bundle, Error> {
    let Some(source) = &spec.ca_bundle else { return Ok(Bundle::None) };
    // Only the object the source names is read.
    let (secret, config_map) = match (&source.secret_ref, &source.config_map_ref) {
        (Some(r), _) => {
            (Api::<Secret>::namespaced(ctx.client.clone(), ns).get_opt(&r.name).await.at(Step::Resolve)?, None)
        }
        (None, Some(r)) => {
            let api = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(ctx.client.clone(), ns);
            (None, api.get_opt(&r.name).await.at(Step::Resolve)?)
        }
        (None, None) => return Ok(Bundle::None),
    };
    Ok(Bundle::from_source(source, secret.as_ref(), config_map.as_ref()))
}

/// The shared `PENPOT_SECRET_KEY`: read it, or create its Secret once (immutable). An existing
/// Secret is never rewritten, even when unusable, because replacing the key logs every user
/// out; a new key for an instance that `ran_before` says so in a Warning Event. With the key
/// comes the Secret's creation time.
pub(super) async fn secret_key(
    penpot: &Penpot,
    secrets: &Api<Secret>,
    ran_before: bool,
    ctx: &Context,
) -> Result<Result<(String, Option<Time>), String>, Error> {
    let with_time = |s: &Secret| {
        secrets::read_secret_key(&relations::secret_data(s)).map(|k| (k, s.metadata.creation_timestamp.clone()))
    };
    let name = labels::secret_key_secret_name(&penpot.name_any());
    let invalid = || {
        format!(
            "Secret {name:?} key {:?} does not hold a usable key (at least 32 printable characters); fix or delete the Secret",
            secrets::SECRET_KEY_FIELD
        )
    };
    if let Some(existing) = secrets.get_opt(&name).await.at(Step::Resolve)? {
        return Ok(with_time(&existing).ok_or_else(invalid));
    }
    ctx.ensure_leader()?;
    let version = render::penpot_version(penpot).to_string();
    let key = secrets::generate_secret_key();
    let secret = secrets::secret_key_secret(&render::meta(penpot, &version), &key);
    match secrets
        .create(&PostParams { field_manager: Some(labels::MANAGER.into()), ..Default::default() }, &secret)
        .await
    {
        Ok(created) => {
            if ran_before {
                key_replaced(penpot, &name, ctx).await;
            }
            Ok(Ok((key, created.metadata.creation_timestamp)))
        }
        // Another reconcile (or a restarted operator) created it first: use theirs.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = secrets.get(&name).await.at(Step::Resolve)?;
            Ok(with_time(&existing).ok_or_else(invalid))
        }
        Err(e) => Err(Error::Kube { step: Step::Resolve, source: e }),
    }
}

/// Says, best effort, that an instance which already ran got a new secret key.
async fn key_replaced(penpot: &Penpot, secret: &str, ctx: &Context) {
    let note = format!(
        "Secret {secret} was missing and a new secret key was generated for a Penpot that already ran: \
         every user is logged out and links signed with the old key stop working. To go back, \
         delete {secret} and recreate it with the old key (docs/how-to/troubleshooting.md)"
    );
    super::warn(&ctx.client, &ctx.reporter, &penpot.object_ref(&()), "SecretKeyReplaced", "CreateSecretKey", note)
        .await;
}

/// The Penpot's StatefulSet as it runs now, if any: status reports on it while nothing is
/// applied. A StatefulSet of that name this Penpot does not control is not its workload.
pub async fn current_workload(penpot: &Penpot, ns: &str, ctx: &Context) -> Result<Option<StatefulSet>, Error> {
    let sts = workload(ns, &penpot.name_any(), ctx).await?;
    Ok(sts.filter(|s| controlled_by(s, penpot)))
}

fn controlled_by(sts: &StatefulSet, penpot: &Penpot) -> bool {
    penpot.meta().uid.as_deref().is_some_and(|uid| controller_uid(&sts.metadata) == Some(uid))
}

/// The StatefulSet of the Penpot called `name`, if any.
pub async fn workload(ns: &str, name: &str, ctx: &Context) -> Result<Option<StatefulSet>, Error> {
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    api.get_opt(name).await.at(Step::Resolve)
}
