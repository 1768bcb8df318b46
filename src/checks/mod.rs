//! Pre-flight checks: whether PostgreSQL, Redis, the S3 bucket and the SMTP server accept the
//! relation's credentials, reported per relation in status.
//!
//! Checks run in the background, never inside a reconcile: a reconcile hands the current
//! relations to [`Checker::observe`], which answers at once with what it knows for exactly
//! those relations and starts a check when one is due. When a check ends, the Penpot is
//! reconciled again and the result reaches status.
//!
//! The destinations are tenants' choice, so connections go through the same egress fence as
//! OIDC discovery, and status says only "cannot connect" for a connection or protocol failure
//! (the operator's log says why): status cannot be used to map which ports answer. What a
//! server said when it refused (wrong password, no such database or bucket) is shown: it names
//! no secret, and it is what the admin needs.

mod net;
mod postgresql;
mod redis;
mod s3;
mod sigv4;
mod smtp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::controller::egress::Egress;
use crate::crd::{CheckResult, Relation, RelationCheck};
use crate::relations::Relations;

/// The longest a whole check of one relation may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often unchanged relations are checked again: after a pass, and after a first failure,
/// the wait doubling with each failure after it up to RECHECK_PASSED. Each recheck is a
/// reconcile (a few reads), so a long outage of many databases costs the API server little.
pub const RECHECK_PASSED: Duration = Duration::from_secs(600);
pub const RECHECK_FAILED: Duration = Duration::from_secs(60);

/// The wait before rechecking after `failed` failing passes in a row (0: the last passed).
fn recheck_after(failed: u32) -> Duration {
    match failed {
        0 => RECHECK_PASSED,
        n => RECHECK_FAILED.saturating_mul(1 << (n - 1).min(16)).min(RECHECK_PASSED),
    }
}
/// Penpots checked at once; the others wait their turn, their reconciles unaffected.
const PARALLEL: usize = 4;
/// Longest message kept from a server.
const MAX_MESSAGE: usize = 300;

/// Why a check failed. Only the variant's status text leaves the operator; the detail of
/// connection and protocol failures goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the operator does not connect there: {0}")]
    Fenced(&'static str),
    #[error("host {0} does not resolve")]
    NotResolved(String),
    #[error("cannot connect: {0}")]
    Unreachable(String),
    #[error("TLS: {0}")]
    Tls(String),
    /// The server answered and refused; its words carry no secret.
    #[error("{0}")]
    Refused(String),
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl Failure {
    /// What status may say.
    fn for_status(&self, what: &str) -> String {
        match self {
            Failure::Unreachable(_) | Failure::Protocol(_) => {
                format!("cannot connect to {what}, or it is not the server expected (the operator's log says why)")
            }
            other => other.to_string(),
        }
    }
}

/// What a check may use.
pub struct Probe<'a> {
    pub egress: &'a Arc<Egress>,
    /// The Penpot's namespace: a one-label host is looked up there, as its pods look it up.
    pub namespace: &'a str,
    /// `spec.caBundle`, checked PEM: trusted besides the public roots, as by the workload.
    pub ca_bundle: Option<&'a str>,
}

/// What one pass of checks is about: every relation checked, and the CAs trusted.
#[derive(Clone)]
pub struct Subject {
    pub relations: Relations,
    pub ca_bundle: Option<String>,
}

impl Subject {
    /// A digest of everything a pass uses, so the checker remembers what it checked without
    /// keeping credentials in memory between checks. Every field is named (no `..`): a new
    /// one does not compile until it is hashed too.
    fn digest(&self) -> [u8; 32] {
        use crate::relations::{postgresql::Postgresql, redis::Redis, s3, smtp::Smtp};
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        let mut put = |value: Option<&str>| match value {
            Some(v) => {
                hash.update([1]);
                hash.update((v.len() as u64).to_be_bytes());
                hash.update(v.as_bytes());
            }
            None => hash.update([0]),
        };
        let Postgresql { uri, username, password } = &self.relations.postgresql;
        [uri, username, password].into_iter().for_each(|v| put(Some(v)));
        let Redis { uri } = &self.relations.redis;
        put(Some(uri));
        put(self.relations.s3.as_ref().map(|_| "s3"));
        if let Some(s3::S3 { keys, bucket, endpoint, region }) = &self.relations.s3 {
            let (access, secret) = keys.as_ref().map(|k| (&k.access_key, &k.secret_key)).unzip();
            [access, secret, Some(bucket), endpoint.as_ref(), Some(region)]
                .into_iter()
                .for_each(|v| put(v.map(|v| v.as_str())));
        }
        put(self.relations.smtp.as_ref().map(|_| "smtp"));
        if let Some(Smtp { host, port, username, password, security, from }) = &self.relations.smtp {
            let (port, security) = (port.to_string(), format!("{security:?}"));
            [Some(host), Some(&port), username.as_ref(), password.as_ref(), Some(&security), Some(from)]
                .into_iter()
                .for_each(|v| put(v.map(|v| v.as_str())));
        }
        put(self.ca_bundle.as_deref());
        hash.finalize().into()
    }
}

