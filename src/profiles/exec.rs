//! Running manage.py in a Penpot pod and reading its answer.
//!
//! The pod is one the Penpot's own StatefulSet controls, never merely one with its labels:
//! anyone who can create pods in the namespace could otherwise stand up a look-alike and
//! receive the password on its stdin. The command is bounded: [`EXEC_TIMEOUT`] for the
//! whole exec, [`MAX_OUTPUT`] bytes read from each stream.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, ListParams};
use kube::{Api, Client, Resource};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::crd::Penpot;
use crate::render::labels;
use crate::render::owned::controller_uid;

/// manage.py answers in a second or two; a hung backend must not hold a reconcile forever.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// manage.py prints a line or two; more is not its answer.
pub const MAX_OUTPUT: u64 = 64 * 1024;
/// What of a failed command's output goes into errors, status and Events: its end, where
/// manage.py says what went wrong.
const MAX_REPORTED: usize = 1024;

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
    #[error("manage.py {command} did not finish within {} s", EXEC_TIMEOUT.as_secs())]
    TimedOut { command: &'static str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    AlreadyExists,
    Deleted,
    NotFound,
    Updated,
}

/// The first Ready pod (lowest ordinal) that the Penpot's own StatefulSet controls, where
/// the backend's PREPL answers.
pub async fn ready_pod(client: &Client, ns: &str, penpot: &str) -> Result<String, ManageError> {
    match Api::<Penpot>::namespaced(client.clone(), ns).get_opt(penpot).await? {
        Some(instance) => ready_pod_of(client, ns, &instance).await,
        None => Err(ManageError::NotReady(penpot.to_string())),
    }
}

/// [`ready_pod`] of a Penpot the caller has read already.
pub async fn ready_pod_of(client: &Client, ns: &str, instance: &Penpot) -> Result<String, ManageError> {
    let penpot = instance.meta().name.as_deref().unwrap_or_default();
    let not_ready = || ManageError::NotReady(penpot.to_string());
    let statefulset =
        Api::<StatefulSet>::namespaced(client.clone(), ns).get_opt(penpot).await?.ok_or_else(not_ready)?;
    // A StatefulSet of that name that the Penpot does not control is someone else's.
    let owner_uid = instance.meta().uid.as_deref().ok_or_else(not_ready)?;
    if controller_uid(&statefulset.metadata) != Some(owner_uid) {
        return Err(not_ready());
    }
    let statefulset_uid = statefulset.metadata.uid.as_deref().ok_or_else(not_ready)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods.list(&ListParams::default().labels(&format!("{}={penpot}", labels::INSTANCE_LABEL))).await?;
    first_ready_owned(list.items, statefulset_uid).ok_or_else(not_ready)
}

/// Of `pods`, the Ready, not deleting one with the lowest name that the StatefulSet with
/// `statefulset_uid` controls.
fn first_ready_owned(pods: Vec<Pod>, statefulset_uid: &str) -> Option<String> {
    let mut ready: Vec<String> = pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| controller_uid(&p.metadata) == Some(statefulset_uid))
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.metadata.name)
        .collect();
    ready.sort();
    ready.into_iter().next()
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
    command: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<(i32, String), ManageError> {
    tokio::time::timeout(EXEC_TIMEOUT, run_manage(client, ns, pod, &[&[command], args].concat(), stdin))
        .await
        .map_err(|_| ManageError::TimedOut { command })?
}

