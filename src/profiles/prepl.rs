//! A client of Penpot's PREPL, the backend's admin interface on 127.0.0.1:6063 in its pod,
//! which `manage.py` talks to. The operator reaches it through the API server's port-forward
//! and speaks the protocol itself (Penpot 2.8 and later): one JSON request per line,
//! `{"cmd": NAME, "params": {...}}` with camelCase keys; the backend answers with JSON lines
//! tagged `out`, `err` or `tap` (printed text, skipped here) and then one tagged `ret`, which
//! holds the result in `val` or a refusal in `err` (`{hint, code, type}`).
//!
//! Speaking it directly, not through manage.py, reaches what manage.py leaves out (the full
//! name, `isActive`), reads structured answers instead of printed words, and needs neither
//! `pods/exec` nor Python in the image. The password travels only in the request.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::render::version::Version;

/// Where the backend's PREPL listens in its pod (`PENPOT_PREPL_PORT`, not set by the operator).
pub const PORT: u16 = 6063;
/// The first release whose PREPL speaks JSON lines; older ones read Clojure forms.
pub const SINCE: Version = Version::new(2, 8, 0);
/// The backend answers in a second or two; a hung backend must not hold a reconcile forever.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// All the lines of one answer together; more is not an answer to these commands.
pub const MAX_ANSWER: usize = 64 * 1024;
/// What of a malformed answer goes into errors, status and Events.
const MAX_QUOTED: usize = 200;

/// A PREPL command on a profile, named as the backend names it.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    Create {
        email: &'a str,
        fullname: &'a str,
        password: &'a str,
        active: bool,
    },
    Update {
        email: &'a str,
        changes: &'a Changes,
    },
    /// A soft delete, as manage.py's default: Penpot purges the profile later.
    Delete {
        email: &'a str,
    },
}

/// What an update sets; `None` leaves that part of the profile as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub fullname: Option<String>,
    pub password: Option<String>,
    pub active: Option<bool>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// The parts it sets, for status and the CLI: `full name, password, deactivated`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.fullname.is_some() {
            parts.push("full name");
        }
        if self.password.is_some() {
            parts.push("password");
        }
        match self.active {
            Some(true) => parts.push("reactivated"),
            Some(false) => parts.push("deactivated"),
            None => {}
        }
        parts.join(", ")
    }
}

impl Command<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Create { .. } => "create-profile",
            Command::Update { .. } => "update-profile",
            Command::Delete { .. } => "delete-profile",
        }
    }

    /// The request line's JSON (without its newline). The email goes lowercased: Penpot stores
    /// it so and matches updates and deletes exactly.
    fn request(&self) -> Value {
        let params = match *self {
            Command::Create { email, fullname, password, active } => {
                json!({"email": email.to_lowercase(), "fullname": fullname, "password": password, "isActive": active})
            }
            Command::Update { email, changes } => {
                let mut params = json!({"email": email.to_lowercase()});
                if let Some(fullname) = &changes.fullname {
                    params["fullname"] = json!(fullname);
                }
                if let Some(password) = &changes.password {
                    params["password"] = json!(password);
                }
                if let Some(active) = changes.active {
                    params["isActive"] = json!(active);
                }
                params
            }
            Command::Delete { email } => json!({"email": email.to_lowercase(), "soft": true}),
        };
        json!({"cmd": self.name(), "params": params})
    }
}