/// One relation's result, before it has a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub relation: Relation,
    pub result: CheckResult,
    pub message: String,
}

/// Checks every checked relation of `subject` at once, each bounded by [`CHECK_TIMEOUT`].
/// `who` is the Penpot's `namespace/name`.
pub async fn check_all(subject: &Subject, egress: &Arc<Egress>, who: &str) -> Vec<Outcome> {
    let namespace = who.split_once('/').map_or("default", |(ns, _)| ns);
    let probe = Probe { egress, namespace, ca_bundle: subject.ca_bundle.as_deref() };
    let r = &subject.relations;
    let (postgresql, redis, s3, smtp) = futures::join!(
        bounded(Relation::Postgresql, postgresql::check(&r.postgresql, &probe)),
        bounded(Relation::Redis, async { redis::check(&r.redis, &probe).await.map(Found::Passed) }),
        optional(r.s3.as_ref().map(|s3| bounded(Relation::S3, s3::check(s3, &probe)))),
        optional(
            r.smtp
                .as_ref()
                .map(|smtp| bounded(Relation::Smtp, async { smtp::check(smtp, &probe).await.map(Found::Passed) }))
        ),
    );
    let secrets = secrets_of(r);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let outcome = |relation, result, at: String| outcome(relation, result, &at, &secrets, who);
    let mut outcomes = vec![
        outcome(Relation::Postgresql, postgresql, host_port(&r.postgresql.uri, 5432)),
        outcome(Relation::Redis, redis, host_port(&r.redis.uri, 6379)),
    ];
    if let (Some(result), Some(s3)) = (s3, &r.s3) {
        outcomes.push(outcome(Relation::S3, result, s3.endpoint.clone().unwrap_or_else(|| "Amazon S3".into())));
    }
    if let (Some(result), Some(smtp)) = (smtp, &r.smtp) {
        outcomes.push(outcome(Relation::Smtp, result, format!("{}:{}", smtp.host, smtp.port)));
    }
    outcomes
}

/// What a check found when it did not fail.
#[derive(Debug)]
pub enum Found {
    /// What passed.
    Passed(String),
    /// Why there was nothing the operator could check.
    Skipped(String),
}

type Checked = Result<Found, Failure>;

/// `check` within [`CHECK_TIMEOUT`], in a span of its own.
async fn bounded(relation: Relation, check: impl Future<Output = Checked>) -> Checked {
    use tracing::Instrument;
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .instrument(tracing::info_span!("check", relation = relation.name()))
        .await
        .unwrap_or_else(|_| Err(Failure::Unreachable(format!("no answer in {} s", CHECK_TIMEOUT.as_secs()))))
}

async fn optional<T>(check: Option<impl Future<Output = T>>) -> Option<T> {
    match check {
        Some(check) => Some(check.await),
        None => None,
    }
}

/// `host:port` of a URI: never the URI itself, whose query may hold a credential.
fn host_port(uri: &str, default_port: u16) -> String {
    url::Url::parse(uri)
        .ok()
        .map(|u| format!("{}:{}", u.host_str().unwrap_or_default(), u.port().unwrap_or(default_port)))
        .unwrap_or_default()
}

fn outcome(relation: Relation, result: Checked, at: &str, secrets: &[&str], who: &str) -> Outcome {
    let (result, message) = match result {
        Ok(Found::Passed(passed)) => (CheckResult::Passed, passed),
        Ok(Found::Skipped(why)) => (CheckResult::Skipped, why),
        Err(failure) => {
            tracing::info!(penpot = who, relation = relation.name(), error = %redact(&failure.to_string(), secrets), "relation check failed");
            (CheckResult::Failed, failure.for_status(at))
        }
    };
    Outcome { relation, result, message: redact(&message, secrets) }
}

