//! Status from what the reconcile observed: kstatus conditions plus the Juju-style phase.
//! Pure; the clock comes in as an argument so unchanged conditions keep their timestamps and
//! a status write with nothing new is skipped.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::conditions::{self, Progress, Reason};
use crate::crd::{PenpotStatus, Phase};
use crate::render::rollout::Rollout;
use crate::render::version::Version;

/// What one reconcile found out: the one outcome type status is computed from, offline
/// (`render`) and in the cluster alike.
pub enum Observation {
    /// Required relations are absent; nothing was applied.
    WaitingForRelations { missing: crate::relations::Missing, workload: Option<StatefulSet> },
    /// Relation data or spec cannot be served; nothing was applied, the running pods stay.
    Blocked { reason: Reason, message: String, workload: Option<StatefulSet> },
    /// The API server refused a rendered object; the operator retries with backoff. Not
    /// Stalled: a webhook, quota or conflict usually clears without a change to the Penpot.
    ApplyFailed { message: String, workload: Option<StatefulSet> },
    /// The desired state was applied; the StatefulSet is as the API server returned it.
    Applied { workload: StatefulSet, config_hash: String, rollout: Rollout },
    /// A new configuration waits `wait` because the pods rolled recently; nothing applied.
    Deferred { workload: StatefulSet, wait: std::time::Duration, interval: std::time::Duration },
}

pub struct Context<'a> {
    pub generation: Option<i64>,
    pub previous: Option<&'a PenpotStatus>,
    pub now: Time,
    pub public_uri: Option<String>,
    /// The secret key Secret's creation time, when this pass read it.
    pub secret_key_created: Option<Time>,
    /// The OAuth callback URIs, when this pass rendered.
    pub redirect_uris: Option<std::collections::BTreeMap<String, String>>,
    /// The pre-flight checks of the relations this pass resolved (none when they did not).
    pub checks: Vec<crate::crd::RelationCheck>,
}

impl<'a> Context<'a> {
    /// The context of `penpot` at `now`, with its current status as the previous one.
    pub fn of(penpot: &'a crate::crd::Penpot, now: Time) -> Self {
        Context {
            generation: penpot.metadata.generation,
            previous: penpot.status.as_ref(),
            now,
            public_uri: crate::render::validate::public_uri(penpot).ok(),
            secret_key_created: None,
            redirect_uris: None,
            checks: Vec::new(),
        }
    }
}

struct Summary {
    phase: Phase,
    message: String,
    progress: Progress,
    reason: Reason,
}

fn ready_replicas(sts: Option<&StatefulSet>) -> Option<i32> {
    sts.map(|s| s.status.as_ref().and_then(|st| st.ready_replicas).unwrap_or(0))
}

fn running_note(sts: Option<&StatefulSet>) -> String {
    match ready_replicas(sts) {
        Some(n) if n > 0 => format!("; {n} running pod(s) keep the last good configuration"),
        _ => String::new(),
    }
}

/// Rollout progress read the way kstatus reads a StatefulSet.
fn rollout(sts: &StatefulSet) -> Summary {
    let want = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = sts.status.clone().unwrap_or_default();
    let observed = st.observed_generation.unwrap_or(0) >= sts.metadata.generation.unwrap_or(0);
    let ready = st.ready_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let revisions_match = st.update_revision.is_some() && st.current_revision == st.update_revision;
    if want == 0 && st.replicas == 0 && observed {
        return Summary {
            phase: Phase::Active,
            message: "scaled to zero".into(),
            progress: Progress::Done,
            reason: Reason::ScaledToZero,
        };
    }
    if observed && ready >= want && updated >= want && st.replicas == want && revisions_match {
        return Summary {
            phase: Phase::Active,
            message: String::new(),
            progress: Progress::Done,
            reason: Reason::Ready,
        };
    }
    let updating = st.current_revision.is_some() && !revisions_match;
    let (phase, why) =
        if updating { (Phase::Maintenance, Reason::RolloutInProgress) } else { (Phase::Waiting, Reason::PodsStarting) };
    // Say what is actually outstanding: "1/1 ready" while the StatefulSet controller has not
    // yet seen the latest spec read as a contradiction.
    let message = if updating {
        format!("rolling out new configuration: {updated}/{want} pods updated, {ready} ready")
    } else if ready < want {
        format!("waiting for pods: {ready}/{want} ready")
    } else if !observed {
        "waiting for the StatefulSet controller to take up the new spec".to_string()
    } else {
        format!("waiting for pods: {}/{want} running, {updated}/{want} up to date", st.replicas)
    };
    Summary { phase, message, progress: Progress::Reconciling, reason: why }
}