async fn run_manage(
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
    // At most MAX_OUTPUT bytes each; what follows is drained unread, so the command can end.
    let read_out = async {
        if let Some(o) = out.as_mut() {
            stdout = read_capped(o).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let read_err = async {
        if let Some(e) = err.as_mut() {
            stderr = read_capped(e).await?;
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
    Ok((code, tail(&output, MAX_REPORTED)))
}

/// The last `max` bytes of `text` (on a character boundary), marked when cut.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[{} bytes cut] {}", start, &text[start..])
}

/// The first MAX_OUTPUT bytes of `stream` as text; the rest is read and dropped.
async fn read_capped(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> std::io::Result<String> {
    let mut kept = Vec::new();
    (&mut *stream).take(MAX_OUTPUT).read_to_end(&mut kept).await?;
    tokio::io::copy(stream, &mut tokio::io::sink()).await?;
    Ok(String::from_utf8_lossy(&kept).into_owned())
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
        manage(client, ns, pod, "create-profile", &["--email", email, "--fullname", fullname], Some(password)).await?;
    match code {
        0 if output.contains("Created") => Ok(Outcome::Created),
        // Duplicate email: the backend refuses with an ERR line (exit 255).
        255 if output.to_lowercase().contains("exist") => Ok(Outcome::AlreadyExists),
        _ => Err(ManageError::Failed { command: "create-profile", code, output }),
    }
}

/// Sets the password of the profile with `email` (manage.py reads it from stdin, like create).
pub async fn update_password(
    client: &Client,
    ns: &str,
    pod: &str,
    email: &str,
    password: &str,
) -> Result<Outcome, ManageError> {
    let (code, output) = manage(client, ns, pod, "update-profile", &["--email", email], Some(password)).await?;
    match code {
        0 if output.contains("No profile found") => Ok(Outcome::NotFound),
        0 if output.contains("Updated") => Ok(Outcome::Updated),
        _ => Err(ManageError::Failed { command: "update-profile", code, output }),
    }
}

pub async fn delete_profile(client: &Client, ns: &str, pod: &str, email: &str) -> Result<Outcome, ManageError> {
    let (code, output) = manage(client, ns, pod, "delete-profile", &["--email", email], None).await?;
    match code {
        // manage.py exits 0 when nothing matched, so read its words.
        0 if output.contains("No profile found") => Ok(Outcome::NotFound),
        0 if output.contains("Deleted") => Ok(Outcome::Deleted),
        _ => Err(ManageError::Failed { command: "delete-profile", code, output }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner_uid: Option<&str>, ready: bool, deleting: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "ownerReferences": owner_uid.map(|uid| vec![serde_json::json!({
                    "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "p", "uid": uid, "controller": true
                })]),
                "deletionTimestamp": deleting.then_some("2026-12-02T00:00:00Z"),
            },
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    /// A look-alike with the instance's labels (what `kubectl run -l` makes) never receives the
    /// exec, however it is named.
    #[test]
    fn only_pods_the_penpots_statefulset_controls_are_exec_targets() {
        let pods = vec![
            pod("a-fake", None, true, false),
            pod("b-other", Some("other-sts"), true, false),
            pod("p-0", Some("sts"), true, true),
            pod("p-1", Some("sts"), false, false),
            pod("p-2", Some("sts"), true, false),
        ];
        assert_eq!(first_ready_owned(pods, "sts").as_deref(), Some("p-2"));
        assert_eq!(first_ready_owned(vec![pod("a-fake", None, true, false)], "sts"), None);
    }

    #[tokio::test]
    async fn output_is_kept_to_its_cap_and_the_rest_is_drained() {
        let flood = vec![b'x'; MAX_OUTPUT as usize * 3];
        let mut stream = flood.as_slice();
        let kept = read_capped(&mut stream).await.unwrap();
        assert_eq!(kept.len(), MAX_OUTPUT as usize);
        assert!(stream.is_empty(), "the rest must be read, or the command could block on a full pipe");
    }

    #[test]
    fn reported_output_keeps_its_end() {
        assert_eq!(tail("ERR: short", 1024), "ERR: short");
        let long = format!("{}ERR: duplicate", "é".repeat(2000));
        let cut = tail(&long, 20);
        assert!(cut.starts_with("[") && cut.ends_with("ERR: duplicate"), "{cut}");
        assert!(cut.len() < 60);
    }
}
