//! The pre-upgrade backup: made once per target version when a version change is pending and
//! `spec.upgrade.backupBeforeUpgrade` is set, then read until CloudNativePG says how it ended.
//! Like the secret key, it is made here, not applied by the render: it is a one-off action,
//! never updated and never pruned.

use kube::api::{DynamicObject, PostParams};
use kube::{Api, ResourceExt};

use crate::crd::Penpot;
use crate::render::rollout::Backup;
use crate::render::version::Version;
use crate::render::{self, backup, labels};

use super::{Context, Error};
use crate::error::{AtStep, Step};

/// Where the backup before upgrading to `to` stands; creates it when absent.
/// `cluster` is the `cnpg.io/cluster` label of the PostgreSQL Secret `secret`.
pub async fn before_upgrade(
    penpot: &Penpot,
    ns: &str,
    to: Version,
    secret: &str,
    cluster: Option<&str>,
    ctx: &Context,
) -> Result<Backup, Error> {
    let Some(cluster) = cluster else { return Ok(Backup::NoCluster { secret: secret.to_string() }) };
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &backup::api_resource());
    let name = backup::name(&penpot.name_any(), to);
    let existing = match api.get_opt(&name).await.at(Step::Resolve)? {
        Some(existing) => existing,
        None => {
            ctx.ensure_leader()?;
            let version = to.to_string();
            let object = backup::pre_upgrade(&render::meta(penpot, &version), cluster, to);
            let params = PostParams { field_manager: Some(labels::MANAGER.into()), ..Default::default() };
            match api.create(&params, &object).await {
                Ok(created) => {
                    tracing::info!(backup = %name, %cluster, "pre-upgrade backup requested");
                    created
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    let error = "CloudNativePG's Backup kind (postgresql.cnpg.io/v1) is not installed".to_string();
                    return Ok(Backup::Failed { name, error });
                }
                Err(kube::Error::Api(s)) if s.code == 409 => api.get(&name).await.at(Step::Resolve)?,
                Err(e) => return Err(Error::Kube { step: Step::Resolve, source: e }),
            }
        }
    };
    Ok(match backup::progress(&existing) {
        (Some(phase), _) if phase == "completed" => Backup::Completed { name },
        (Some(phase), error) if phase == "failed" => {
            Backup::Failed { name, error: error.unwrap_or_else(|| "no reason given".into()) }
        }
        (phase, _) => Backup::Running { name, phase },
    })
}