/// Every secret value of `r`, and the forms a server could echo it in, so none can reach
/// status or the log.
fn secrets_of(r: &Relations) -> Vec<String> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let mut secrets = vec![r.postgresql.password.clone()];
    if let Some(password) = url::Url::parse(&r.redis.uri).ok().and_then(|u| u.password().map(str::to_string)) {
        let decoded = percent_encoding::percent_decode_str(&password).decode_utf8_lossy().into_owned();
        secrets.extend([decoded, password]);
    }
    if let Some(keys) = r.s3.as_ref().and_then(|s| s.keys.as_ref()) {
        secrets.push(keys.secret_key.clone());
    }
    if let Some(smtp) = &r.smtp
        && let Some(password) = &smtp.password
    {
        // AUTH PLAIN and AUTH LOGIN send it base64-encoded; a server may quote the line.
        let user = smtp.username.as_deref().unwrap_or_default();
        secrets.extend([STANDARD.encode(format!("\0{user}\0{password}")), STANDARD.encode(password), password.clone()]);
    }
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// `text` made fit for status: printable, at most [`MAX_MESSAGE`] characters, and with any
/// secret value replaced.
fn redact(text: &str, secrets: &[&str]) -> String {
    // Replaced before the cut: a secret cut in half would no longer match.
    let mut text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    for secret in secrets {
        text = text.replace(secret, "<redacted>");
    }
    text.chars().take(MAX_MESSAGE).collect()
}

/// The background checks of every Penpot, and what they found.
pub struct Checker {
    egress: Arc<Egress>,
    /// Penpots by `namespace/name`.
    entries: Mutex<HashMap<String, Entry>>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Called with `namespace/name` when a check ended: the controller reconciles it again.
    wake: Box<dyn Fn(&str) + Send + Sync>,
    /// Numbers the passes, so a pass that was overtaken touches nothing.
    passes: std::sync::atomic::AtomicU64,
}

struct Entry {
    /// [`Subject::digest`] of the relations last seen.
    digest: [u8; 32],
    /// What status shows of these relations: the last pass's results, each with the time it
    /// was first found; before this process's first pass, what status held (so a restart or
    /// a new leader rewrites nothing, and results found again keep their `since`).
    shown: Vec<RelationCheck>,
    /// When the last pass for these relations ended.
    checked: Option<Instant>,
    /// The pass under way: its number and how to stop it.
    running: Option<(u64, tokio::task::AbortHandle)>,
    /// Failing passes in a row for these relations.
    failed: u32,
    /// When the last pass started: passes of one Penpot are at least [`MIN_GAP`] apart,
    /// however often its Secret changes, so the checks are no fast password oracle.
    started: Option<Instant>,
}

/// The least time between two passes of one Penpot.
pub const MIN_GAP: Duration = Duration::from_secs(30);

