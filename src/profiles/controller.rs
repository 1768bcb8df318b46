//! The `PenpotProfile` controller: one profile per resource, created once, then kept as the
//! spec says (full name, deactivated) with its password set again whenever its Secret
//! changes, and deleted with the resource through a finalizer unless `deletionPolicy: Retain`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::conditions::{self, ConditionType, Progress, Reason};
use crate::crd::profile::DeletionPolicy;
use crate::crd::{Penpot, PenpotProfile, PenpotProfileStatus};
use crate::render::labels;

use super::{Changes, Deactivations, Outcome, PreplError};

pub const FINALIZER: &str = "penpot-operator.dev/profile";
/// A password, the Secret it came from, and that Secret's resourceVersion.
type Found = (String, String, String);

/// What status records about a profile this resource manages: the password's Secret, the
/// version last set from it (empty: none), whether it created the profile, and the full name
/// and deactivation last set in Penpot (`None`: not known).
struct Applied {
    secret: String,
    version: String,
    created: bool,
    fullname: Option<String>,
    deactivated: Option<bool>,
}

impl Applied {
    /// The profile is no longer this resource's: nothing of it is known.
    fn disowned(secret: String) -> Self {
        Applied { secret, version: String::new(), created: false, fullname: None, deactivated: None }
    }
}
const PASSWORD_KEY: &str = "password";
const RETRY: Duration = Duration::from_secs(15);
/// How soon an unusable password Secret is looked at again.
const INVALID_SECRET_RETRY: Duration = Duration::from_secs(60);
/// How soon a deactivation that failed to go again is tried again (sooner with a shorter
/// resync): not every 15 s, since each try opens a port-forward and nothing waits on it.
const REDEACTIVATE_RETRY: Duration = Duration::from_secs(60);
/// How long a deleted PenpotProfile with `deletionPolicy: Delete` waits for a Ready pod to
/// run delete-profile in. After that its finalizer goes without it, with a Warning Event,
/// so a Penpot that stays down cannot hold the namespace's deletion forever.
pub const DELETE_GIVE_UP: Duration = Duration::from_secs(600);

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{0}")]
    Prepl(#[from] PreplError),
    #[error("PenpotProfile is not namespaced")]
    NotNamespaced,
    #[error("not the leader: refusing to write")]
    NotLeader,
}

pub struct Context {
    pub client: Client,
    pub leader: Arc<crate::leader::Gate>,
    pub reporter: kube::runtime::events::Reporter,
    pub deactivations: Deactivations,
}

impl Context {
    fn ensure_leader(&self) -> Result<(), Error> {
        if self.leader.may_write() { Ok(()) } else { Err(Error::NotLeader) }
    }
}

