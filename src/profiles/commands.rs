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
        Ok(_) => Ok(Outcome::Created),
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
    let answer = prepl::call(client, ns, pod, Command::Update { email, changes }).await?;
    Ok(counted(&answer, Outcome::Updated))
}

/// Soft-deletes the profile with `email`, as manage.py does: Penpot purges it later.
pub async fn delete_profile(client: &Client, ns: &str, pod: &str, email: &str) -> Result<Outcome, PreplError> {
    let answer = prepl::call(client, ns, pod, Command::Delete { email }).await?;
    Ok(counted(&answer, Outcome::Deleted))
}

/// update-profile and delete-profile answer whether a row changed: `true`, else `false`
/// (or nothing, when the backend has no system yet).
fn counted(answer: &Value, done: Outcome) -> Outcome {
    if answer.as_bool() == Some(true) { done } else { Outcome::NotFound }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_changed_row_counts() {
        assert_eq!(counted(&json!(true), Outcome::Updated), Outcome::Updated);
        assert_eq!(counted(&json!(false), Outcome::Deleted), Outcome::NotFound);
        assert_eq!(counted(&Value::Null, Outcome::Deleted), Outcome::NotFound);
    }
}