impl Checker {
    pub fn new(egress: Arc<Egress>, wake: impl Fn(&str) + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            egress,
            entries: Mutex::new(HashMap::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(PARALLEL)),
            wake: Box::new(wake),
            passes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// What is known of `subject` for the Penpot `key`, at once; a check starts in the
    /// background when none was made for exactly this subject or the last one is old.
    /// `previous` is the Penpot's `status.checks` as stored.
    pub fn observe(self: &Arc<Self>, key: &str, subject: &Subject, previous: &[RelationCheck]) -> Vec<RelationCheck> {
        let digest = subject.digest();
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.entry(key.to_string()).or_insert_with(|| Entry {
            digest,
            shown: previous.to_vec(),
            checked: None,
            running: None,
            failed: 0,
            started: None,
        });
        if entry.digest != digest {
            // New relations: what was found is about the old ones, and so is a pass under way.
            if let Some((_, pass)) = entry.running.take() {
                pass.abort();
            }
            entry.digest = digest;
            entry.shown.clear();
            entry.checked = None;
            entry.failed = 0;
        }
        let due = entry.checked.is_none_or(|at| at.elapsed() >= recheck_after(entry.failed));
        if due && entry.running.is_none() {
            let id = self.passes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let wait = entry.started.map_or(Duration::ZERO, |at| MIN_GAP.saturating_sub(at.elapsed()));
            entry.started = Some(Instant::now() + wait);
            let pass = tokio::spawn(self.clone().run(key.to_string(), subject.clone(), id, wait));
            entry.running = Some((id, pass.abort_handle()));
        }
        if entry.shown.is_empty() { checking(&subject.relations) } else { entry.shown.clone() }
    }

    /// Forgets Penpots that are gone, stopping their passes.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|key, entry| {
            let kept = keep(key);
            if let (false, Some((_, pass))) = (kept, &entry.running) {
                pass.abort();
            }
            kept
        });
    }

    /// Pass `id` for `subject`, after `wait`; its credentials live only as long as the pass.
    async fn run(self: Arc<Self>, key: String, subject: Subject, id: u64, wait: Duration) {
        use tracing::Instrument;
        tokio::time::sleep(wait).await;
        let Ok(_permit) = self.permits.clone().acquire_owned().await else { return };
        // A trace of its own: it outlives the reconcile that started it.
        let span = tracing::info_span!(parent: None, "relation_checks", penpot = %key);
        let outcomes = check_all(&subject, &self.egress, &key).instrument(span).await;
        {
            let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(entry) = entries.get_mut(&key) else { return };
            if entry.running.as_ref().map(|(pass, _)| *pass) != Some(id) {
                return; // overtaken by newer relations
            }
            entry.running = None;
            let now = Time(Timestamp::now());
            // A result found again keeps its time, so status is not rewritten for nothing.
            let found: Vec<RelationCheck> = outcomes
                .into_iter()
                .map(|o| RelationCheck {
                    since: entry.shown.iter().find(|s| same(s, &o)).and_then(|s| s.since.clone()).or(Some(now.clone())),
                    relation: o.relation.name().to_string(),
                    result: o.result,
                    message: o.message,
                })
                .collect();
            let unchanged = found == entry.shown;
            let failed = found.iter().any(|c| c.result == CheckResult::Failed);
            entry.shown = found;
            entry.checked = Some(Instant::now());
            // Nothing else reconciles a settled Penpot this soon: come back when due.
            entry.failed = if failed { entry.failed.saturating_add(1) } else { 0 };
            self.wake_after(&key, recheck_after(entry.failed), entry.digest);
            if unchanged {
                return;
            }
        }
        (self.wake)(&key);
    }

    /// Wakes the Penpot `key` after `delay`, unless its relations changed by then.
    fn wake_after(self: &Arc<Self>, key: &str, delay: Duration, digest: [u8; 32]) {
        let checker = Arc::downgrade(self);
        let key = key.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(checker) = checker.upgrade() else { return };
            let current = checker
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&key)
                .map(|e| e.digest == digest);
            if current == Some(true) {
                (checker.wake)(&key);
            }
        });
    }
}

/// Whether a stored status entry says what `outcome` says.
fn same(stored: &RelationCheck, outcome: &Outcome) -> bool {
    stored.relation == outcome.relation.name() && stored.result == outcome.result && stored.message == outcome.message
}

/// `Unknown` for each relation a pass checks, while the first pass for them runs.
fn checking(r: &Relations) -> Vec<RelationCheck> {
    checked(r)
        .into_iter()
        .map(|relation| RelationCheck {
            relation: relation.name().to_string(),
            result: CheckResult::Unknown,
            message: "checking".into(),
            since: None,
        })
        .collect()
}

