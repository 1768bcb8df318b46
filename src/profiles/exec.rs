//! Running manage.py in a Penpot pod and reading its answer.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, ListParams};
use kube::{Api, Client};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::render::labels;

#[derive(thiserror::Error, Debug)]
pub enum ManageError {
    #[error("penpot {0} is not ready: no Ready pod to run the admin command in")]
    NotReady(String),
    /// manage.py ran and failed; carries its own output (it never echoes the password).
    #[error("manage.py {command} failed (exit {code}): {output}")]
    Failed { command: &'static str, code: i32, output: String },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("exec stream: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    AlreadyExists,
    Deleted,
    NotFound,
}

/// The first Ready pod of a Penpot (lowest ordinal), where the backend's PREPL answers.
pub async fn ready_pod(client: &Client, ns: &str, penpot: &str) -> Result<String, ManageError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods.list(&ListParams::default().labels(&format!("{}={penpot}", labels::INSTANCE_LABEL))).await?;
    let mut ready: Vec<String> = list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.metadata.name)
        .collect();
    ready.sort();
    ready.into_iter().next().ok_or_else(|| ManageError::NotReady(penpot.to_string()))
}

/// 16 random URL-safe characters, like the charm's `token_urlsafe(10)` but longer.
pub fn generate_password() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Runs `python3 manage.py ARGS` in the pod's `penpot` container, feeding `stdin`; returns
/// the exit code and combined output.
async fn manage(
    client: &Client,
    ns: &str,
    pod: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<(i32, String), ManageError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut command = crate::render::paths::MANAGE_COMMAND.to_vec();
    command.extend_from_slice(args);
    let params = AttachParams::default().container("penpot").stdin(stdin.is_some()).stdout(true).stderr(true);
    let mut process = pods.exec(pod, command, &params).await?;
    if let (Some(mut writer), Some(input)) = (process.stdin(), stdin) {
        // manage.py reads the password with getpass, which falls back to one stdin line.
        writer.write_all(format!("{input}\n").as_bytes()).await?;
        writer.shutdown().await?;
    }
    let mut out = process.stdout();
    let mut err = process.stderr();
    let status = process.take_status();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let read_out = async {
        if let Some(o) = out.as_mut() {
            o.read_to_string(&mut stdout).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let read_err = async {
        if let Some(e) = err.as_mut() {
            e.read_to_string(&mut stderr).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let (r1, r2) = tokio::join!(read_out, read_err);
    r1?;
    r2?;
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    let code = exit_code(status.as_ref());
    // getpass warns on stderr when it falls back to stdin; that is not an error.
    let stderr: String = stderr
        .lines()
        .filter(|l| !l.contains("GetPassWarning") && !l.contains("input may be echoed"))
        .collect::<Vec<_>>()
        .join("\n");
    let output =
        [stdout.trim(), stderr.trim()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join("\n");
    Ok((code, output))
}

/// 0 for success; otherwise the exit code the API server reports (`ExitCode` cause), or -1.
fn exit_code(status: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> i32 {
    let Some(status) = status else { return -1 };
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    let from_cause = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref()?.parse().ok());
    // Runtimes that do not fill the cause (kwok) still say "exit status N" in the message.
    let from_message = || {
        let message = status.message.as_deref()?;
        let rest = &message[message.rfind("exit status ")? + "exit status ".len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    from_cause.or_else(from_message).unwrap_or(-1)
}

pub async fn create_profile(
    client: &Client,
    ns: &str,
    pod: &str,
    email: &str,
    fullname: &str,
    password: &str,
) -> Result<Outcome, ManageError> {
    let (code, output) =
        manage(client, ns, pod, &["create-profile", "--email", email, "--fullname", fullname], Some(password)).await?;
    match code {
        0 if output.contains("Created") => Ok(Outcome::Created),
        // Duplicate email: the backend refuses with an ERR line (exit 255).
        255 if output.to_lowercase().contains("exist") => Ok(Outcome::AlreadyExists),
        _ => Err(ManageError::Failed { command: "create-profile", code, output }),
    }
}

pub async fn delete_profile(client: &Client, ns: &str, pod: &str, email: &str) -> Result<Outcome, ManageError> {
    let (code, output) = manage(client, ns, pod, &["delete-profile", "--email", email], None).await?;
    match code {
        // manage.py exits 0 when nothing matched, so read its words.
        0 if output.contains("No profile found") => Ok(Outcome::NotFound),
        0 if output.contains("Deleted") => Ok(Outcome::Deleted),
        _ => Err(ManageError::Failed { command: "delete-profile", code, output }),
    }
}