pub async fn reconcile(profile: Arc<PenpotProfile>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = profile.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<PenpotProfile> = Api::namespaced(ctx.client.clone(), &ns);
    ctx.ensure_leader()?;
    finalizer(&api, FINALIZER, profile, |event| async {
        match event {
            Event::Apply(p) => apply(&p, &ns, &ctx).await,
            Event::Cleanup(p) => cleanup(&p, &ns, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(profile: Arc<PenpotProfile>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(namespace = profile.namespace().unwrap_or_default(), profile = %profile.name_any(), %error, "profile reconcile failed");
    Action::requeue(RETRY)
}

/// Whether this resource created the profile in Penpot, whatever happened to its password
/// since. Resources from before `status.created` count when their status says `Created`.
fn created(profile: &PenpotProfile) -> bool {
    let Some(status) = &profile.status else { return false };
    let ready = conditions::find(&status.conditions, ConditionType::Ready);
    status.created || status.password_secret.is_some() && ready.is_some_and(|c| c.reason == Reason::Created.as_str())
}

/// Whether a profile with this email was found already there: left alone for good.
fn adopted(profile: &PenpotProfile) -> bool {
    let ready = profile.status.as_ref().and_then(|s| conditions::find(&s.conditions, ConditionType::Ready));
    ready.is_some_and(|c| c.reason == Reason::AlreadyExists.as_str())
}

/// The password Secret's name a profile uses: the referenced one, or the generated one.
pub fn password_secret_name(profile: &PenpotProfile) -> String {
    match &profile.spec.password_secret_ref {
        Some(r) => r.name.clone(),
        None => format!("{}-password", profile.name_any()),
    }
}

async fn apply(cached: &PenpotProfile, ns: &str, ctx: &Context) -> Result<Action, Error> {
    // Read fresh: the password Secret this reconcile may create wakes the next one before
    // the watch has delivered this one's status, and a stale status would create twice.
    let api: Api<PenpotProfile> = Api::namespaced(ctx.client.clone(), ns);
    let Some(fresh) = api.get_opt(&cached.name_any()).await? else { return Ok(Action::await_change()) };
    let profile = &fresh;
    if adopted(profile) {
        return Ok(Action::await_change());
    }
    if created(profile) {
        return sync(profile, ns, ctx).await;
    }
    let pod = match target(profile, ns, ctx).await? {
        Target::Pod(pod) => pod,
        Target::Unavailable(reason, message) => {
            report(profile, ns, ctx, reason, &message, None).await?;
            return Ok(Action::requeue(RETRY));
        }
    };
    let (password, secret_name, version) = match password(profile, ns, ctx).await? {
        Ok(found) => found,
        Err(message) => return invalid_secret(profile, ns, ctx, &message).await,
    };
    ctx.ensure_leader()?;
    let spec = &profile.spec;
    let result =
        super::create_profile(&ctx.client, ns, &pod, &spec.email, &spec.fullname, &password, !spec.deactivated).await;
    match result {
        Ok(Outcome::Created) => {
            let applied = Applied {
                secret: secret_name,
                version,
                created: true,
                fullname: Some(spec.fullname.clone()),
                deactivated: Some(spec.deactivated),
            };
            let message = if spec.deactivated { "profile created, deactivated" } else { "profile created" };
            report(profile, ns, ctx, Reason::Created, message, Some(applied)).await?;
            sent(profile, ctx, Some(!spec.deactivated));
            Ok(next(profile, ctx, None))
        }
        Ok(_) => {
            // Not this resource's profile: never edited, nor deleted.
            let message = "a profile with this email already existed; it is left alone (not edited, not deleted)";
            report(profile, ns, ctx, Reason::AlreadyExists, message, None).await?;
            Ok(Action::await_change())
        }
        Err(e) if e.is_reported() => {
            report(profile, ns, ctx, Reason::CreateFailed, &e.to_string(), None).await?;
            Ok(Action::requeue(RETRY))
        }
        Err(e) => Err(e.into()),
    }
}

/// Where the profile commands go, or why they cannot go anywhere yet.
enum Target {
    Pod(String),
    /// The Penpot is absent, has no Ready pod, or runs a release this client cannot talk to.
    Unavailable(Reason, String),
}

async fn target(profile: &PenpotProfile, ns: &str, ctx: &Context) -> Result<Target, Error> {
    let penpot_name = &profile.spec.penpot_ref.name;
    let Some(penpot) = Api::<Penpot>::namespaced(ctx.client.clone(), ns).get_opt(penpot_name).await? else {
        return Ok(Target::Unavailable(Reason::PenpotNotFound, format!("waiting for Penpot {penpot_name}")));
    };
    match super::ready_pod_of(&ctx.client, ns, &penpot).await {
        Ok(pod) => Ok(Target::Pod(pod)),
        Err(PreplError::NotReady(_)) => {
            Ok(Target::Unavailable(Reason::PenpotNotReady, format!("waiting for Penpot {penpot_name} to be ready")))
        }
        Err(e @ PreplError::TooOld { .. }) => Ok(Target::Unavailable(Reason::PenpotTooOld, e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// The password Secret is unusable: said in status, and looked at again in a minute.
async fn invalid_secret(profile: &PenpotProfile, ns: &str, ctx: &Context, message: &str) -> Result<Action, Error> {
    report(profile, ns, ctx, Reason::InvalidPasswordSecret, message, None).await?;
    Ok(Action::requeue(INVALID_SECRET_RETRY))
}

/// A profile this resource created: what changed since it was last set (the full name,
/// deactivation, the password's Secret) is set in one update-profile.
async fn sync(profile: &PenpotProfile, ns: &str, ctx: &Context) -> Result<Action, Error> {
    let spec = &profile.spec;
    let status = profile.status.clone().unwrap_or_default();
    let mut changes = edits(profile);
    let name = password_secret_name(profile);
    let mut secret = (status.password_secret.clone().unwrap_or_else(|| name.clone()), status.password_version.clone());
    let current = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(&name)
        .await?
        .and_then(|s| s.metadata.resource_version);
    let password_due = match (&current, &status.password_version) {
        // A referenced Secret that went away leaves the password as it is.
        (None, _) => profile.spec.password_secret_ref.is_none(),
        (Some(c), Some(a)) => c != a,
        // Recorded before versions were: this version is the one it was set from.
        (Some(c), None) => {
            secret = (name.clone(), Some(c.clone()));
            false
        }
    };
    // An unusable Secret holds back only the password: the other edits, and above all a
    // deactivation, still go.
    let mut unusable = None;
    if password_due {
        match password(profile, ns, ctx).await? {
            Ok((password, secret_name, version)) => {
                changes.password = Some(password);
                secret = (secret_name, Some(version));
            }
            Err(message) => unusable = Some(message),
        }
    }
    let applied = Applied {
        secret: secret.0.clone(),
        version: secret.1.unwrap_or_default(),
        created: true,
        fullname: Some(spec.fullname.clone()),
        deactivated: Some(spec.deactivated),
    };
    // The spec asks for nothing new. A deactivated profile is still deactivated again once a
    // resync, since a password recovery in Penpot makes it active.
    let settled = changes.is_empty();
    if settled {
        let due_in = ctx.deactivations.due_in(&uid(profile), Instant::now());
        if !spec.deactivated || !due_in.is_zero() {
            if let Some(message) = unusable {
                report(profile, ns, ctx, Reason::InvalidPasswordSecret, &message, None).await?;
                return Ok(next(profile, ctx, Some(INVALID_SECRET_RETRY)));
            }
            report_settled(profile, ns, ctx, applied).await?;
            return Ok(next(profile, ctx, None));
        }
        changes.active = Some(false);
    }
    // Waiting for the Penpot says nothing new about a profile that exists: status stays.
    let pod = match target(profile, ns, ctx).await? {
        Target::Pod(pod) => pod,
        Target::Unavailable(..) if settled => return Ok(Action::requeue(ctx.deactivations.every())),
        Target::Unavailable(..) => return Ok(Action::requeue(RETRY)),
    };
    ctx.ensure_leader()?;
    match super::update_profile(&ctx.client, ns, &pod, &spec.email, &changes).await {
        Ok(Outcome::NotFound) => {
            // Deleted in Penpot: no longer this resource's. The next pass creates it again,
            // or finds that someone else registered the email and leaves that account alone.
            let message = "the profile is gone from Penpot (deleted there?); it is created again";
            report(profile, ns, ctx, Reason::UpdateFailed, message, Some(Applied::disowned(secret.0))).await?;
            Ok(Action::requeue(RETRY))
        }
        Ok(_) => {
            sent(profile, ctx, changes.active);
            if let Some(message) = unusable {
                report(profile, ns, ctx, Reason::InvalidPasswordSecret, &message, Some(applied)).await?;
                return Ok(next(profile, ctx, Some(INVALID_SECRET_RETRY)));
            }
            if settled {
                report_settled(profile, ns, ctx, applied).await?;
            } else {
                let mut message = format!("set {}", changes.describe());
                if changes.password.is_some() {
                    message.push_str(&format!(" (password from Secret {})", applied.secret));
                }
                report(profile, ns, ctx, Reason::Updated, &message, Some(applied)).await?;
            }
            Ok(next(profile, ctx, None))
        }
        Err(e) if e.is_reported() && settled => {
            // Only the deactivation was sent again, and status says what was last set, which
            // is still true: the failure is a Warning Event, and the next try a minute away.
            let note = format!("profile {} was not deactivated again: {e}", spec.email);
            let regarding = profile.object_ref(&());
            crate::controller::warn(&ctx.client, &ctx.reporter, &regarding, "DeactivationFailed", "Deactivate", note)
                .await;
            if let Some(message) = &unusable {
                report(profile, ns, ctx, Reason::InvalidPasswordSecret, message, None).await?;
            }
            Ok(Action::requeue(REDEACTIVATE_RETRY.min(ctx.deactivations.every())))
        }
        Err(e) if e.is_reported() => {
            report(profile, ns, ctx, Reason::UpdateFailed, &e.to_string(), None).await?;
            Ok(Action::requeue(RETRY))
        }
        Err(e) => Err(e.into()),
    }
}

/// Status of a profile as the spec says, with nothing new sent: what status lacks (a record
/// from before it kept all this) is written, and a failure it still shows is over.
async fn report_settled(profile: &PenpotProfile, ns: &str, ctx: &Context, applied: Applied) -> Result<(), Error> {
    let status = profile.status.clone().unwrap_or_default();
    let ready = conditions::find(&status.conditions, ConditionType::Ready);
    let (reason, message) = match ready {
        Some(c) if c.reason == Reason::Created.as_str() || c.reason == Reason::Updated.as_str() => {
            (if c.reason == Reason::Created.as_str() { Reason::Created } else { Reason::Updated }, c.message.clone())
        }
        _ => (Reason::Updated, "the profile is as the spec says".to_string()),
    };
    report(profile, ns, ctx, reason, &message, Some(applied)).await
}

/// The key a profile's deactivation is remembered by.
fn uid(profile: &PenpotProfile) -> String {
    profile.uid().unwrap_or_else(|| profile.name_any())
}

/// A create or update that set `active` went through: a deactivation is due again a resync
/// from now, and a reactivated profile has none due.
fn sent(profile: &PenpotProfile, ctx: &Context, active: Option<bool>) {
    match active {
        Some(false) => ctx.deactivations.sent(&uid(profile), Instant::now()),
        Some(true) => ctx.deactivations.forget(&uid(profile)),
        None => {}
    }
}

/// The next pass of a profile that went as planned: after `retry` (`None`: on a change), or
/// sooner when it is deactivated and due to be deactivated again.
fn next(profile: &PenpotProfile, ctx: &Context, retry: Option<Duration>) -> Action {
    let due = profile.spec.deactivated.then(|| ctx.deactivations.due_in(&uid(profile), Instant::now()));
    retry.into_iter().chain(due).min().map_or_else(Action::await_change, Action::requeue)
}

async fn cleanup(profile: &PenpotProfile, ns: &str, ctx: &Context) -> Result<Action, Error> {
    ctx.deactivations.forget(&uid(profile));
    if profile.spec.deletion_policy == DeletionPolicy::Retain || !created(profile) {
        return Ok(Action::await_change());
    }
    let penpot_name = &profile.spec.penpot_ref.name;
    // The whole instance is gone: nothing to delete the profile from.
    let Some(penpot) = Api::<Penpot>::namespaced(ctx.client.clone(), ns).get_opt(penpot_name).await? else {
        return Ok(Action::await_change());
    };
    if penpot.spec.replicas == 0 {
        let note =
            format!("Penpot {penpot_name} is scaled to 0: profile {} was not deleted from it", profile.spec.email);
        give_up(profile, ctx, &note).await;
        return Ok(Action::await_change());
    }
    let deleted_for: Duration = profile
        .meta()
        .deletion_timestamp
        .as_ref()
        .and_then(|t| k8s_openapi::jiff::Timestamp::now().duration_since(t.0).try_into().ok())
        .unwrap_or_default();
    let result = match super::ready_pod_of(&ctx.client, ns, &penpot).await {
        Ok(pod) => {
            ctx.ensure_leader()?;
            super::delete_profile(&ctx.client, ns, &pod, &profile.spec.email).await.map(drop)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        Err(e) if deleted_for >= DELETE_GIVE_UP => {
            let note = format!(
                "profile {} was not deleted from Penpot {penpot_name} within {} s ({e}); the PenpotProfile goes without it",
                profile.spec.email,
                DELETE_GIVE_UP.as_secs()
            );
            give_up(profile, ctx, &note).await;
            Ok(Action::await_change())
        }
        Err(e) => Err(e.into()),
    }
}

/// The finalizer goes without deleting the profile: said in a Warning Event on the
/// PenpotProfile, best effort.
async fn give_up(profile: &PenpotProfile, ctx: &Context, note: &str) {
    let regarding = profile.object_ref(&());
    crate::controller::warn(&ctx.client, &ctx.reporter, &regarding, "ProfileNotDeleted", "DeleteProfile", note.into())
        .await;
}

/// The spec's edits (full name, deactivation) of a profile this resource created, against
/// what status says was last set. The password is the Secret's business.
fn edits(profile: &PenpotProfile) -> Changes {
    let spec = &profile.spec;
    let status = profile.status.clone().unwrap_or_default();
    // Without a record (from before status kept them): what the profile was created with.
    let fullname_set = status.fullname.unwrap_or_else(|| spec.fullname.clone());
    Changes {
        fullname: (fullname_set != spec.fullname).then(|| spec.fullname.clone()),
        password: None,
        active: (status.deactivated.unwrap_or(false) != spec.deactivated).then_some(!spec.deactivated),
    }
}

/// The password, the Secret it lives in and that Secret's resourceVersion. The generated one
/// is written once into `<name>-password`, owned by the PenpotProfile.
async fn password(profile: &PenpotProfile, ns: &str, ctx: &Context) -> Result<Result<Found, String>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    if let Some(r) = &profile.spec.password_secret_ref {
        let key = r.key.as_deref().unwrap_or(PASSWORD_KEY);
        let secret = secrets.get_opt(&r.name).await?;
        let version = secret.as_ref().and_then(|s| s.metadata.resource_version.clone()).unwrap_or_default();
        let value = secret.and_then(|s| s.data?.get(key).map(|v| v.0.clone()));
        return Ok(match value.and_then(|v| String::from_utf8(v).ok()).map(|v| v.trim().to_string()) {
            Some(p) if !p.is_empty() && !p.contains('\n') => Ok((p, r.name.clone(), version)),
            _ => Err(format!("Secret {:?} key {key:?} is missing, empty or not one line of UTF-8", r.name)),
        });
    }
    let name = format!("{}-password", profile.name_any());
    // An existing Secret is used as it is, never rewritten: the profile may already have
    // been created with its password.
    let stored = |secret: Secret| {
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        let password = secret.data.and_then(|d| d.get(PASSWORD_KEY).and_then(|v| String::from_utf8(v.0.clone()).ok()));
        let password = password.map(|p| p.trim().to_string()).filter(|p| !p.is_empty() && !p.contains('\n'));
        password.map(|p| (p, name.clone(), version)).ok_or_else(|| {
            format!(
                "Secret {name:?} exists but key {PASSWORD_KEY:?} is missing, empty or not one line of UTF-8; fix or delete it"
            )
        })
    };
    if let Some(existing) = secrets.get_opt(&name).await? {
        return Ok(stored(existing));
    }
    ctx.ensure_leader()?;
    let generated = super::generate_password();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_string()),
            labels: Some([(labels::MANAGED_BY_LABEL.to_string(), labels::MANAGER.to_string())].into()),
            owner_references: profile.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some([(PASSWORD_KEY.to_string(), ByteString(generated.clone().into_bytes()))].into()),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match secrets
        .create(&PostParams { field_manager: Some(labels::MANAGER.into()), ..Default::default() }, &secret)
        .await
    {
        Ok(created) => Ok(Ok((generated, name, created.metadata.resource_version.unwrap_or_default()))),
        // Created meanwhile (another replica, a restarted operator, a user): use that one,
        // as the secret key's create race does.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(stored(secrets.get(&name).await?)),
        Err(e) => Err(e.into()),
    }
}

/// Writes the profile's status for `reason` (which says whether it is done, waiting or stuck)
/// unless nothing changed.
async fn report(
    profile: &PenpotProfile,
    ns: &str,
    ctx: &Context,
    reason: Reason,
    message: &str,
    applied: Option<Applied>,
) -> Result<(), Error> {
    let previous = profile.status.clone().unwrap_or_default();
    let progress = match reason {
        Reason::Created | Reason::AlreadyExists | Reason::Updated => Progress::Done,
        Reason::InvalidPasswordSecret | Reason::UpdateFailed | Reason::PenpotTooOld => Progress::Stalled,
        _ => Progress::Reconciling,
    };
    let summary = conditions::Summary { progress, reason, ready_message: message, message };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let status = PenpotProfileStatus {
        observed_generation: profile.meta().generation,
        conditions: conditions::kstatus(&previous.conditions, &now, profile.meta().generation, &summary),
        password_secret: applied.as_ref().map(|a| a.secret.clone()).or(previous.password_secret.clone()),
        password_version: match &applied {
            Some(a) if a.version.is_empty() => None,
            Some(a) => Some(a.version.clone()),
            None => previous.password_version.clone(),
        },
        created: applied.as_ref().map_or(previous.created, |a| a.created),
        fullname: applied.as_ref().map_or(previous.fullname.clone(), |a| a.fullname.clone()),
        deactivated: applied.map_or(previous.deactivated, |a| a.deactivated),
    };
    if profile.status.as_ref() == Some(&status) {
        return Ok(());
    }
    ctx.ensure_leader()?;
    let api: Api<PenpotProfile> = Api::namespaced(ctx.client.clone(), ns);
    let patch =
        json!({ "apiVersion": PenpotProfile::api_version(&()), "kind": PenpotProfile::kind(&()), "status": status });
    api.patch_status(&profile.name_any(), &PatchParams::apply(labels::MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{conflict, mock, requests, secret_created_meanwhile};
    use http::StatusCode;

    fn profile() -> PenpotProfile {
        serde_json::from_value(json!({
            "apiVersion": "penpot-operator.dev/v1alpha1", "kind": "PenpotProfile",
            "metadata": {"name": "ada", "namespace": "ns", "uid": "profile-uid"},
            "spec": {"penpotRef": {"name": "p"}, "email": "ada@example.com", "fullname": "Ada"}
        }))
        .unwrap()
    }

    /// Another writer creates `<name>-password` between the read and the create: the create
    /// gets 409 and the winner's password is used, as the secret key's race is handled.
    #[tokio::test]
    async fn the_password_secret_create_race_uses_the_winners_password() {
        let (client, log) = mock(secret_created_meanwhile("ada-password", "password", "winner-password"));
        let ctx = Context {
            client,
            leader: Arc::new(crate::leader::Gate::always_open()),
            reporter: kube::runtime::events::Reporter { controller: "test".into(), instance: None },
            deactivations: Deactivations::new(Duration::from_secs(300)),
        };
        let found = password(&profile(), "ns", &ctx).await.unwrap();
        let found = found.map(|(p, s, _)| (p, s));
        assert_eq!(found, Ok(("winner-password".to_string(), "ada-password".to_string())));
        let path = "/api/v1/namespaces/ns/secrets";
        assert_eq!(
            requests(&log),
            [format!("GET {path}/ada-password"), format!("POST {path}"), format!("GET {path}/ada-password")]
        );
    }

    #[test]
    fn only_what_changed_since_it_was_last_set_is_sent() {
        let with = |fullname: &str, deactivated: bool, status: serde_json::Value| {
            let mut p = profile();
            p.spec.fullname = fullname.into();
            p.spec.deactivated = deactivated;
            p.status = Some(serde_json::from_value(status).unwrap());
            edits(&p)
        };
        assert!(with("Ada", false, json!({"fullname": "Ada", "deactivated": false})).is_empty());
        // A record from before status kept the name and the deactivation: nothing is re-sent.
        assert!(with("Ada", false, json!({})).is_empty());
        let renamed = with("Ada K", true, json!({"fullname": "Ada"}));
        assert_eq!(renamed, Changes { fullname: Some("Ada K".into()), password: None, active: Some(false) });
        let back = with("Ada K", false, json!({"fullname": "Ada K", "deactivated": true}));
        assert_eq!(back, Changes { active: Some(true), ..Default::default() });
    }

    #[tokio::test]
    async fn an_existing_password_secret_without_a_password_is_reported_not_overwritten() {
        let (client, log) = mock(Box::new(|method, _, _| match method {
            "GET" => {
                (StatusCode::OK, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ada-password"}}))
            }
            _ => conflict(),
        }));
        let ctx = Context {
            client,
            leader: Arc::new(crate::leader::Gate::always_open()),
            reporter: kube::runtime::events::Reporter { controller: "test".into(), instance: None },
            deactivations: Deactivations::new(Duration::from_secs(300)),
        };
        let found = password(&profile(), "ns", &ctx).await.unwrap();
        assert!(found.is_err_and(|m| m.contains("ada-password") && m.contains("fix or delete")));
        assert_eq!(requests(&log).len(), 1, "wrote to an existing Secret");
    }
}
