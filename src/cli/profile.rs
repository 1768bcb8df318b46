//! `penpot-operator profile create|set-password|rename|deactivate|activate|delete`: the charm's
//! create-profile and delete-profile actions plus what a `PenpotProfile` can change, also
//! reachable as `kubectl penpot profile ...`.

use std::process::ExitCode;

use kube::Client;

use crate::cli::{ProfileArgs, ProfileCommand};
use crate::profiles::{self, Changes, Outcome, PreplError};

pub fn main(args: &ProfileArgs) -> ExitCode {
    super::one_shot(run(args))
}

#[derive(thiserror::Error, Debug)]
enum Error {
    #[error(transparent)]
    Prepl(#[from] PreplError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("a profile with email {0} already exists")]
    AlreadyExists(String),
    #[error("No profile found with email {0}")]
    NotFound(String),
}

async fn run(args: &ProfileArgs) -> Result<String, Error> {
    let client = Client::try_default().await?;
    let ns = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let pod = profiles::ready_pod(&client, &ns, &args.penpot).await?;
    let update = |email: &str, changes: Changes| {
        let (client, ns, pod, email) = (client.clone(), ns.clone(), pod.clone(), email.to_string());
        async move {
            match profiles::update_profile(&client, &ns, &pod, &email, &changes).await? {
                Outcome::Updated => Ok(()),
                _ => Err(Error::NotFound(email)),
            }
        }
    };
    match &args.command {
        ProfileCommand::Create { email, fullname } => {
            let password = profiles::generate_password();
            match profiles::create_profile(&client, &ns, &pod, email, fullname, &password, true).await? {
                Outcome::Created => Ok(format!("email: {email}\nfullname: {fullname}\npassword: {password}\n")),
                _ => Err(Error::AlreadyExists(email.clone())),
            }
        }
        ProfileCommand::SetPassword { email } => {
            let password = profiles::generate_password();
            update(email, Changes { password: Some(password.clone()), ..Default::default() }).await?;
            Ok(format!("email: {email}\npassword: {password}\n"))
        }
        ProfileCommand::Rename { email, fullname } => {
            update(email, Changes { fullname: Some(fullname.clone()), ..Default::default() }).await?;
            Ok(format!("email: {email}\nfullname: {fullname}\n"))
        }
        ProfileCommand::Deactivate { email } => {
            update(email, Changes { active: Some(false), ..Default::default() }).await?;
            Ok(format!("deactivated: {email}\n"))
        }
        ProfileCommand::Activate { email } => {
            update(email, Changes { active: Some(true), ..Default::default() }).await?;
            Ok(format!("activated: {email}\n"))
        }
        ProfileCommand::Delete { email } => match profiles::delete_profile(&client, &ns, &pod, email).await? {
            Outcome::NotFound => Err(Error::NotFound(email.clone())),
            _ => Ok(format!("deleted: {email}\n")),
        },
    }
}
