//! The profile commands, and what their answers mean for the profile.

use kube::Client;
use serde_json::Value;

use super::prepl::{self, Changes, Command, PreplError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    AlreadyExists,
    Updated,
    Deleted,
    /// No profile (that is not deleted) has the email.
    NotFound,
}

/// Creates an active (or, with `active: false`, deactivated) profile with its default team.
pub async fn create_profile(
    client: &Client,
    ns: &str,
    pod: &str,
    email: &str,
    fullname: &str,
    password: &str,
    active: bool,
) -> Result<Outcome, PreplError> {
    let command = Command::Create { email, fullname, password, active };
    match prepl::call(client, ns, pod, command).await {
        // The new profile's row; anything else is a backend that did nothing yet.
        Ok(answer) if answer.is_object() => Ok(Outcome::Created),
        Ok(_) => Err(PreplError::Starting { command: command.name() }),
        Err(PreplError::Refused { code, .. }) if code == "email-already-exists" => Ok(Outcome::AlreadyExists),
        Err(e) => Err(e),
    }
}

/// Sets what `changes` holds on the profile with `email`.
pub async fn update_profile(
    client: &Client,
    ns: &str,
    pod: &str,
    email: &str,
    changes: &Changes,
) -> Result<Outcome, PreplError> {
    let command = Command::Update { email, changes };
    counted(command, prepl::call(client, ns, pod, command).await?, Outcome::Updated)
}

/// Soft-deletes the profile with `email`, as manage.py does: Penpot purges it later.
pub async fn delete_profile(client: &Client, ns: &str, pod: &str, email: &str) -> Result<Outcome, PreplError> {
    let command = Command::Delete { email };
    counted(command, prepl::call(client, ns, pod, command).await?, Outcome::Deleted)
}

/// update-profile and delete-profile answer whether a row changed: `true` or `false`.
/// `null` means the backend has no system yet, which says nothing about the profile.
fn counted(command: Command, answer: Value, done: Outcome) -> Result<Outcome, PreplError> {
    match answer.as_bool() {
        Some(true) => Ok(done),
        Some(false) => Ok(Outcome::NotFound),
        None => Err(PreplError::Starting { command: command.name() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_changed_row_counts_and_nothing_is_no_answer() {
        let delete = Command::Delete { email: "a@x" };
        assert_eq!(counted(delete, json!(true), Outcome::Deleted).unwrap(), Outcome::Deleted);
        assert_eq!(counted(delete, json!(false), Outcome::Deleted).unwrap(), Outcome::NotFound);
        let starting = counted(delete, Value::Null, Outcome::Deleted);
        assert!(matches!(starting, Err(PreplError::Starting { .. })), "{starting:?}");
    }
}
