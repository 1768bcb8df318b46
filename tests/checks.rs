//! The pre-flight checks against real servers (tests/harness/relations.sh): Debian's
//! PostgreSQL 15 with SCRAM and TLS, Redis 7 with an ACL user and TLS, an aiosmtpd SMTP server
//! requiring STARTTLS before AUTH, and moto's S3 verifying every SigV4 signature. Relations are
//! parsed from Secret data by the operator's own parsers, as in the cluster.
//!
//! Without `PENPOT_RELATIONS_ENV` (the servers' env file) the tests say they were skipped; with
//! `PENPOT_E2E_REQUIRED=1` (CI) its absence fails them.

#[path = "e2e/support.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use penpot_operator::checks::{Outcome, Subject, check_all};
use penpot_operator::controller::egress::Egress;
use penpot_operator::crd::{CheckResult, Relation};
use penpot_operator::relations::{self, Relations, SecretData};

fn servers() -> Option<HashMap<String, String>> {
    support::relation_servers()
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

/// What the cluster would have parsed from Secrets holding these pairs.
struct Secrets {
    postgresql: Vec<(&'static str, String)>,
    redis: Vec<(&'static str, String)>,
    s3: Vec<(&'static str, String)>,
    smtp: Vec<(&'static str, String)>,
}

impl Secrets {
    /// Every relation right, each over the protocol Penpot uses by default.
    fn right(s: &HashMap<String, String>) -> Self {
        let v = |k: &str| s[k].clone();
        Secrets {
            postgresql: vec![
                ("host", v("PG_HOST")),
                ("port", v("PG_PORT")),
                ("database", v("PG_DATABASE")),
                ("username", v("PG_USER")),
                ("password", v("PG_PASSWORD")),
            ],
            redis: vec![
                ("hostname", v("REDIS_HOST")),
                ("port", v("REDIS_PORT")),
                ("username", v("REDIS_USER")),
                ("password", v("REDIS_PASSWORD")),
            ],
            s3: vec![
                ("endpoint", v("S3_ENDPOINT")),
                ("bucket", v("S3_BUCKET")),
                ("region", v("S3_REGION")),
                ("access-key", v("S3_ACCESS_KEY")),
                ("secret-key", v("S3_SECRET_KEY")),
            ],
            smtp: vec![
                ("host", v("SMTP_HOST")),
                ("port", v("SMTP_PORT")),
                ("transport_security", "starttls".into()),
                ("user", v("SMTP_USER")),
                ("password", v("SMTP_PASSWORD")),
                ("domain", "example.com".into()),
            ],
        }
    }

    fn set(list: &mut Vec<(&'static str, String)>, key: &'static str, value: &str) {
        list.retain(|(k, _)| *k != key);
        list.push((key, value.to_string()));
    }

    fn relations(&self) -> Relations {
        let parse = |relation, pairs: &[(&'static str, String)]| {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            (relation, data(&pairs))
        };
        let (_, pg) = parse(Relation::Postgresql, &self.postgresql);
        let (_, redis) = parse(Relation::Redis, &self.redis);
        let (_, s3) = parse(Relation::S3, &self.s3);
        let (_, smtp) = parse(Relation::Smtp, &self.smtp);
        Relations {
            postgresql: relations::postgresql::parse(&SecretData::new(Relation::Postgresql, "pg", &pg)).unwrap(),
            redis: relations::redis::parse(&SecretData::new(Relation::Redis, "redis", &redis)).unwrap(),
            s3: Some(relations::s3::parse(&SecretData::new(Relation::S3, "s3", &s3), false).unwrap()),
            smtp: Some(relations::smtp::parse(&SecretData::new(Relation::Smtp, "smtp", &smtp), None).unwrap()),
            oidc: None,
            google: None,
            github: None,
            gitlab: None,
            ldap: None,
        }
    }
}

/// Loopback is fenced off by default; the tests' servers live there.
fn loopback_allowed() -> Arc<Egress> {
    Arc::new(Egress::new(vec![], vec!["127.0.0.1".into(), "localhost".into()]))
}

fn ca(s: &HashMap<String, String>) -> String {
    std::fs::read_to_string(&s["RELATIONS_CA"]).expect("the servers' CA")
}

fn run(secrets: &Secrets, ca_bundle: Option<String>, egress: &Arc<Egress>) -> BTreeMap<Relation, Outcome> {
    let subject = Subject { relations: secrets.relations(), ca_bundle };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcomes = runtime.block_on(check_all(&subject, egress, "test/p"));
    outcomes.into_iter().map(|o| (o.relation, o)).collect()
}

fn assert_result(found: &BTreeMap<Relation, Outcome>, relation: Relation, result: CheckResult, says: &str) {
    let o = &found[&relation];
    assert_eq!(o.result, result, "{relation:?}: {}", o.message);
    assert!(o.message.contains(says), "{relation:?} says {:?}, not {says:?}", o.message);
}

/// No message carries any password or key the relations hold.
fn assert_no_secret(found: &BTreeMap<Relation, Outcome>, s: &HashMap<String, String>, extra: &[&str]) {
    for o in found.values() {
        for key in ["PG_PASSWORD", "REDIS_PASSWORD", "REDIS_DEFAULT_PASSWORD", "S3_SECRET_KEY", "SMTP_PASSWORD"] {
            assert!(!o.message.contains(&s[key]), "{:?} shows {key}: {}", o.relation, o.message);
        }
        for value in extra {
            assert!(!o.message.contains(value), "{:?} shows a secret: {}", o.relation, o.message);
        }
    }
}

#[test]
fn right_credentials_pass_every_check() {
    let Some(s) = servers() else { return };
    rustls_provider();
    let found = run(&Secrets::right(&s), Some(ca(&s)), &loopback_allowed());
    assert_result(&found, Relation::Postgresql, CheckResult::Passed, "logged in to database penpot as penpot");
    assert_result(&found, Relation::Redis, CheckResult::Passed, "authenticated as penpot");
    assert_result(&found, Relation::S3, CheckResult::Passed, "bucket penpot answered a signed HeadBucket");
    assert_result(
        &found,
        Relation::Smtp,
        CheckResult::Passed,
        "logged in as penpot; sender penpot@example.com accepted",
    );
    assert_no_secret(&found, &s, &[]);
}

#[test]
fn wrong_credentials_fail_with_the_servers_words_and_no_secret() {
    let Some(s) = servers() else { return };
    rustls_provider();
    let mut secrets = Secrets::right(&s);
    let wrong = "relpw-wrong-8d1f0c";
    Secrets::set(&mut secrets.postgresql, "password", wrong);
    Secrets::set(&mut secrets.redis, "password", wrong);
    Secrets::set(&mut secrets.s3, "secret-key", wrong);
    Secrets::set(&mut secrets.smtp, "password", wrong);
    let found = run(&secrets, Some(ca(&s)), &loopback_allowed());
    assert_result(
        &found,
        Relation::Postgresql,
        CheckResult::Failed,
        "password authentication failed for user \"penpot\" (SQLSTATE 28P01)",
    );
    assert_result(&found, Relation::Redis, CheckResult::Failed, "AUTH refused: WRONGPASS");
    assert_result(&found, Relation::S3, CheckResult::Failed, "403 Forbidden");
    assert_result(&found, Relation::Smtp, CheckResult::Failed, "AUTH PLAIN: the server answered 535");
    assert_no_secret(&found, &s, &[wrong]);
}

/// Penpot authenticates whenever a user is set, password or not; so does the check. And a
/// relay that wants a login refuses the sender without one.
#[test]
fn an_smtp_user_without_a_password_is_tried_as_penpot_would() {
    let Some(s) = servers() else { return };
    rustls_provider();
    let mut secrets = Secrets::right(&s);
    secrets.smtp.retain(|(k, _)| *k != "password");
    let found = run(&secrets, Some(ca(&s)), &loopback_allowed());
    assert_result(&found, Relation::Smtp, CheckResult::Failed, "AUTH PLAIN: the server answered 535");
    secrets.smtp.retain(|(k, _)| *k != "user");
    let found = run(&secrets, Some(ca(&s)), &loopback_allowed());
    // Without any login this server refuses the sender, as it would refuse Penpot's mail.
    assert_result(&found, Relation::Smtp, CheckResult::Failed, "MAIL FROM: the server answered 530");
}

#[test]
fn a_missing_database_or_bucket_is_named() {
    let Some(s) = servers() else { return };
    rustls_provider();
    let mut secrets = Secrets::right(&s);
    Secrets::set(&mut secrets.postgresql, "database", "nope");
    Secrets::set(&mut secrets.s3, "bucket", "no-such-bucket");
    let found = run(&secrets, Some(ca(&s)), &loopback_allowed());
    assert_result(&found, Relation::Postgresql, CheckResult::Failed, "database \"nope\" does not exist");
    assert_result(&found, Relation::S3, CheckResult::Failed, "bucket no-such-bucket does not exist");
}

/// Verified TLS trusts what the workload trusts: the public roots, plus `spec.caBundle`.
#[test]
fn tls_is_verified_against_the_ca_bundle() {
    let Some(s) = servers() else { return };
    rustls_provider();
    let mut secrets = Secrets::right(&s);
    let uri = format!("postgresql://localhost:{}/penpot?sslmode=verify-full", s["PG_PORT"]);
    secrets.postgresql.retain(|(k, _)| !["host", "port", "database"].contains(k));
    secrets.postgresql.push(("uri", uri));
    Secrets::set(&mut secrets.redis, "port", &s["REDIS_TLS_PORT"]);
    Secrets::set(&mut secrets.redis, "tls", "true");
    Secrets::set(&mut secrets.smtp, "port", &s["SMTPS_PORT"]);
    Secrets::set(&mut secrets.smtp, "transport_security", "tls");

    let trusted = run(&secrets, Some(ca(&s)), &loopback_allowed());
    assert_result(&trusted, Relation::Postgresql, CheckResult::Passed, "logged in");
    assert_result(&trusted, Relation::Redis, CheckResult::Passed, "authenticated as penpot");
    assert_result(&trusted, Relation::Smtp, CheckResult::Passed, "logged in as penpot");

    let untrusted = run(&secrets, None, &loopback_allowed());
    for relation in [Relation::Postgresql, Relation::Redis, Relation::Smtp] {
        assert_result(&untrusted, relation, CheckResult::Failed, "not signed by a CA the workload trusts");
    }
    // verify-ca checks the chain too (its name is forgiven, which this server's certificate
    // cannot show: it names every address the test can reach it at).
    let mut chain_only = Secrets::right(&s);
    chain_only.postgresql.retain(|(k, _)| !["host", "port", "database"].contains(k));
    chain_only.postgresql.push(("uri", format!("postgresql://127.0.0.1:{}/penpot?sslmode=verify-ca", s["PG_PORT"])));
    assert_result(
        &run(&chain_only, Some(ca(&s)), &loopback_allowed()),
        Relation::Postgresql,
        CheckResult::Passed,
        "logged in",
    );
    assert_result(
        &run(&chain_only, None, &loopback_allowed()),
        Relation::Postgresql,
        CheckResult::Failed,
        "not signed by a CA",
    );
}

/// Loopback stands for what the operator must not be made to reach (its own ports, a node
/// agent); nothing is reported of such a server but the fence. A port with no server, or one
/// speaking another protocol, reads the same in status: status must not map open ports.
#[test]
fn the_egress_fence_holds_and_unreachable_servers_tell_nothing_of_the_port() {
    let Some(s) = servers() else { return };
    rustls_provider();
    let fenced = run(&Secrets::right(&s), Some(ca(&s)), &Arc::new(Egress::default()));
    for relation in [Relation::Postgresql, Relation::Redis, Relation::Smtp] {
        assert_result(
            &fenced,
            relation,
            CheckResult::Failed,
            "the operator does not connect there: a loopback address",
        );
    }
    assert_result(
        &fenced,
        Relation::S3,
        CheckResult::Failed,
        "the operator does not connect there: a loopback address",
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let mut secrets = Secrets::right(&s);
    Secrets::set(&mut secrets.postgresql, "port", &closed_port);
    // Redis spoken to the SMTP server.
    Secrets::set(&mut secrets.redis, "port", &s["SMTP_PORT"]);
    // Implicit TLS spoken to a plaintext port: no TLS error tells the port is open.
    Secrets::set(&mut secrets.smtp, "port", &s["REDIS_PORT"]);
    Secrets::set(&mut secrets.smtp, "transport_security", "tls");
    let found = run(&secrets, Some(ca(&s)), &loopback_allowed());
    let coarse = "or it is not the server expected (the operator's log says why)";
    for relation in [Relation::Postgresql, Relation::Redis, Relation::Smtp] {
        assert_result(&found, relation, CheckResult::Failed, coarse);
    }
}

fn rustls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