/// The relations a pass checks.
fn checked(r: &Relations) -> Vec<Relation> {
    [Relation::Postgresql, Relation::Redis, Relation::S3, Relation::Smtp].into_iter().filter(|x| r.has(*x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relations::{postgresql::Postgresql, redis::Redis};

    fn subject(password: &str) -> Subject {
        Subject {
            relations: Relations {
                postgresql: Postgresql {
                    uri: "postgresql://127.0.0.1:5432/penpot".into(),
                    username: "penpot".into(),
                    password: password.into(),
                },
                redis: Redis { uri: "redis://127.0.0.1:6379".into() },
                s3: None,
                smtp: None,
                oidc: None,
                google: None,
                github: None,
                gitlab: None,
                ldap: None,
            },
            ca_bundle: None,
        }
    }

    /// The reconcile gets `Unknown` at once; the background pass (here refused by the fence,
    /// loopback being fenced) wakes the Penpot, and the next look has the results. A changed
    /// relation starts over; an unchanged one is not checked again before it is due.
    /// Paused time: the recheck timers and the gap between passes pass at once.
    #[tokio::test(start_paused = true)]
    async fn observe_answers_at_once_and_wakes_the_penpot_when_a_pass_ends() {
        let (woken, mut wakes) = tokio::sync::mpsc::unbounded_channel();
        let checker = Checker::new(Arc::new(Egress::default()), move |key| {
            let _ = woken.send(key.to_string());
        });
        let first = checker.observe("ns/p", &subject("one"), &[]);
        assert_eq!(
            first.iter().map(|c| (c.relation.as_str(), c.result)).collect::<Vec<_>>(),
            [("postgresql", CheckResult::Unknown), ("redis", CheckResult::Unknown)]
        );
        assert_eq!(wakes.recv().await.as_deref(), Some("ns/p"));
        let found = checker.observe("ns/p", &subject("one"), &[]);
        assert!(found.iter().all(|c| c.result == CheckResult::Failed && c.since.is_some()), "{found:?}");
        assert!(found[0].message.contains("a loopback address"), "{found:?}");
        // Not due: no new pass, so no wake.
        assert!(tokio::time::timeout(Duration::from_millis(300), wakes.recv()).await.is_err());
        // A change starts over, at least MIN_GAP after the last pass began.
        let asked = tokio::time::Instant::now();
        let changed = checker.observe("ns/p", &subject("two"), &[]);
        assert!(changed.iter().all(|c| c.result == CheckResult::Unknown));
        assert_eq!(wakes.recv().await.as_deref(), Some("ns/p"));
        assert!(asked.elapsed() >= MIN_GAP - Duration::from_secs(1), "{:?}", asked.elapsed());
        // Failing, the Penpot is woken again when the recheck is due.
        assert_eq!(wakes.recv().await.as_deref(), Some("ns/p"));
        assert!(asked.elapsed() >= RECHECK_FAILED, "{:?}", asked.elapsed());
        checker.retain(|_| false);
        assert!(checker.entries.lock().unwrap().is_empty());
    }

    /// After a restart the stored results stand until the first pass ends, and a result found
    /// again keeps its stored time: a new leader rewrites nothing.
    #[tokio::test(start_paused = true)]
    async fn stored_results_stand_until_the_first_pass_and_keep_their_time() {
        let (woken, mut wakes) = tokio::sync::mpsc::unbounded_channel::<String>();
        let checker = Checker::new(Arc::new(Egress::default()), move |key| {
            let _ = woken.send(key.to_string());
        });
        let (woke_first, mut first_wakes) = tokio::sync::mpsc::unbounded_channel::<String>();
        let probe = Checker::new(Arc::new(Egress::default()), move |key| {
            let _ = woke_first.send(key.to_string());
        });
        probe.observe("ns/p", &subject("one"), &[]);
        first_wakes.recv().await;
        let mut stored = probe.observe("ns/p", &subject("one"), &[]);
        let at = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::from_second(1_000_000).unwrap());
        stored.iter_mut().for_each(|c| c.since = Some(at.clone()));
        assert_eq!(checker.observe("ns/p", &subject("one"), &stored), stored, "the stored results stand");
        // The pass finds the same: no wake, and the stored time stays.
        assert!(tokio::time::timeout(Duration::from_secs(5), wakes.recv()).await.is_err());
        assert_eq!(checker.observe("ns/p", &subject("one"), &[]), stored);
    }

    #[test]
    fn rechecks_back_off_while_failing() {
        let waits: Vec<u64> = (0..7).map(|n| recheck_after(n).as_secs()).collect();
        assert_eq!(waits, [600, 60, 120, 240, 480, 600, 600]);
        assert_eq!(recheck_after(u32::MAX), RECHECK_PASSED);
    }

    #[test]
    fn the_digest_follows_every_credential_and_the_bundle() {
        let base = subject("one");
        assert_eq!(base.digest(), subject("one").digest());
        assert_ne!(base.digest(), subject("two").digest());
        let bundled = Subject { ca_bundle: Some("pem".into()), ..subject("one") };
        assert_ne!(base.digest(), bundled.digest());
    }

    #[test]
    fn messages_are_cut_stripped_and_redacted() {
        let text = format!("refused: pass\u{7}word s3cr3t {}", "x".repeat(400));
        let out = redact(&text, &["s3cr3t"]);
        assert!(out.starts_with("refused: pass word <redacted> x"), "{out}");
        assert_eq!(out.chars().count(), MAX_MESSAGE);
        let cut = format!("{}s3cr3t", "y".repeat(MAX_MESSAGE - 3));
        assert!(!redact(&cut, &["s3cr3t"]).contains("s3c"), "half a secret survives the cut");
    }
}
