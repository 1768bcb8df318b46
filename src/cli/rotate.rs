//! `penpot-operator rotate-secret-key`: a new `PENPOT_SECRET_KEY` for one Penpot.
//!
//! The key signs sessions, invitation and password-reset links and the exporter's requests.
//! A new one ends every session (users sign in again) and invalidates links sent before; the
//! pods roll onto it like any configuration change. The key Secret is immutable, so rotation
//! replaces it: delete (with its uid as precondition) and create, well inside the operator's
//! 500 ms debounce, so the operator reads the new key instead of minting one of its own.

use std::process::ExitCode;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client, Resource, ResourceExt};

use crate::cli::RotateArgs;
use crate::crd::Penpot;
use crate::render::{self, labels, secrets};

#[derive(thiserror::Error, Debug)]
pub enum RotateError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(
        "rotating the secret key ends every session of Penpot {0} and invalidates links sent before; pass --yes to go ahead"
    )]
    NotConfirmed(String),
    #[error("Secret {0} is not controlled by Penpot {1}: not touching it")]
    NotOurs(String, String),
}

pub fn main(args: &RotateArgs) -> ExitCode {
    super::one_shot(run(args))
}

async fn run(args: &RotateArgs) -> Result<String, RotateError> {
    if !args.yes {
        return Err(RotateError::NotConfirmed(args.name.clone()));
    }
    let client = Client::try_default().await?;
    let ns = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let penpot = Api::<Penpot>::namespaced(client.clone(), &ns).get(&args.name).await?;
    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    let name = labels::secret_key_secret_name(&args.name);
    let uid = penpot.meta().uid.clone().unwrap_or_default();
    if let Some(old) = secrets.get_opt(&name).await? {
        if render::owned::controller_uid(&old.metadata) != Some(uid.as_str()) {
            return Err(RotateError::NotOurs(name, args.name.clone()));
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: old.uid(), resource_version: None }),
            ..DeleteParams::default()
        };
        secrets.delete(&name, &params).await?;
    }
    let version = render::penpot_version(&penpot).to_string();
    let secret = secrets::secret_key_secret(&render::meta(&penpot, &version), &secrets::generate_secret_key());
    let made_by = match secrets
        .create(&PostParams { field_manager: Some(labels::MANAGER.into()), ..Default::default() }, &secret)
        .await
    {
        Ok(_) => "this command",
        // The operator reconciled in between and made one itself: a new key all the same.
        Err(kube::Error::Api(s)) if s.code == 409 => "the operator",
        Err(e) => return Err(e.into()),
    };
    Ok(format!(
        "Secret {name} holds a new key (made by {made_by}). The pods of Penpot {} roll onto it; every session ends \
         and links sent before no longer work. status.secretKeyCreated shows when it was made.\n",
        args.name
    ))
}