#[derive(thiserror::Error, Debug)]
pub enum PreplError {
    #[error("penpot {0} is not ready: no Ready pod to reach the backend's PREPL in")]
    NotReady(String),
    #[error("penpot {penpot} runs {version}: profiles need Penpot {SINCE} or later, whose PREPL speaks JSON")]
    TooOld { penpot: String, version: Version },
    /// The backend ran the command and refused it, in its own words (never the request).
    #[error("the backend refused {command}: {hint} ({code})")]
    Refused { command: &'static str, code: String, hint: String },
    #[error("the backend's PREPL (port {PORT}) could not be reached for {command}: {reason}")]
    Unreachable { command: &'static str, reason: String },
    #[error("the backend's PREPL closed the connection before answering {command}")]
    Closed { command: &'static str },
    #[error("the backend's PREPL answered {command} with something that is not PREPL JSON: {quoted}")]
    Malformed { command: &'static str, quoted: String },
    /// What a PREPL before 2.8 answers a JSON request with: it read no Clojure form.
    #[error(
        "the backend's PREPL answered {command} with an exception ({cause}): a Penpot before {SINCE}, which reads no JSON?"
    )]
    Exception { command: &'static str, cause: String },
    /// The backend has no system yet (it answers `null` while it starts).
    #[error("the backend answered {command} with nothing: it is still starting")]
    Starting { command: &'static str },
    #[error("the backend's PREPL answered {command} with over {MAX_ANSWER} bytes")]
    TooLong { command: &'static str },
    #[error("the backend did not answer {command} within {} s", CALL_TIMEOUT.as_secs())]
    TimedOut { command: &'static str },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("port-forward stream: {0}")]
    Io(#[from] std::io::Error),
}

impl PreplError {
    /// The backend or the way to it failed, as opposed to the cluster: reported in status and
    /// retried, rather than returned as a reconcile error.
    pub fn is_reported(&self) -> bool {
        !matches!(self, PreplError::Kube(_) | PreplError::NotReady(_) | PreplError::TooOld { .. })
    }
}

/// Runs `command` in the backend of `pod` and returns the `val` of its answer.
pub async fn call(client: &Client, ns: &str, pod: &str, command: Command<'_>) -> Result<Value, PreplError> {
    let name = command.name();
    let timed_out = |_| PreplError::TimedOut { command: name };
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let mut forwarder =
        tokio::time::timeout(CALL_TIMEOUT, pods.portforward(pod, &[PORT])).await.map_err(timed_out)??;
    let stream = forwarder.take_stream(PORT).ok_or(PreplError::Closed { command: name })?;
    let refused = forwarder.take_error(PORT);
    // Bounded inside, so the forwarder is always ended below, whatever happened.
    let answer = tokio::time::timeout(CALL_TIMEOUT, talk(stream, command)).await.unwrap_or_else(|e| Err(timed_out(e)));
    forwarder.abort();
    let _ = forwarder.join().await;
    match answer {
        // The kubelet says on the port's error channel why the connection went unanswered:
        // nothing listens on the port (the prepl-server flag is off), the pod is gone.
        Err(e @ (PreplError::Closed { .. } | PreplError::TimedOut { .. })) => {
            let reason = match refused {
                Some(error) => tokio::time::timeout(Duration::from_secs(1), error).await.ok().flatten(),
                None => None,
            };
            Err(match reason {
                Some(reason) => PreplError::Unreachable { command: name, reason: quote(reason.trim()) },
                None => e,
            })
        }
        other => other,
    }
}

/// One request and its answer over `stream`.
async fn talk(stream: impl AsyncRead + AsyncWrite + Unpin, command: Command<'_>) -> Result<Value, PreplError> {
    let name = command.name();
    let mut stream = BufReader::new(stream);
    let mut line = command.request().to_string().into_bytes();
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.flush().await?;
    let mut read = 0;
    loop {
        let mut line = Vec::new();
        let limit = (MAX_ANSWER - read) as u64 + 1;
        let n = (&mut stream).take(limit).read_until(b'\n', &mut line).await?;
        read += n;
        if n == 0 {
            return Err(PreplError::Closed { command: name });
        }
        if read > MAX_ANSWER {
            return Err(PreplError::TooLong { command: name });
        }
        if let Some(result) = answer(name, &line)? {
            return result;
        }
    }
}

/// The outcome one answer line carries: `None` for printed text, the `ret`'s `val` or refusal.
fn answer(command: &'static str, line: &[u8]) -> Result<Option<Result<Value, PreplError>>, PreplError> {
    let text = String::from_utf8_lossy(line);
    let malformed = || PreplError::Malformed { command, quoted: quote(text.trim()) };
    let message: Value = serde_json::from_str(text.trim()).map_err(|_| malformed())?;
    match message.get("tag").and_then(Value::as_str) {
        Some("ret") => {}
        Some("out" | "err" | "tap") => return Ok(None),
        _ => return Err(malformed()),
    }
    let val = message.get("val").cloned().unwrap_or(Value::Null);
    if message.get("exception") == Some(&Value::Bool(true)) {
        let cause = val.get("cause").and_then(Value::as_str).map_or_else(|| "no cause".into(), quote);
        return Ok(Some(Err(PreplError::Exception { command, cause })));
    }
    let Some(err) = message.get("err") else { return Ok(Some(Ok(val))) };
    let field = |key: &str| err.get(key).and_then(Value::as_str).map(quote);
    Ok(Some(Err(PreplError::Refused {
        command,
        code: field("code").unwrap_or_else(|| "unknown".into()),
        hint: field("hint").unwrap_or_else(|| "no hint".into()),
    })))
}

/// `text`, cut to [`MAX_QUOTED`] characters.
fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    /// Plays the backend's end: reads the request line, writes `answer`, closes.
    async fn against(answer: &'static str, command: Command<'_>) -> (Result<Value, PreplError>, Value) {
        let (ours, theirs) = tokio::io::duplex(4096);
        let backend = tokio::spawn(async move {
            let mut theirs = BufReader::new(theirs);
            let mut request = String::new();
            theirs.read_line(&mut request).await.unwrap();
            theirs.write_all(answer.as_bytes()).await.unwrap();
            serde_json::from_str::<Value>(&request).unwrap()
        });
        let result = talk(ours, command).await;
        (result, backend.await.unwrap())
    }

    #[tokio::test]
    async fn requests_are_what_penpots_prepl_reads() {
        let create = Command::Create { email: "a@x", fullname: "Ada", password: "pw", active: false };
        let (_, sent) = against("{\"tag\":\"ret\",\"val\":{}}\n", create).await;
        assert_eq!(
            sent,
            json!({"cmd": "create-profile", "params": {"email": "a@x", "fullname": "Ada", "password": "pw", "isActive": false}})
        );
        let changes = Changes { fullname: Some("Ada L".into()), password: None, active: Some(true) };
        let (_, sent) =
            against("{\"tag\":\"ret\",\"val\":true}\n", Command::Update { email: "a@x", changes: &changes }).await;
        assert_eq!(
            sent,
            json!({"cmd": "update-profile", "params": {"email": "a@x", "fullname": "Ada L", "isActive": true}})
        );
        let (_, sent) = against("{\"tag\":\"ret\",\"val\":true}\n", Command::Delete { email: "a@x" }).await;
        assert_eq!(sent, json!({"cmd": "delete-profile", "params": {"email": "a@x", "soft": true}}));
    }

    #[tokio::test]
    async fn printed_lines_are_skipped_and_the_ret_is_the_answer() {
        let answer = "{\"tag\":\"out\",\"val\":\"hello\\n\"}\n{\"tag\":\"tap\",\"val\":1}\n{\"tag\":\"ret\",\"val\":true,\"elapsed\":3}\n";
        let (result, _) = against(answer, Command::Delete { email: "a@x" }).await;
        assert_eq!(result.unwrap(), json!(true));
    }

    #[tokio::test]
    async fn a_refusal_is_quoted_by_hint_and_code_only() {
        let answer = "{\"tag\":\"ret\",\"err\":{\"hint\":\"email already exists\",\"code\":\"email-already-exists\",\"type\":\"validation\",\"explain\":\"params: pw\"}}\n";
        let create = Command::Create { email: "a@x", fullname: "A", password: "pw", active: true };
        let error = against(answer, create).await.0.unwrap_err();
        assert!(matches!(&error, PreplError::Refused { code, .. } if code == "email-already-exists"), "{error:?}");
        assert_eq!(
            error.to_string(),
            "the backend refused create-profile: email already exists (email-already-exists)"
        );
    }

    #[tokio::test]
    async fn emails_go_lowercased_as_penpot_stores_them() {
        let (_, sent) = against("{\"tag\":\"ret\",\"val\":true}\n", Command::Delete { email: "Ada@X.org" }).await;
        assert_eq!(sent["params"]["email"], "ada@x.org");
    }

    /// What Penpot 2.7's PREPL answers a JSON line with (it reads Clojure forms).
    #[tokio::test]
    async fn an_exception_from_a_pre_2_8_prepl_is_no_success() {
        let answer = "{\"tag\":\"ret\",\"val\":{\"cause\":\"Invalid token: :\",\"via\":[]},\"ns\":\"user\",\"exception\":true}\n";
        let error = against(answer, Command::Delete { email: "a@x" }).await.0.unwrap_err();
        assert!(matches!(&error, PreplError::Exception { cause, .. } if cause == "Invalid token: :"), "{error:?}");
    }

    #[tokio::test]
    async fn what_is_not_an_answer_is_named() {
        let (closed, _) = against("{\"tag\":\"out\",\"val\":\"x\"}\n", Command::Delete { email: "a@x" }).await;
        assert!(matches!(closed, Err(PreplError::Closed { command: "delete-profile" })), "{closed:?}");
        // A pre-2.8 PREPL answers Clojure, not JSON.
        let (clojure, _) = against("{:tag :ret, :val \"nil\"}\n", Command::Delete { email: "a@x" }).await;
        let clojure = clojure.unwrap_err().to_string();
        assert!(clojure.contains("not PREPL JSON: {:tag :ret"), "{clojure}");
        let (tagless, _) = against("{\"val\":true}\n", Command::Delete { email: "a@x" }).await;
        assert!(matches!(tagless, Err(PreplError::Malformed { .. })));
    }

    #[tokio::test]
    async fn an_answer_over_its_cap_is_refused_without_reading_on() {
        let (ours, theirs) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut theirs = BufReader::new(theirs);
            let mut request = String::new();
            theirs.read_line(&mut request).await.unwrap();
            let out = format!("{{\"tag\":\"out\",\"val\":\"{}\"}}\n", "x".repeat(1000));
            // Endless printed lines: the client must stop at its cap, not wait for a ret.
            while theirs.write_all(out.as_bytes()).await.is_ok() {}
        });
        let result = talk(ours, Command::Delete { email: "a@x" }).await;
        assert!(matches!(result, Err(PreplError::TooLong { .. })), "{result:?}");
    }

    #[test]
    fn changes_say_what_they_set() {
        let changes = Changes { fullname: Some("A".into()), password: Some("p".into()), active: Some(false) };
        assert_eq!(changes.describe(), "full name, password, deactivated");
        assert!(Changes::default().is_empty());
        assert_eq!(quote(&"é".repeat(300)).chars().count(), MAX_QUOTED + 1);
    }
}