/// One pod runs the new version first: say which, and what the others wait for.
fn first_pod(sts: &StatefulSet, from: Option<Version>, to: Version) -> Summary {
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let name = sts.metadata.name.as_deref().unwrap_or_default();
    let message = match from {
        Some(from) => format!(
            "{} Penpot {from} to {to}: pod {name}-{} runs {to} first and migrates the database; the other pods stay on {from} until it is Ready",
            // Only with spec.upgrade.allowDowngrade, after a restore.
            if to > from { "upgrading" } else { "downgrading" },
            (replicas - 1).max(0)
        ),
        None => format!(
            "installing Penpot {to}: pod {name}-0 starts first and migrates the database; the other pods start once it is Ready"
        ),
    };
    Summary { phase: Phase::Maintenance, message, progress: Progress::Reconciling, reason: Reason::UpgradingFirstPod }
}

pub fn compute(ctx: &Context, obs: &Observation) -> PenpotStatus {
    let (summary, workload, config_hash) = match obs {
        Observation::WaitingForRelations { missing, workload } => (
            Summary {
                phase: Phase::Blocked,
                message: format!("waiting for {missing}"),
                progress: Progress::Reconciling,
                reason: Reason::WaitingForRelations,
            },
            workload.as_ref(),
            None,
        ),
        Observation::Blocked { reason, message, workload } => (
            Summary {
                phase: Phase::Blocked,
                message: format!("{message}{}", running_note(workload.as_ref())),
                progress: Progress::Stalled,
                reason: *reason,
            },
            workload.as_ref(),
            None,
        ),
        Observation::ApplyFailed { message, workload } => (
            Summary {
                phase: Phase::Waiting,
                message: format!("{message}; retrying{}", running_note(workload.as_ref())),
                progress: Progress::Reconciling,
                reason: Reason::ApplyFailed,
            },
            workload.as_ref(),
            None,
        ),
        Observation::Deferred { workload, wait, interval } => (
            Summary {
                phase: Phase::Maintenance,
                message: format!(
                    "a new configuration waits {} s: the pods roll at most once every {} s{}",
                    wait.as_secs().max(1),
                    interval.as_secs(),
                    running_note(Some(workload))
                ),
                progress: Progress::Reconciling,
                reason: Reason::RolloutDeferred,
            },
            Some(workload),
            None,
        ),
        Observation::Applied { workload, config_hash, rollout: Rollout::BackingUp { from, to, backup } } => {
            let message = format!(
                "backing up the database (CloudNativePG Backup {backup}) before upgrading Penpot {from} to {to}; every pod stays on {from} until the backup completed"
            );
            let summary = Summary {
                phase: Phase::Maintenance,
                message,
                progress: Progress::Reconciling,
                reason: Reason::BackingUpBeforeUpgrade,
            };
            (summary, Some(workload), Some(config_hash.clone()))
        }
        Observation::Applied { workload, config_hash, rollout: Rollout::FirstPod { from, to } } => {
            (first_pod(workload, *from, *to), Some(workload), Some(config_hash.clone()))
        }
        Observation::Applied { workload, config_hash, rollout: Rollout::Steady { .. } } => {
            (rollout(workload), Some(workload), Some(config_hash.clone()))
        }
    };
    // The version the database is at, which every pod runs once the rollout is done.
    let version = match obs {
        Observation::Applied { rollout, .. } => rollout.migrated().map(|v| v.to_string()),
        _ => None,
    };

    let ready_message = if summary.message.is_empty() {
        let n = ready_replicas(workload).unwrap_or(0);
        format!("{n} pod(s) ready")
    } else {
        summary.message.clone()
    };
    let previous_conditions = ctx.previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let mut conditions = conditions::kstatus(
        previous_conditions,
        &ctx.now,
        ctx.generation,
        &conditions::Summary {
            progress: summary.progress,
            reason: summary.reason,
            ready_message: &ready_message,
            message: &summary.message,
        },
    );
    conditions.extend(checks_condition(ctx, previous_conditions));
    let previous = ctx.previous;
    PenpotStatus {
        observed_generation: ctx.generation,
        conditions,
        phase: Some(summary.phase),
        message: (!summary.message.is_empty()).then_some(summary.message),
        ready_replicas: ready_replicas(workload).or(previous.and_then(|p| p.ready_replicas)),
        public_uri: ctx.public_uri.clone().or(previous.and_then(|p| p.public_uri.clone())),
        version: version.or(previous.and_then(|p| p.version.clone())),
        // Only an applied rollout changes what the pods run.
        config_hash: config_hash.or(previous.and_then(|p| p.config_hash.clone())),
        secret_key_created: ctx.secret_key_created.clone().or(previous.and_then(|p| p.secret_key_created.clone())),
        redirect_uris: ctx.redirect_uris.clone().or(previous.map(|p| p.redirect_uris.clone())).unwrap_or_default(),
        checks: ctx.checks.clone(),
    }
}

