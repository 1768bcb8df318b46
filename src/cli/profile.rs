//! `penpot-operator profile create|set-password|delete`: the charm's create-profile and
//! delete-profile actions plus a password reset, also reachable as `kubectl penpot profile ...`.

use std::process::ExitCode;

use kube::Client;

use crate::cli::{ProfileArgs, ProfileCommand};
use crate::profiles::{self, Outcome};

pub fn main(args: &ProfileArgs) -> ExitCode {
    super::one_shot(run(args))
}

async fn run(args: &ProfileArgs) -> Result<String, profiles::ManageError> {
    let client = Client::try_default().await?;
    let ns = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let pod = profiles::ready_pod(&client, &ns, &args.penpot).await?;
    match &args.command {
        ProfileCommand::Create { email, fullname } => {
            let password = profiles::generate_password();
            match profiles::create_profile(&client, &ns, &pod, email, fullname, &password).await? {
                Outcome::Created => Ok(format!("email: {email}\nfullname: {fullname}\npassword: {password}\n")),
                _ => Err(profiles::ManageError::Failed {
                    command: "create-profile",
                    code: 255,
                    output: format!("a profile with email {email} already exists"),
                }),
            }
        }
        ProfileCommand::SetPassword { email } => {
            let password = profiles::generate_password();
            match profiles::update_password(&client, &ns, &pod, email, &password).await? {
                Outcome::Updated => Ok(format!("email: {email}\npassword: {password}\n")),
                _ => Err(profiles::ManageError::Failed {
                    command: "update-profile",
                    code: 0,
                    output: format!("No profile found with email {email}"),
                }),
            }
        }
        ProfileCommand::Delete { email } => match profiles::delete_profile(&client, &ns, &pod, email).await? {
            Outcome::NotFound => Err(profiles::ManageError::Failed {
                command: "delete-profile",
                code: 0,
                output: format!("No profile found with email {email}"),
            }),
            _ => Ok(format!("deleted: {email}\n")),
        },
    }
}
