//! Table-driven tests of every relation parser: each accepted key style, and each kind of bad
//! input, whose error must name the relation, the Secret and the key but never the value.

use std::collections::BTreeMap;

use penpot_operator::crd::{PenpotSpec, PostgresqlRelation, Relation, RelationRef, SecretRef, SmtpRelation};
use penpot_operator::relations::oidc::{Endpoints, Oidc};
use penpot_operator::relations::postgresql::Postgresql;
use penpot_operator::relations::redis::Redis;
use penpot_operator::relations::s3::S3;
use penpot_operator::relations::smtp::{Smtp, TransportSecurity};
use penpot_operator::relations::{
    Found, RelationError, Resolution, SecretData, oidc, postgresql, redis, resolve, s3, smtp,
};

/// Name of the Secret every case reads from.
const SECRET: &str = "rel-secret";
/// A value that stands for a secret: it must never show up in an error message.
const MARK: &str = "hunter2";

type Data = BTreeMap<String, Vec<u8>>;

/// Secret data from text pairs.
fn d(pairs: &[(&str, &str)]) -> Data {
    pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

/// `data` with `key` set to raw bytes (or removed when `None`).
fn with(mut data: Data, key: &str, value: Option<&[u8]>) -> Data {
    match value {
        Some(v) => data.insert(key.to_string(), v.to_vec()),
        None => data.remove(key),
    };
    data
}

fn parse_pg(data: &Data) -> Result<Postgresql, RelationError> {
    postgresql::parse(&SecretData::new(Relation::Postgresql, SECRET, data))
}

fn parse_redis(data: &Data) -> Result<Redis, RelationError> {
    redis::parse(&SecretData::new(Relation::Redis, SECRET, data))
}

fn parse_s3(data: &Data) -> Result<S3, RelationError> {
    s3::parse(&SecretData::new(Relation::S3, SECRET, data), false)
}

fn parse_smtp(data: &Data) -> Result<Smtp, RelationError> {
    smtp::parse(&SecretData::new(Relation::Smtp, SECRET, data), None)
}

fn parse_oidc(data: &Data) -> Result<Oidc, RelationError> {
    oidc::parse(&SecretData::new(Relation::Oidc, SECRET, data))
}

/// Words that appear in problem texts and so may legitimately equal a (harmless) value.
const VOCABULARY: &[&str] = &["none", "tls", "starttls", "path", "virtual", "true", "false", "plain"];

/// Checks one error: its fields, its exact Display format, the problem text, and that no value
/// from the Secret leaks into it.
fn check_error(case: &str, relation: Relation, data: &Data, err: &RelationError, key: &str, problem: &str) {
    let msg = err.to_string();
    assert_eq!(err.relation, relation, "{case}: wrong relation in {msg:?}");
    assert_eq!(err.secret, SECRET, "{case}: wrong Secret in {msg:?}");
    assert_eq!(err.key, key, "{case}: wrong key in {msg:?}");
    let prefix = format!("{} relation: Secret \"{SECRET}\" key \"{key}\" ", relation.name());
    assert!(msg.starts_with(&prefix), "{case}: {msg:?} does not start with {prefix:?}");
    assert_eq!(msg, format!("{prefix}{}", err.problem), "{case}: Display format");
    assert!(err.problem.contains(problem), "{case}: {msg:?} does not mention {problem:?}");
    assert!(!msg.contains(MARK), "{case}: {msg:?} leaks a secret value");
    for (k, v) in data {
        let value = String::from_utf8_lossy(v);
        let value = value.trim();
        if value.len() < 4 || VOCABULARY.contains(&value) {
            continue;
        }
        assert!(!msg.contains(value), "{case}: {msg:?} leaks the value of key {k:?}");
        for line in value.lines().map(str::trim).filter(|l| l.len() >= 4) {
            assert!(!msg.contains(line), "{case}: {msg:?} leaks part of the value of key {k:?}");
        }
    }
}

/// One bad-input case: the data, the key the error must name and a part of its problem text.
struct Bad {
    case: &'static str,
    data: Data,
    key: &'static str,
    problem: &'static str,
}

fn bad(case: &'static str, data: Data, key: &'static str, problem: &'static str) -> Bad {
    Bad { case, data, key, problem }
}

fn run_bad<T: std::fmt::Debug>(relation: Relation, parse: impl Fn(&Data) -> Result<T, RelationError>, cases: Vec<Bad>) {
    assert!(!cases.is_empty());
    for c in cases {
        match parse(&c.data) {
            Ok(v) => panic!("{}: accepted, gave {v:?}", c.case),
            Err(e) => check_error(c.case, relation, &c.data, &e, c.key, c.problem),
        }
    }
}

/// Bad values any key can carry, applied to `key` of otherwise good `base` data:
/// non-UTF-8 bytes, a line break inside, more than 4096 bytes, a control character.
fn value_cases(base: &Data, key: &'static str) -> Vec<Bad> {
    let mut non_utf8 = MARK.as_bytes().to_vec();
    non_utf8.extend([0xff, 0xfe, 0x80]);
    let long = MARK.repeat(600);
    assert!(long.len() > 4096);
    vec![
        bad("non-UTF-8 bytes", with(base.clone(), key, Some(&non_utf8)), key, "is not valid UTF-8"),
        bad("line break inside", with(base.clone(), key, Some(b"hunter2\nhunter2")), key, "control characters"),
        bad("carriage return inside", with(base.clone(), key, Some(b"hunter2\rx")), key, "control characters"),
        bad("NUL inside", with(base.clone(), key, Some(b"hunter2\0x")), key, "control characters"),
        bad("over 4096 bytes", with(base.clone(), key, Some(long.as_bytes())), key, "longer than 4096 bytes"),
    ]
}

/// Hosts that must never reach a URI authority.
const BAD_HOSTS: &[(&str, &str)] = &[
    ("space", "hunter2 host"),
    ("at sign", "hunter2@host"),
    ("hash", "hunter2#host"),
    ("slash", "hunter2/host"),
    ("percent", "hunter2%41"),
    ("backslash", "hunter2\\host"),
    ("question mark", "hunter2?x"),
];

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

fn pg_juju() -> Data {
    d(&[
        ("endpoints", "postgresql-endpoint:5432"),
        ("database", "penpot"),
        ("username", "postgresql-username"),
        ("password", "postgresql-password"),
    ])
}

fn pg_cnpg() -> Data {
    d(&[("host", "penpot-db-rw"), ("port", "5432"), ("dbname", "app"), ("user", "app"), ("password", "cnpg-pw")])
}

#[test]
fn postgresql_accepted_key_styles() {
    let pg = |uri: &str, username: &str, password: &str| Postgresql {
        uri: uri.into(),
        username: username.into(),
        password: password.into(),
    };
    let cases: Vec<(&str, Data, Postgresql)> = vec![
        (
            "juju endpoints",
            pg_juju(),
            pg("postgresql://postgresql-endpoint:5432/penpot", "postgresql-username", "postgresql-password"),
        ),
        (
            "juju endpoints, several: the first is used",
            with(pg_juju(), "endpoints", Some(b"primary.db:5433,replica.db:5434")),
            pg("postgresql://primary.db:5433/penpot", "postgresql-username", "postgresql-password"),
        ),
        (
            "juju endpoints with spaces around the commas",
            with(pg_juju(), "endpoints", Some(b" primary.db:5433 , replica.db:5434 ")),
            pg("postgresql://primary.db:5433/penpot", "postgresql-username", "postgresql-password"),
        ),
        (
            "juju endpoint without port",
            with(pg_juju(), "endpoints", Some(b"postgresql-endpoint")),
            pg("postgresql://postgresql-endpoint:5432/penpot", "postgresql-username", "postgresql-password"),
        ),
        (
            "juju endpoint IPv4",
            with(pg_juju(), "endpoints", Some(b"10.1.2.3:6432")),
            pg("postgresql://10.1.2.3:6432/penpot", "postgresql-username", "postgresql-password"),
        ),
        (
            "juju endpoint IPv6",
            with(pg_juju(), "endpoints", Some(b"[fd00::1]:5432,[fd00::2]:5432")),
            pg("postgresql://[fd00::1]:5432/penpot", "postgresql-username", "postgresql-password"),
        ),
        (
            "values are trimmed (kubectl --from-file newline)",
            with(pg_juju(), "password", Some(b"postgresql-password\n")),
            pg("postgresql://postgresql-endpoint:5432/penpot", "postgresql-username", "postgresql-password"),
        ),
        (
            "juju endpoints with the dbname and user aliases",
            d(&[("endpoints", "db:5432"), ("dbname", "penpot"), ("user", "u"), ("password", "p")]),
            pg("postgresql://db:5432/penpot", "u", "p"),
        ),
        ("cloudnativepg host + port", pg_cnpg(), pg("postgresql://penpot-db-rw:5432/app", "app", "cnpg-pw")),
        (
            "cloudnativepg host, port other than default",
            with(pg_cnpg(), "port", Some(b"6543")),
            pg("postgresql://penpot-db-rw:6543/app", "app", "cnpg-pw"),
        ),
        (
            "cloudnativepg host without port",
            with(pg_cnpg(), "port", None),
            pg("postgresql://penpot-db-rw:5432/app", "app", "cnpg-pw"),
        ),
        (
            "cloudnativepg namespaced host",
            with(pg_cnpg(), "host", Some(b"penpot-db-rw.databases.svc.cluster.local")),
            pg("postgresql://penpot-db-rw.databases.svc.cluster.local:5432/app", "app", "cnpg-pw"),
        ),
        (
            "uri only",
            d(&[("uri", "postgresql://user:pass@host:5432/db?sslmode=require")]),
            pg("postgresql://host:5432/db?sslmode=require", "user", "pass"),
        ),
        (
            "uri with postgres:// scheme and no port",
            d(&[("uri", "postgres://user:pass@db.example.com/penpot")]),
            pg("postgresql://db.example.com:5432/penpot", "user", "pass"),
        ),
        (
            "uri with percent-encoded credentials",
            d(&[("uri", "postgresql://us%40er:p%40ss%3Aw%2Frd@host:5433/db")]),
            pg("postgresql://host:5433/db", "us@er", "p@ss:w/rd"),
        ),
        (
            "uri without credentials plus separate keys",
            d(&[("uri", "postgresql://host:5432/db"), ("username", "u"), ("password", "p")]),
            pg("postgresql://host:5432/db", "u", "p"),
        ),
        (
            "uri credentials lose to separate keys",
            d(&[("uri", "postgresql://user:pass@host:5432/db?sslmode=require"), ("username", "u"), ("password", "p")]),
            pg("postgresql://host:5432/db?sslmode=require", "u", "p"),
        ),
        (
            "uri without database plus database key",
            d(&[("uri", "postgresql://user:pass@host:5432"), ("database", "penpot")]),
            pg("postgresql://host:5432/penpot", "user", "pass"),
        ),
        (
            "cloudnativepg secret with its uri too: host and dbname keys win, uri query kept",
            with(pg_cnpg(), "uri", Some(b"postgresql://app:cnpg-pw@other-host:5432/other?sslmode=require")),
            pg("postgresql://penpot-db-rw:5432/app?sslmode=require", "app", "cnpg-pw"),
        ),
        (
            "juju endpoints win over uri host",
            with(pg_juju(), "uri", Some(b"postgresql://x:y@other-host:1111/other")),
            pg("postgresql://postgresql-endpoint:5432/penpot", "postgresql-username", "postgresql-password"),
        ),
        (
            "unknown keys are ignored",
            with(pg_juju(), "version", Some(b"14.11")),
            pg("postgresql://postgresql-endpoint:5432/penpot", "postgresql-username", "postgresql-password"),
        ),
    ];
    for (case, data, want) in cases {
        match parse_pg(&data) {
            Ok(got) => assert_eq!(got, want, "{case}"),
            Err(e) => panic!("{case}: rejected: {e}"),
        }
    }
}

#[test]
fn postgresql_bad_input() {
    let mut cases = vec![
        bad("no host at all", with(pg_juju(), "endpoints", None), "endpoints", "is missing or empty"),
        bad("empty endpoints", with(pg_juju(), "endpoints", Some(b"")), "endpoints", "is missing or empty"),
        bad("blank endpoints", with(pg_juju(), "endpoints", Some(b"  \n")), "endpoints", "is missing or empty"),
        bad("missing database", with(pg_juju(), "database", None), "database", "is missing or empty"),
        bad("empty database", with(pg_juju(), "database", Some(b"")), "database", "is missing or empty"),
        bad("missing username", with(pg_juju(), "username", None), "username", "is missing or empty"),
        bad("missing password", with(pg_juju(), "password", None), "password", "is missing or empty"),
        bad("empty password", with(pg_juju(), "password", Some(b" ")), "password", "is missing or empty"),
        bad("cnpg missing user", with(pg_cnpg(), "user", None), "username", "is missing or empty"),
        bad("cnpg missing dbname", with(pg_cnpg(), "dbname", None), "database", "is missing or empty"),
        bad("endpoints non-numeric port", with(pg_juju(), "endpoints", Some(b"db:abc")), "endpoints", "port number"),
        bad("endpoints port 0", with(pg_juju(), "endpoints", Some(b"db:0")), "endpoints", "port number"),
        bad("endpoints port 65536", with(pg_juju(), "endpoints", Some(b"db:65536")), "endpoints", "port number"),
        bad("endpoints negative port", with(pg_juju(), "endpoints", Some(b"db:-1")), "endpoints", "port number"),
        bad("endpoints empty host", with(pg_juju(), "endpoints", Some(b":5432")), "endpoints", "empty host"),
        bad("endpoints unclosed IPv6", with(pg_juju(), "endpoints", Some(b"[::1:5432")), "endpoints", "']'"),
        bad("port non-numeric", with(pg_cnpg(), "port", Some(b"hunter2")), "port", "port number"),
        bad("port 0", with(pg_cnpg(), "port", Some(b"0")), "port", "port number"),
        bad("port 65536", with(pg_cnpg(), "port", Some(b"65536")), "port", "port number"),
        bad("unparseable uri", d(&[("uri", "hunter2 not a uri")]), "uri", "is not a valid URI"),
        bad("unparseable uri next to endpoints", with(pg_juju(), "uri", Some(b"::hunter2")), "uri", "not a valid URI"),
        bad("uri wrong scheme", d(&[("uri", "mysql://u:hunter2@host:3306/db")]), "uri", "postgresql://"),
        bad("uri http scheme", d(&[("uri", "http://u:hunter2@host/db")]), "uri", "postgresql://"),
        bad("uri with fragment", d(&[("uri", "postgresql://u:hunter2@host/db#x")]), "uri", "#fragment"),
        bad("uri without host", d(&[("uri", "postgresql:///db?user=x")]), "uri", "host"),
        bad(
            "uri with a JDBC option that loads a class",
            d(&[("uri", "postgresql://u:hunter2@host/db?sslmode=require&socketFactory=evil.Factory")]),
            "uri",
            "query option \"socketFactory\", which is not allowed",
        ),
        bad("uri bad database", d(&[("uri", "postgresql://u:hunter2@host/a%20b")]), "uri", "database name"),
        bad("uri without password", d(&[("uri", "postgresql://user@host/db")]), "password", "is missing or empty"),
        bad("uri without database", d(&[("uri", "postgresql://u:hunter2@host")]), "database", "is missing or empty"),
        bad("uri without user", d(&[("uri", "postgresql://host/db"), ("password", "hunter2")]), "username", "missing"),
        bad("database with slash", with(pg_juju(), "database", Some(b"pen/pot")), "database", "database name"),
        bad("database with space", with(pg_juju(), "database", Some(b"pen pot")), "database", "database name"),
        bad("dbname with quote", with(pg_cnpg(), "dbname", Some(b"app'")), "dbname", "database name"),
    ];
    for (_, host) in BAD_HOSTS {
        let endpoint = format!("{host}:5432");
        cases.push(bad(
            "bad host in endpoints",
            with(pg_juju(), "endpoints", Some(endpoint.as_bytes())),
            "endpoints",
            "",
        ));
        cases.push(bad("bad host in host", with(pg_cnpg(), "host", Some(host.as_bytes())), "host", ""));
    }
    for key in ["endpoints", "database", "username", "password", "uri"] {
        cases.extend(value_cases(&pg_juju(), key));
    }
    for key in ["host", "port", "dbname", "user"] {
        cases.extend(value_cases(&pg_cnpg(), key));
    }
    run_bad(Relation::Postgresql, parse_pg, cases);
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

fn redis_juju() -> Data {
    d(&[("hostname", "redis-hostname"), ("port", "6379")])
}

#[test]
fn redis_accepted_key_styles() {
    let cases: Vec<(&str, Data, &str)> = vec![
        ("juju hostname + port", redis_juju(), "redis://redis-hostname:6379"),
        ("hostname, other port", with(redis_juju(), "port", Some(b"6380")), "redis://redis-hostname:6380"),
        ("hostname without port", d(&[("hostname", "redis-hostname")]), "redis://redis-hostname:6379"),
        ("host key", d(&[("host", "valkey.cache.svc")]), "redis://valkey.cache.svc:6379"),
        ("host key with port key", d(&[("host", "valkey"), ("port", "7000")]), "redis://valkey:7000"),
        ("host:port in the host key", d(&[("host", "valkey:6381")]), "redis://valkey:6381"),
        ("port key wins over inline port", d(&[("host", "valkey:6381"), ("port", "6382")]), "redis://valkey:6382"),
        ("IPv4 host", d(&[("hostname", "10.0.0.7")]), "redis://10.0.0.7:6379"),
        ("IPv6 host", d(&[("hostname", "[fd00::7]")]), "redis://[fd00::7]:6379"),
        ("password", with(redis_juju(), "password", Some(b"secret")), "redis://:secret@redis-hostname:6379"),
        (
            "password percent-encoded",
            d(&[("hostname", "host"), ("password", "p@ss:w/rd")]),
            "redis://:p%40ss%3Aw%2Frd@host:6379",
        ),
        (
            "username and password",
            d(&[("hostname", "host"), ("username", "default"), ("password", "pw")]),
            "redis://default:pw@host:6379",
        ),
        ("username only", d(&[("hostname", "host"), ("username", "us er")]), "redis://us%20er@host:6379"),
        ("tls flag", with(redis_juju(), "tls", Some(b"true")), "rediss://redis-hostname:6379"),
        ("tls flag, any case", with(redis_juju(), "tls", Some(b"TRUE")), "rediss://redis-hostname:6379"),
        ("tls flag false", with(redis_juju(), "tls", Some(b"false")), "redis://redis-hostname:6379"),
        ("hostname wins over uri", with(redis_juju(), "uri", Some(b"redis://other:1")), "redis://redis-hostname:6379"),
        ("uri", d(&[("uri", "redis://valkey:6379")]), "redis://valkey:6379"),
        ("uri with password and db", d(&[("uri", "redis://:pw@valkey:6379/2")]), "redis://:pw@valkey:6379/2"),
        ("uri rediss", d(&[("uri", "rediss://valkey.example.com:6380")]), "rediss://valkey.example.com:6380"),
        ("url key", d(&[("url", "redis://valkey:6379")]), "redis://valkey:6379"),
        ("url key rediss", d(&[("url", "rediss://u:p@valkey:6380/0")]), "rediss://u:p@valkey:6380/0"),
    ];
    for (case, data, want) in cases {
        match parse_redis(&data) {
            Ok(got) => assert_eq!(got, Redis { uri: want.into() }, "{case}"),
            Err(e) => panic!("{case}: rejected: {e}"),
        }
    }
}

#[test]
fn redis_bad_input() {
    let mut cases = vec![
        bad("nothing", d(&[("port", "6379")]), "hostname", "is missing or empty (also accepted: host, uri, url)"),
        bad("empty hostname", d(&[("hostname", "")]), "hostname", "is missing or empty"),
        bad("non-numeric port", with(redis_juju(), "port", Some(b"hunter2")), "port", "port number"),
        bad("port 0", with(redis_juju(), "port", Some(b"0")), "port", "port number"),
        bad("port 65536", with(redis_juju(), "port", Some(b"65536")), "port", "port number"),
        bad("inline port 0", d(&[("host", "valkey:0")]), "host", "port number"),
        bad("inline port 65536", d(&[("host", "valkey:65536")]), "host", "port number"),
        bad("inline port non-numeric", d(&[("hostname", "valkey:x")]), "hostname", "port number"),
        bad("tls not a boolean", with(redis_juju(), "tls", Some(b"hunter2")), "tls", "must be true or false"),
        bad("unparseable uri", d(&[("uri", "hunter2 is not a uri")]), "uri", "is not a valid URI"),
        bad("unparseable url", d(&[("url", "::hunter2")]), "url", "is not a valid URI"),
        bad("uri wrong scheme", d(&[("uri", "http://:hunter2@valkey:6379")]), "uri", "redis://"),
        bad("url wrong scheme", d(&[("url", "valkey://:hunter2@valkey:6379")]), "url", "redis://"),
        bad("uri port 65536", d(&[("uri", "redis://:hunter2@valkey:65536")]), "uri", "not a valid URI"),
        bad("uri with query", d(&[("uri", "redis://:hunter2@valkey:6379?x=1")]), "uri", "query"),
        bad("uri with fragment", d(&[("uri", "redis://:hunter2@valkey:6379#x")]), "uri", "fragment"),
        bad("uri with a path", d(&[("uri", "redis://:hunter2@valkey:6379/db")]), "uri", "database number"),
        bad("uri without host", d(&[("uri", "redis:///0")]), "uri", "host"),
    ];
    for (_, host) in BAD_HOSTS {
        cases.push(bad("bad hostname", with(redis_juju(), "hostname", Some(host.as_bytes())), "hostname", ""));
        cases.push(bad("bad host", d(&[("host", host)]), "host", ""));
    }
    for key in ["hostname", "port", "password", "username", "tls"] {
        let base = with(with(redis_juju(), "password", Some(b"pw-value")), "username", Some(b"user-value"));
        cases.extend(value_cases(&base, key));
    }
    cases.extend(value_cases(&d(&[("uri", "redis://valkey:6379")]), "uri"));
    cases.extend(value_cases(&d(&[("url", "redis://valkey:6379")]), "url"));
    run_bad(Relation::Redis, parse_redis, cases);
}

// ---------------------------------------------------------------------------------------------
// S3
// ---------------------------------------------------------------------------------------------

fn s3_juju() -> Data {
    d(&[
        ("access-key", "s3-access-key"),
        ("secret-key", "s3-secret-key"),
        ("bucket", "penpot"),
        ("endpoint", "s3-endpoint"),
    ])
}

fn s3_obc() -> Data {
    d(&[
        ("AWS_ACCESS_KEY_ID", "obc-access-key"),
        ("AWS_SECRET_ACCESS_KEY", "obc-secret-key"),
        ("BUCKET_NAME", "penpot-7f3a"),
        ("BUCKET_HOST", "rook-ceph-rgw-store.rook-ceph.svc"),
        ("BUCKET_PORT", "8080"),
        ("BUCKET_REGION", "eu-central-1"),
    ])
}

fn s3_settings(access: &str, secret: &str, bucket: &str, endpoint: Option<&str>, region: &str) -> S3 {
    S3 {
        keys: Some(s3::Keys { access_key: access.into(), secret_key: secret.into() }),
        bucket: bucket.into(),
        endpoint: endpoint.map(Into::into),
        region: region.into(),
    }
}

/// With a cloud identity (`spec.serviceAccount`) the key pair may be left out; half a pair is
/// refused either way, naming the missing half; without identity both are required.
#[test]
fn s3_keys_are_optional_only_with_an_identity() {
    let bucket_only = d(&[("bucket", "penpot"), ("region", "eu-west-1")]);
    let with_identity = s3::parse(&SecretData::new(Relation::S3, SECRET, &bucket_only), true).expect("identity");
    assert_eq!(with_identity.keys, None);
    assert_eq!(with_identity.bucket, "penpot");
    let e = parse_s3(&bucket_only).unwrap_err();
    assert_eq!(e.key, "access-key", "{e}");
    let half = d(&[("bucket", "penpot"), ("access-key", "a")]);
    let e = s3::parse(&SecretData::new(Relation::S3, SECRET, &half), true).unwrap_err();
    assert_eq!(e.key, "secret-key", "{e}");
    let other_half = d(&[("bucket", "penpot"), ("AWS_SECRET_ACCESS_KEY", "s")]);
    let e = s3::parse(&SecretData::new(Relation::S3, SECRET, &other_half), true).unwrap_err();
    assert_eq!(e.key, "access-key", "{e}");
    assert!(!e.to_string().contains("\"s\""), "no value in the error: {e}");
}

#[test]
fn s3_accepted_key_styles() {
    let juju = |endpoint: Option<&str>, region: &str| {
        s3_settings("s3-access-key", "s3-secret-key", "penpot", endpoint, region)
    };
    let obc = |endpoint: Option<&str>, region: &str| {
        s3_settings("obc-access-key", "obc-secret-key", "penpot-7f3a", endpoint, region)
    };
    let rook = "rook-ceph-rgw-store.rook-ceph.svc";
    let cases: Vec<(&str, Data, S3)> = vec![
        (
            "juju keys, bare endpoint host gets https://, region defaults",
            s3_juju(),
            juju(Some("https://s3-endpoint"), "us-east-1"),
        ),
        (
            "juju endpoint with scheme and port",
            with(s3_juju(), "endpoint", Some(b"http://minio.storage.svc:9000")),
            juju(Some("http://minio.storage.svc:9000"), "us-east-1"),
        ),
        (
            "juju endpoint trailing slash dropped",
            with(s3_juju(), "endpoint", Some(b"https://s3.example.com/")),
            juju(Some("https://s3.example.com"), "us-east-1"),
        ),
        (
            "juju bare endpoint host:port",
            with(s3_juju(), "endpoint", Some(b"s3.example.com:9000")),
            juju(Some("https://s3.example.com:9000"), "us-east-1"),
        ),
        ("juju without endpoint: AWS", with(s3_juju(), "endpoint", None), juju(None, "us-east-1")),
        ("juju region", with(s3_juju(), "region", Some(b"eu-west-1")), juju(Some("https://s3-endpoint"), "eu-west-1")),
        (
            "juju s3-uri-style path with endpoint",
            with(s3_juju(), "s3-uri-style", Some(b"path")),
            juju(Some("https://s3-endpoint"), "us-east-1"),
        ),
        (
            "juju s3-uri-style virtual without endpoint",
            with(with(s3_juju(), "endpoint", None), "s3-uri-style", Some(b"virtual")),
            juju(None, "us-east-1"),
        ),
        (
            "juju path / is the bucket root",
            with(s3_juju(), "path", Some(b"/")),
            juju(Some("https://s3-endpoint"), "us-east-1"),
        ),
        (
            "juju unknown keys ignored",
            with(s3_juju(), "tls-ca-chain", Some(b"-----BEGIN CERTIFICATE-----")),
            juju(Some("https://s3-endpoint"), "us-east-1"),
        ),
        ("obc keys, plain http off 443", s3_obc(), obc(Some(&format!("http://{rook}:8080")), "eu-central-1")),
        (
            "obc port 443 is https",
            with(s3_obc(), "BUCKET_PORT", Some(b"443")),
            obc(Some(&format!("https://{rook}")), "eu-central-1"),
        ),
        (
            "obc without port is https",
            with(s3_obc(), "BUCKET_PORT", None),
            obc(Some(&format!("https://{rook}")), "eu-central-1"),
        ),
        (
            "obc port 80",
            with(s3_obc(), "BUCKET_PORT", Some(b"80")),
            obc(Some(&format!("http://{rook}")), "eu-central-1"),
        ),
        (
            "obc empty region defaults",
            with(s3_obc(), "BUCKET_REGION", Some(b"")),
            obc(Some(&format!("http://{rook}:8080")), "us-east-1"),
        ),
        (
            "obc without host: AWS",
            with(with(s3_obc(), "BUCKET_HOST", None), "BUCKET_PORT", None),
            obc(None, "eu-central-1"),
        ),
        (
            "juju keys win over obc keys",
            s3_juju().into_iter().chain(s3_obc()).collect(),
            s3_settings("s3-access-key", "s3-secret-key", "penpot", Some("https://s3-endpoint"), "eu-central-1"),
        ),
    ];
    for (case, data, want) in cases {
        match parse_s3(&data) {
            Ok(got) => assert_eq!(got, want, "{case}"),
            Err(e) => panic!("{case}: rejected: {e}"),
        }
    }
}

#[test]
fn s3_bad_input() {
    let mut cases = vec![
        bad(
            "missing access-key",
            with(s3_juju(), "access-key", None),
            "access-key",
            "also accepted: AWS_ACCESS_KEY_ID",
        ),
        bad("empty access-key", with(s3_juju(), "access-key", Some(b"")), "access-key", "is missing or empty"),
        bad("missing secret-key", with(s3_juju(), "secret-key", None), "secret-key", "AWS_SECRET_ACCESS_KEY"),
        bad("missing bucket", with(s3_juju(), "bucket", None), "bucket", "also accepted: BUCKET_NAME"),
        bad("obc missing secret", with(s3_obc(), "AWS_SECRET_ACCESS_KEY", None), "secret-key", "missing"),
        bad("bucket with slash", with(s3_juju(), "bucket", Some(b"pen/pot")), "bucket", "bucket name"),
        bad("bucket with space", with(s3_juju(), "bucket", Some(b"pen pot")), "bucket", "bucket name"),
        bad("obc bucket with colon", with(s3_obc(), "BUCKET_NAME", Some(b"a:b")), "BUCKET_NAME", "bucket name"),
        bad("region with space", with(s3_juju(), "region", Some(b"us east 1")), "region", "region name"),
        bad("obc region with slash", with(s3_obc(), "BUCKET_REGION", Some(b"eu/1")), "BUCKET_REGION", "region name"),
        bad("endpoint wrong scheme", with(s3_juju(), "endpoint", Some(b"ftp://hunter2.example")), "endpoint", "http"),
        bad("endpoint unparseable", with(s3_juju(), "endpoint", Some(b"http://")), "endpoint", "not a valid URL"),
        bad(
            "endpoint with credentials",
            with(s3_juju(), "endpoint", Some(b"https://key:hunter2@s3.example.com")),
            "endpoint",
            "credentials",
        ),
        bad(
            "endpoint with query",
            with(s3_juju(), "endpoint", Some(b"https://s3.example.com/?x=1")),
            "endpoint",
            "query",
        ),
        bad("endpoint port 0", with(s3_juju(), "endpoint", Some(b"https://s3:0")), "endpoint", ""),
        bad("endpoint port 65536", with(s3_juju(), "endpoint", Some(b"s3:65536")), "endpoint", "not a valid URL"),
        bad(
            "endpoint with a path",
            with(s3_juju(), "endpoint", Some(b"https://s3.example.com/hunter2")),
            "endpoint",
            "path",
        ),
        bad("endpoint with backslash", with(s3_juju(), "endpoint", Some(b"https://s3\\hunter2")), "endpoint", ""),
        bad("obc port non-numeric", with(s3_obc(), "BUCKET_PORT", Some(b"http")), "BUCKET_PORT", "port number"),
        bad("obc port 0", with(s3_obc(), "BUCKET_PORT", Some(b"0")), "BUCKET_PORT", "port number"),
        bad("obc port 65536", with(s3_obc(), "BUCKET_PORT", Some(b"65536")), "BUCKET_PORT", "port number"),
        bad(
            "s3-uri-style virtual with endpoint",
            with(s3_juju(), "s3-uri-style", Some(b"virtual")),
            "s3-uri-style",
            "path-style",
        ),
        bad(
            "s3-uri-style unknown",
            with(s3_juju(), "s3-uri-style", Some(b"hunter2")),
            "s3-uri-style",
            "path or virtual",
        ),
        bad("path prefix", with(s3_juju(), "path", Some(b"/hunter2")), "path", "no prefix setting"),
    ];
    for (_, host) in BAD_HOSTS {
        cases.push(bad("bad endpoint host", with(s3_juju(), "endpoint", Some(host.as_bytes())), "endpoint", ""));
        cases.push(bad("bad obc host", with(s3_obc(), "BUCKET_HOST", Some(host.as_bytes())), "BUCKET_HOST", ""));
    }
    for key in ["access-key", "secret-key", "bucket", "endpoint", "region", "s3-uri-style", "path"] {
        cases.extend(value_cases(&s3_juju(), key));
    }
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BUCKET_NAME", "BUCKET_HOST", "BUCKET_PORT"] {
        cases.extend(value_cases(&s3_obc(), key));
    }
    run_bad(Relation::S3, parse_s3, cases);
}

// ---------------------------------------------------------------------------------------------
// SMTP
// ---------------------------------------------------------------------------------------------

fn smtp_fixture() -> Data {
    d(&[
        ("host", "smtp-host"),
        ("port", "1025"),
        ("domain", "example.com"),
        ("auth_type", "none"),
        ("transport_security", "none"),
    ])
}

fn smtp_auth() -> Data {
    d(&[
        ("host", "smtp.example.com"),
        ("port", "587"),
        ("user", "smtp-user"),
        ("password", "smtp-password"),
        ("auth_type", "plain"),
        ("transport_security", "starttls"),
        ("domain", "example.com"),
    ])
}

#[test]
fn smtp_accepted_key_styles() {
    let want = |host: &str, port: u16, user: Option<&str>, pw: Option<&str>, security, from: &str| Smtp {
        host: host.into(),
        port,
        username: user.map(Into::into),
        password: pw.map(Into::into),
        security,
        from: from.into(),
    };
    use TransportSecurity::{None as Plain, StartTls, Tls};
    let cases: Vec<(&str, Data, Option<&str>, Smtp)> = vec![
        ("charm fixture", smtp_fixture(), None, want("smtp-host", 1025, None, None, Plain, "no-reply@example.com")),
        (
            "no auth_type, no transport_security",
            d(&[("host", "smtp-host"), ("port", "1025"), ("domain", "example.com")]),
            None,
            want("smtp-host", 1025, None, None, Plain, "no-reply@example.com"),
        ),
        (
            "user + password, starttls",
            smtp_auth(),
            None,
            want("smtp.example.com", 587, Some("smtp-user"), Some("smtp-password"), StartTls, "smtp-user@example.com"),
        ),
        (
            "username alias",
            with(with(smtp_auth(), "user", None), "username", Some(b"alias-user")),
            None,
            want(
                "smtp.example.com",
                587,
                Some("alias-user"),
                Some("smtp-password"),
                StartTls,
                "alias-user@example.com",
            ),
        ),
        (
            "user that is an address: sender is no-reply",
            with(smtp_auth(), "user", Some(b"apikey@mailer.example")),
            None,
            want(
                "smtp.example.com",
                587,
                Some("apikey@mailer.example"),
                Some("smtp-password"),
                StartTls,
                "no-reply@example.com",
            ),
        ),
        (
            "auth_type none drops credentials",
            with(smtp_auth(), "auth_type", Some(b"none")),
            None,
            want("smtp.example.com", 587, None, None, StartTls, "smtp-user@example.com"),
        ),
        (
            "auth_type not_provided keeps credentials",
            with(smtp_auth(), "auth_type", Some(b"not_provided")),
            None,
            want("smtp.example.com", 587, Some("smtp-user"), Some("smtp-password"), StartTls, "smtp-user@example.com"),
        ),
        (
            "auth_type login",
            with(smtp_auth(), "auth_type", Some(b"login")),
            None,
            want("smtp.example.com", 587, Some("smtp-user"), Some("smtp-password"), StartTls, "smtp-user@example.com"),
        ),
        (
            "tls",
            with(smtp_auth(), "transport_security", Some(b"tls")),
            None,
            want("smtp.example.com", 587, Some("smtp-user"), Some("smtp-password"), Tls, "smtp-user@example.com"),
        ),
        (
            "default port, none",
            with(smtp_fixture(), "port", None),
            None,
            want("smtp-host", 25, None, None, Plain, "no-reply@example.com"),
        ),
        (
            "default port, starttls",
            with(with(smtp_fixture(), "port", None), "transport_security", Some(b"starttls")),
            None,
            want("smtp-host", 587, None, None, StartTls, "no-reply@example.com"),
        ),
        (
            "default port, tls",
            with(with(smtp_fixture(), "port", None), "transport_security", Some(b"tls")),
            None,
            want("smtp-host", 465, None, None, Tls, "no-reply@example.com"),
        ),
        (
            "from_address override",
            smtp_auth(),
            Some("penpot@corp.example"),
            want("smtp.example.com", 587, Some("smtp-user"), Some("smtp-password"), StartTls, "penpot@corp.example"),
        ),
        (
            "from_address override without domain",
            with(smtp_fixture(), "domain", None),
            Some("test@test.com"),
            want("smtp-host", 1025, None, None, Plain, "test@test.com"),
        ),
        (
            "skip_ssl_verify accepted",
            with(smtp_fixture(), "skip_ssl_verify", Some(b"True")),
            None,
            want("smtp-host", 1025, None, None, Plain, "no-reply@example.com"),
        ),
        (
            "IPv4 host",
            with(smtp_fixture(), "host", Some(b"192.0.2.25")),
            None,
            want("192.0.2.25", 1025, None, None, Plain, "no-reply@example.com"),
        ),
    ];
    for (case, data, from_address, want) in cases {
        match smtp::parse(&SecretData::new(Relation::Smtp, SECRET, &data), from_address) {
            Ok(got) => assert_eq!(got, want, "{case}"),
            Err(e) => panic!("{case}: rejected: {e}"),
        }
    }
}

#[test]
fn smtp_bad_input() {
    let mut cases = vec![
        bad("missing host", with(smtp_fixture(), "host", None), "host", "is missing or empty"),
        bad("empty host", with(smtp_fixture(), "host", Some(b"")), "host", "is missing or empty"),
        bad("missing domain", with(smtp_fixture(), "domain", None), "domain", "spec.smtp.fromAddress"),
        bad("bad domain", with(smtp_fixture(), "domain", Some(b"hunter2 example")), "domain", ""),
        bad("non-numeric port", with(smtp_fixture(), "port", Some(b"hunter2")), "port", "port number"),
        bad("port 0", with(smtp_fixture(), "port", Some(b"0")), "port", "port number"),
        bad("port 65536", with(smtp_fixture(), "port", Some(b"65536")), "port", "port number"),
        bad(
            "transport_security ssl",
            with(smtp_fixture(), "transport_security", Some(b"ssl")),
            "transport_security",
            "none, starttls or tls",
        ),
        bad(
            "transport_security upper case",
            with(smtp_fixture(), "transport_security", Some(b"TLS")),
            "transport_security",
            "none, starttls or tls",
        ),
        bad("auth_type unknown", with(smtp_auth(), "auth_type", Some(b"hunter2")), "auth_type", "must be none"),
        bad(
            "skip_ssl_verify not a bool",
            with(smtp_fixture(), "skip_ssl_verify", Some(b"yes")),
            "skip_ssl_verify",
            "true or false",
        ),
    ];
    for (_, host) in BAD_HOSTS {
        cases.push(bad("bad host", with(smtp_auth(), "host", Some(host.as_bytes())), "host", ""));
    }
    for key in ["host", "port", "user", "password", "auth_type", "transport_security", "domain"] {
        cases.extend(value_cases(&smtp_auth(), key));
    }
    run_bad(Relation::Smtp, parse_smtp, cases);
}

// ---------------------------------------------------------------------------------------------
// OIDC
// ---------------------------------------------------------------------------------------------

fn oidc_juju() -> Data {
    d(&[
        ("client_id", "penpot-client"),
        ("client_secret", "oidc-client-secret"),
        ("issuer_url", "https://idp.example.com/realms/penpot"),
    ])
}

fn oidc_endpoints() -> Data {
    let mut data = oidc_juju();
    data.extend(d(&[
        ("authorization_endpoint", "https://idp.example.com/auth"),
        ("token_endpoint", "https://idp.example.com/token"),
        ("userinfo_endpoint", "https://idp.example.com/userinfo"),
    ]));
    data
}

#[test]
fn oidc_accepted_key_styles() {
    let endpoints = Endpoints {
        authorization: "https://idp.example.com/auth".into(),
        token: "https://idp.example.com/token".into(),
        userinfo: "https://idp.example.com/userinfo".into(),
    };
    let want = |id: &str, secret: &str, issuer: &str, e: Option<Endpoints>, scopes: &str| Oidc {
        client_id: id.into(),
        client_secret: secret.into(),
        issuer: issuer.into(),
        endpoints: e,
        scopes: scopes.into(),
        display_name: None,
    };
    let issuer = "https://idp.example.com/realms/penpot/";
    let default_scope = "openid profile email";
    let cases: Vec<(&str, Data, Oidc)> = vec![
        (
            "juju keys, trailing slash added, discovery",
            oidc_juju(),
            want("penpot-client", "oidc-client-secret", issuer, None, default_scope),
        ),
        (
            "dashed keys, issuer already with slash",
            d(&[
                ("client-id", "cid"),
                ("client-secret", "csecret"),
                ("issuer", "http://keycloak.auth.svc:8080/realms/x/"),
            ]),
            want("cid", "csecret", "http://keycloak.auth.svc:8080/realms/x/", None, default_scope),
        ),
        (
            "underscore keys win over dashed ones",
            oidc_juju().into_iter().chain(d(&[("client-id", "other"), ("issuer", "https://other/")])).collect(),
            want("penpot-client", "oidc-client-secret", issuer, None, default_scope),
        ),
        (
            "all three endpoints",
            oidc_endpoints(),
            want("penpot-client", "oidc-client-secret", issuer, Some(endpoints.clone()), default_scope),
        ),
        (
            "scope",
            with(oidc_juju(), "scope", Some(b"openid email groups")),
            want("penpot-client", "oidc-client-secret", issuer, None, "openid email groups"),
        ),
        (
            "display name for the login button",
            with(oidc_juju(), "display_name", Some(b"Corporate SSO")),
            Oidc {
                display_name: Some("Corporate SSO".into()),
                ..want("penpot-client", "oidc-client-secret", issuer, None, default_scope)
            },
        ),
        (
            "scope spaces collapsed",
            with(oidc_juju(), "scope", Some(b"  openid    email ")),
            want("penpot-client", "oidc-client-secret", issuer, None, "openid email"),
        ),
        (
            "empty scope: default",
            with(oidc_juju(), "scope", Some(b"")),
            want("penpot-client", "oidc-client-secret", issuer, None, default_scope),
        ),
    ];
    for (case, data, want) in cases {
        match parse_oidc(&data) {
            Ok(got) => assert_eq!(got, want, "{case}"),
            Err(e) => panic!("{case}: rejected: {e}"),
        }
    }
}

#[test]
fn oidc_bad_input() {
    let mut cases = vec![
        bad("missing client_id", with(oidc_juju(), "client_id", None), "client_id", "also accepted: client-id"),
        bad(
            "missing client_secret",
            with(oidc_juju(), "client_secret", None),
            "client_secret",
            "also accepted: client-secret",
        ),
        bad("empty client_secret", with(oidc_juju(), "client_secret", Some(b"")), "client_secret", "missing or empty"),
        bad("missing issuer", with(oidc_juju(), "issuer_url", None), "issuer_url", "also accepted: issuer"),
        bad(
            "issuer unparseable",
            with(oidc_juju(), "issuer_url", Some(b"hunter2 idp")),
            "issuer_url",
            "not a valid URL",
        ),
        bad("issuer wrong scheme", with(oidc_juju(), "issuer_url", Some(b"ftp://idp/hunter2")), "issuer_url", "http"),
        bad(
            "dashed issuer wrong scheme",
            d(&[("client-id", "c"), ("client-secret", "hunter2"), ("issuer", "ldap://idp")]),
            "issuer",
            "http",
        ),
        bad(
            "issuer with credentials",
            with(oidc_juju(), "issuer_url", Some(b"https://u:hunter2@idp.example.com/")),
            "issuer_url",
            "credentials",
        ),
        bad("issuer port 0", with(oidc_juju(), "issuer_url", Some(b"https://idp:0/")), "issuer_url", "port"),
        bad("issuer port 65536", with(oidc_juju(), "issuer_url", Some(b"https://idp:65536/")), "issuer_url", "URL"),
        bad(
            "issuer with a query",
            with(oidc_juju(), "issuer_url", Some(b"https://idp/realms/x?hunter2=1")),
            "issuer_url",
            "?query",
        ),
        bad(
            "issuer with fragment",
            with(oidc_juju(), "issuer_url", Some(b"https://idp/#hunter2")),
            "issuer_url",
            "fragment",
        ),
        bad(
            "only authorization and token endpoints",
            with(oidc_endpoints(), "userinfo_endpoint", None),
            "userinfo_endpoint",
            "give all three endpoints or none",
        ),
        bad(
            "only token and userinfo endpoints",
            with(oidc_endpoints(), "authorization_endpoint", None),
            "authorization_endpoint",
            "give all three endpoints or none",
        ),
        bad(
            "only authorization and userinfo endpoints",
            with(oidc_endpoints(), "token_endpoint", Some(b"")),
            "token_endpoint",
            "give all three endpoints or none",
        ),
        bad(
            "endpoint wrong scheme",
            with(oidc_endpoints(), "token_endpoint", Some(b"ftp://idp/token")),
            "token_endpoint",
            "http",
        ),
        bad("scope not ASCII", with(oidc_juju(), "scope", Some("openid prüfen".as_bytes())), "scope", "scope names"),
    ];
    // In a URL, '#', '/', '?' and '\\' end the host and '%' escapes are decoded: only space
    // and '@' make a bad host there.
    for (_, host) in BAD_HOSTS.iter().filter(|(what, _)| ["space", "at sign"].contains(what)) {
        let url = format!("https://{host}/realms/x");
        cases.push(bad("bad issuer host", with(oidc_juju(), "issuer_url", Some(url.as_bytes())), "issuer_url", ""));
    }
    for key in ["client_id", "client_secret", "issuer_url", "scope"] {
        cases.extend(value_cases(&oidc_juju(), key));
    }
    for key in ["authorization_endpoint", "token_endpoint", "userinfo_endpoint"] {
        cases.extend(value_cases(&oidc_endpoints(), key));
    }
    run_bad(Relation::Oidc, parse_oidc, cases);
}

// ---------------------------------------------------------------------------------------------
// Across relations
// ---------------------------------------------------------------------------------------------

#[test]
fn error_display_format() {
    let data = with(pg_juju(), "password", None);
    let err = parse_pg(&data).unwrap_err();
    assert_eq!(err.to_string(), r#"postgresql relation: Secret "rel-secret" key "password" is missing or empty"#);

    let data = with(smtp_fixture(), "transport_security", Some(b"ssl"));
    let err = parse_smtp(&data).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"smtp relation: Secret "rel-secret" key "transport_security" must be none, starttls or tls"#
    );

    let data = with(redis_juju(), "port", Some(b"65536"));
    let err = parse_redis(&data).unwrap_err();
    assert_eq!(err.to_string(), r#"redis relation: Secret "rel-secret" key "port" is not a port number (1-65535)"#);
}

#[test]
fn secret_values_never_appear_in_errors_whatever_the_key() {
    // The same secret-looking value in every key of every relation, each time malformed in a
    // way the parser must refuse.
    let poisoned: &[&[u8]] =
        &[b"hunter2\nhunter2", b"hunter2 with spaces@host#frag/x", &[b'h', b'u', b'n', b't', b'e', b'r', b'2', 0xff]];
    type Parse = fn(&Data) -> Result<(), RelationError>;
    let bases: Vec<(Relation, Data, Parse)> = vec![
        (Relation::Postgresql, pg_juju(), |d| parse_pg(d).map(drop)),
        (Relation::Postgresql, pg_cnpg(), |d| parse_pg(d).map(drop)),
        (Relation::Redis, redis_juju(), |d| parse_redis(d).map(drop)),
        (Relation::S3, s3_juju(), |d| parse_s3(d).map(drop)),
        (Relation::S3, s3_obc(), |d| parse_s3(d).map(drop)),
        (Relation::Smtp, smtp_auth(), |d| parse_smtp(d).map(drop)),
        (Relation::Oidc, oidc_endpoints(), |d| parse_oidc(d).map(drop)),
    ];
    for (relation, base, parse) in bases {
        for key in base.keys() {
            for value in poisoned {
                let data = with(base.clone(), key, Some(value));
                let case = format!("{relation} key {key} = {:?}", String::from_utf8_lossy(value));
                // A value with spaces may be fine for a password; all other keys must refuse it.
                match parse(&data) {
                    Ok(()) => assert!(
                        [
                            "password",
                            "client_secret",
                            "secret-key",
                            "AWS_SECRET_ACCESS_KEY",
                            "access-key",
                            "AWS_ACCESS_KEY_ID",
                            "client_id",
                            "user",
                            "username"
                        ]
                        .contains(&key.as_str())
                            && !value.contains(&b'\n')
                            && std::str::from_utf8(value).is_ok(),
                        "{case}: accepted"
                    ),
                    Err(e) => {
                        let msg = e.to_string();
                        assert_eq!(e.relation, relation, "{case}");
                        assert_eq!(e.secret, SECRET, "{case}");
                        assert!(!msg.contains(MARK), "{case}: {msg:?} leaks the value");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// resolve: Secrets found for a spec -> settings, missing relations or the first error
// ---------------------------------------------------------------------------------------------

fn spec_with(smtp_from: Option<&str>, oidc_ref: bool) -> PenpotSpec {
    let r = |name: &str| RelationRef { secret_ref: SecretRef { name: name.into() } };
    PenpotSpec {
        postgresql: Some(PostgresqlRelation { secret_ref: SecretRef { name: "pg".into() }, max_connections: None }),
        redis: Some(r("redis")),
        s3: Some(r("s3")),
        smtp: smtp_from.map(|f| SmtpRelation {
            secret_ref: SecretRef { name: "smtp".into() },
            from_address: (!f.is_empty()).then(|| f.to_string()),
        }),
        oidc: oidc_ref.then(|| penpot_operator::crd::OidcRelation::from_secret("oidc")),
        ..Default::default()
    }
}

fn found(entries: &[(Relation, &str, Data)]) -> Found {
    entries.iter().map(|(r, name, data)| (*r, (name.to_string(), data.clone()))).collect()
}

#[test]
fn resolve_cases() {
    let all = [
        (Relation::Postgresql, "pg", pg_juju()),
        (Relation::Redis, "redis", redis_juju()),
        (Relation::S3, "s3", s3_juju()),
        (Relation::Smtp, "smtp", smtp_fixture()),
    ];

    match resolve(&spec_with(None, false), &Found::new()) {
        Resolution::Missing(m) => {
            assert_eq!(m.relations, ["postgresql", "redis", "s3"]);
            assert_eq!(m.to_string(), "postgresql, redis, s3 (Secrets pg, redis, s3 not found)");
        }
        other => panic!("{other:?}"),
    }
    // OIDC without SMTP asks for SMTP too.
    match resolve(&spec_with(None, true), &found(&all[..3])) {
        Resolution::Missing(m) => {
            assert_eq!(m.relations, ["oidc", "smtp"]);
            assert_eq!(m.to_string(), "oidc, smtp (Secret oidc not found)");
        }
        other => panic!("{other:?}"),
    }
    // spec.smtp.fromAddress reaches the parser.
    match resolve(&spec_with(Some("penpot@corp.example"), false), &found(&all)) {
        Resolution::Ready(r) => {
            assert_eq!(r.postgresql.uri, "postgresql://postgresql-endpoint:5432/penpot");
            assert_eq!(r.smtp.map(|s| s.from), Some("penpot@corp.example".to_string()));
            assert!(r.oidc.is_none());
        }
        other => panic!("{other:?}"),
    }
    // Debug output of parsed relations never shows a credential.
    match resolve(&spec_with(None, false), &found(&all[..3])) {
        Resolution::Ready(r) => {
            let debug = format!("{r:?}");
            for secret in ["postgresql-password", "s3-secret-key"] {
                assert!(!debug.contains(secret), "{secret} in {debug}");
            }
            assert!(debug.contains("postgresql-username") && debug.contains("<redacted>"), "{debug}");
        }
        other => panic!("{other:?}"),
    }
    // An SMTP Secret the spec does not reference is not read.
    match resolve(&spec_with(None, false), &found(&all[..3])) {
        Resolution::Ready(r) => assert!(r.smtp.is_none()),
        other => panic!("{other:?}"),
    }
    // Bad data names the Secret it came from.
    let mut bad_pg = found(&all);
    bad_pg.insert(Relation::Postgresql, ("pg".into(), with(pg_juju(), "password", Some(b"hunter2\nx"))));
    match resolve(&spec_with(Some(""), false), &bad_pg) {
        Resolution::Invalid(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(r#"postgresql relation: Secret "pg" key "password" "#), "{msg}");
            assert!(!msg.contains(MARK), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

/// Login provider Secrets: what is refused names the key, never the value.
#[test]
fn login_provider_secrets_name_their_bad_keys() {
    use penpot_operator::relations::logins;
    let oauth = |pairs: &[(&str, &str)], gitlab: bool| {
        logins::oauth_client(&SecretData::new(Relation::Github, SECRET, &d(pairs)), gitlab).map(drop)
    };
    assert_eq!(oauth(&[("client_secret", "s")], false).unwrap_err().key, "client_id");
    let e = oauth(&[("client_id", "i"), ("client_secret", "s"), ("base_uri", "https://g.example")], false).unwrap_err();
    assert_eq!((e.key.as_str(), e.problem.as_str()), ("base_uri", "is only read for GitLab"));
    let e = oauth(&[("client_id", "i"), ("client_secret", "s"), ("base_uri", "ftp://g.example")], true).unwrap_err();
    assert_eq!(e.key, "base_uri");
    let ldap = |pairs: &[(&str, &str)]| logins::ldap(&SecretData::new(Relation::Ldap, SECRET, &d(pairs)));
    assert_eq!(ldap(&[("base_dn", "dc=x")]).unwrap_err().key, "host");
    assert_eq!(ldap(&[("host", "ldap")]).unwrap_err().key, "base_dn");
    let e = ldap(&[("host", "ldap"), ("base_dn", "dc=x"), ("bind_password", "hunter2")]).unwrap_err();
    assert!(e.key == "bind_dn" && !e.to_string().contains("hunter2"), "{e}");
    let e = ldap(&[("host", "ldap"), ("base_dn", "dc=x"), ("transport_security", "ssl")]).unwrap_err();
    assert_eq!(e.key, "transport_security");
    let tls = ldap(&[("host", "ldap"), ("base_dn", "dc=x"), ("transport_security", "tls")]).unwrap();
    assert_eq!(tls.port, 636, "LDAPS by default on 636");
    let dashed = ldap(&[("host", "ldap"), ("base-dn", "dc=x"), ("transport-security", "tls")]).unwrap();
    assert_eq!(dashed.security, logins::LdapSecurity::Tls, "dashed keys are read like the others");
    let e = oauth(&[("client_id", "i"), ("client_secret", "s"), ("base_uri", "https://g.example/?a=b")], true);
    assert_eq!(e.unwrap_err().key, "base_uri");
}