/// `RelationsReachable`: True when every check passed (or had nothing to check with), False
/// naming the failed relations, Unknown while the first checks run; absent without checks.
fn checks_condition(ctx: &Context, previous: &[Condition]) -> Option<Condition> {
    use crate::crd::CheckResult;
    if ctx.checks.is_empty() {
        return None;
    }
    let failed: Vec<&str> =
        ctx.checks.iter().filter(|c| c.result == CheckResult::Failed).map(|c| c.relation.as_str()).collect();
    let (status, reason, message) = if !failed.is_empty() {
        (Some(false), Reason::CheckFailed, format!("check failed: {} (status.checks says why)", failed.join(", ")))
    } else if ctx.checks.iter().any(|c| c.result == CheckResult::Unknown) {
        (None, Reason::Checking, "checking the relations".to_string())
    } else {
        (Some(true), Reason::ChecksPassed, String::new())
    };
    Some(conditions::make_condition_of(
        previous,
        &ctx.now,
        ctx.generation,
        conditions::ConditionType::RelationsReachable,
        status,
        reason,
        &message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(workload: &StatefulSet) -> Observation {
        let steady = Rollout::Steady { version: Version::CURRENT };
        Observation::Applied { workload: workload.clone(), config_hash: "h".into(), rollout: steady }
    }
    use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use k8s_openapi::jiff::Timestamp;

    fn ctx<'a>(previous: Option<&'a PenpotStatus>, secs: i64) -> Context<'a> {
        Context {
            generation: Some(2),
            previous,
            now: Time(Timestamp::from_second(secs).unwrap()),
            public_uri: Some("https://p/".into()),
            secret_key_created: None,
            redirect_uris: None,
            checks: Vec::new(),
        }
    }

    fn sts(want: i32, ready: i32, current: &str, update: &str) -> StatefulSet {
        StatefulSet {
            metadata: kube::api::ObjectMeta { generation: Some(3), ..Default::default() },
            spec: Some(StatefulSetSpec { replicas: Some(want), ..Default::default() }),
            status: Some(StatefulSetStatus {
                observed_generation: Some(3),
                replicas: want,
                ready_replicas: Some(ready),
                updated_replicas: Some(ready),
                current_revision: Some(current.into()),
                update_revision: Some(update.into()),
                ..Default::default()
            }),
        }
    }

    fn cond<'a>(s: &'a PenpotStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    /// `RelationsReachable` sums the checks up, keeps its time while unchanged, and stays out
    /// of `Ready`: a failed check does not make a running Penpot unready.
    #[test]
    fn relations_reachable_sums_up_the_checks_and_leaves_ready_alone() {
        use crate::crd::{CheckResult, RelationCheck};
        let check = |relation: &str, result| RelationCheck {
            relation: relation.into(),
            result,
            message: "m".into(),
            since: None,
        };
        let running = sts(1, 1, "r1", "r1");
        let with = |checks: Vec<RelationCheck>, previous: Option<&PenpotStatus>, secs| {
            let mut c = ctx(previous, secs);
            c.checks = checks;
            compute(&c, &applied(&running))
        };
        let none = with(vec![], None, 10);
        assert!(none.conditions.iter().all(|c| c.type_ != "RelationsReachable"), "no checks, no condition");
        let checking = with(vec![check("postgresql", CheckResult::Unknown)], None, 10);
        let c = cond(&checking, "RelationsReachable");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("Unknown", "Checking"));
        let failed = with(
            vec![
                check("postgresql", CheckResult::Failed),
                check("redis", CheckResult::Passed),
                check("smtp", CheckResult::Failed),
            ],
            Some(&checking),
            20,
        );
        let c = cond(&failed, "RelationsReachable");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "CheckFailed"));
        assert_eq!(c.message, "check failed: postgresql, smtp (status.checks says why)");
        assert_eq!(cond(&failed, "Ready").status, "True", "a failed check leaves Ready alone");
        let again = with(failed.checks.clone(), Some(&failed), 30);
        assert_eq!(cond(&again, "RelationsReachable").last_transition_time, c.last_transition_time);
        let passed =
            with(vec![check("redis", CheckResult::Passed), check("s3", CheckResult::Skipped)], Some(&failed), 40);
        let c = cond(&passed, "RelationsReachable");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "ChecksPassed"));
    }

    #[test]
    fn missing_relations_block_with_sorted_list() {
        let missing = crate::relations::Missing {
            relations: vec!["postgresql".into(), "redis".into()],
            secrets: vec!["p-redis".into()],
        };
        let obs = Observation::WaitingForRelations { missing, workload: None };
        let s = compute(&ctx(None, 10), &obs);
        assert_eq!(s.phase, Some(Phase::Blocked));
        assert_eq!(s.message.as_deref(), Some("waiting for postgresql, redis (Secret p-redis not found)"));
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "Reconciling").status, "True");
        assert_eq!(cond(&s, "Stalled").status, "False");
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn ready_when_all_pods_current_and_timestamps_kept() {
        let w = sts(2, 2, "r1", "r1");
        let first = compute(&ctx(None, 10), &applied(&w));
        assert_eq!(first.phase, Some(Phase::Active));
        assert_eq!(cond(&first, "Ready").status, "True");
        let again = compute(&ctx(Some(&first), 99), &applied(&w));
        assert_eq!(first, again, "an unchanged observation must give an identical status");
    }

    #[test]
    fn messages_name_what_is_outstanding() {
        let message = |sts: &StatefulSet| compute(&ctx(None, 1), &applied(sts)).message;
        let mut unobserved = sts(1, 1, "a", "a");
        unobserved.metadata.generation = Some(4);
        assert_eq!(
            message(&unobserved).as_deref(),
            Some("waiting for the StatefulSet controller to take up the new spec")
        );
        assert_eq!(message(&sts(2, 1, "a", "a")).as_deref(), Some("waiting for pods: 1/2 ready"));
        let mut extra = sts(1, 1, "a", "a");
        if let Some(st) = extra.status.as_mut() {
            st.replicas = 2;
        }
        assert_eq!(message(&extra).as_deref(), Some("waiting for pods: 2/1 running, 1/1 up to date"));
    }

    #[test]
    fn rollout_and_blocked_keep_running_note() {
        let w = sts(2, 1, "r1", "r2");
        let s = compute(&ctx(None, 10), &applied(&w));
        assert_eq!(s.phase, Some(Phase::Maintenance));
        assert_eq!(cond(&s, "Reconciling").reason, "RolloutInProgress");
        let w = sts(2, 2, "r1", "r1");
        let obs =
            Observation::Blocked { reason: Reason::InvalidRelation, message: "bad".into(), workload: Some(w.clone()) };
        let b = compute(&ctx(Some(&s), 20), &obs);
        assert_eq!(b.phase, Some(Phase::Blocked));
        assert_eq!(cond(&b, "Stalled").status, "True");
        assert!(b.message.unwrap().contains("2 running pod(s) keep the last good configuration"));
        assert_eq!(b.config_hash.as_deref(), Some("h"));
    }

    #[test]
    fn refused_apply_is_reconciling_not_stalled_and_keeps_the_rollout_hash() {
        let w = sts(2, 2, "r1", "r1");
        let active = compute(&ctx(None, 10), &applied(&w));
        let obs = Observation::ApplyFailed {
            message: "the API server refused StatefulSet p".into(),
            workload: Some(w.clone()),
        };
        let s = compute(&ctx(Some(&active), 20), &obs);
        assert_eq!(s.phase, Some(Phase::Waiting));
        assert_eq!((cond(&s, "Ready").status.as_str(), cond(&s, "Ready").reason.as_str()), ("False", "ApplyFailed"));
        assert_eq!(cond(&s, "Reconciling").status, "True");
        assert_eq!(cond(&s, "Stalled").status, "False", "GitOps tools must keep waiting, not fail");
        assert_eq!(
            s.message.as_deref(),
            Some("the API server refused StatefulSet p; retrying; 2 running pod(s) keep the last good configuration")
        );
        assert_eq!(s.config_hash.as_deref(), Some("h"), "nothing new was rolled out");
        // The same refusal again writes nothing: no watch event, so the backoff holds.
        assert_eq!(compute(&ctx(Some(&s), 30), &obs), s);
    }
}
