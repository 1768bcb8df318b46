//! PostgreSQL: log in as Penpot will (password, SCRAM or MD5, as the server asks) to the
//! relation's database, with the TLS PgJDBC would use, and run `SELECT 1`.

use tokio::net::TcpStream;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, NoTls, TlsConnect};

use super::net::{self, Verify};
use super::{Failure, Found, Probe};
use crate::relations::postgresql::Postgresql;

pub async fn check(pg: &Postgresql, probe: &Probe<'_>) -> Result<Found, Failure> {
    let target = Target::parse(&pg.uri)?;
    if let Some(option) = target.own_tls_files {
        // The backend reads those files from its own filesystem; the operator cannot.
        return Ok(Found::Skipped(format!("not checked: the URI sets {option}, a file only the backend reads")));
    }
    let stream = net::connect(probe, &target.host, target.port).await?;
    let mut config = tokio_postgres::Config::new();
    config
        .user(&pg.username)
        .password(&pg.password)
        .dbname(&target.database)
        .application_name("penpot-operator-check")
        .ssl_mode(target.ssl_mode);
    match target.verify {
        None => select_one(&config, stream, NoTls).await?,
        Some(verify) => {
            let mut tls =
                tokio_postgres_rustls::MakeRustlsConnect::new((*net::tls_config(probe.ca_bundle, verify)?).clone());
            let host = target.host.trim_start_matches('[').trim_end_matches(']');
            let connect = MakeTlsConnect::<TcpStream>::make_tls_connect(&mut tls, host)
                .map_err(|e| Failure::Tls(e.to_string()))?;
            select_one(&config, stream, connect).await?
        }
    }
    Ok(Found::Passed(format!("logged in to database {} as {}", target.database, pg.username)))
}

/// Logs in over `stream` and runs `SELECT 1`.
async fn select_one<T>(config: &tokio_postgres::Config, stream: TcpStream, tls: T) -> Result<(), Failure>
where
    T: TlsConnect<TcpStream>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect_raw(stream, tls).await.map_err(failure)?;
    // Aborted however this ends, a timeout dropping this future included: a server that
    // never answers must not keep the connection's task and socket.
    let _running = AbortOnDrop(tokio::spawn(connection));
    client.simple_query("SELECT 1").await.map(drop).map_err(failure)
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the check needs of `postgresql://host:port/database?params`.
struct Target {
    host: String,
    port: u16,
    database: String,
    ssl_mode: SslMode,
    /// `None`: no TLS at all (`sslmode=disable`).
    verify: Option<Verify>,
    /// A PgJDBC option naming a file in the backend's filesystem (`sslrootcert`, ...).
    own_tls_files: Option<&'static str>,
}

impl Target {
    fn parse(uri: &str) -> Result<Self, Failure> {
        let url = url::Url::parse(uri).map_err(|_| Failure::Protocol("the database URI does not parse".into()))?;
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port().unwrap_or(5432);
        let database = url.path().trim_start_matches('/').to_string();
        let mode = url.query_pairs().find(|(k, _)| k == "sslmode").map(|(_, v)| v.into_owned());
        // PgJDBC's meaning of each mode: only verify-* check the certificate.
        let (ssl_mode, verify) = match mode.as_deref() {
            Some("disable") => (SslMode::Disable, None),
            Some("require") => (SslMode::Require, Some(Verify::None)),
            Some("verify-ca") => (SslMode::Require, Some(Verify::ChainOnly)),
            Some("verify-full") => (SslMode::Require, Some(Verify::Full)),
            // `allow`, `prefer` and no mode: TLS when the server offers it, unverified.
            _ => (SslMode::Prefer, Some(Verify::None)),
        };
        let own_tls_files = ["sslrootcert", "sslcert", "sslkey", "sslfactory"]
            .into_iter()
            .find(|option| url.query_pairs().any(|(k, _)| k == *option));
        Ok(Self { host, port, database, ssl_mode, verify, own_tls_files })
    }
}

/// The server's own words when it refused (wrong password, no such database, pg_hba), which
/// carry no secret; a certificate problem; anything else is a connection failure.
fn failure(e: tokio_postgres::Error) -> Failure {
    match e.as_db_error() {
        Some(db) => Failure::Refused(format!("the server refused: {} (SQLSTATE {})", db.message(), db.code().code())),
        None => net::tls_failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_modes_mean_what_pgjdbc_makes_of_them() {
        let mode = |uri: &str| {
            let t = Target::parse(uri).unwrap();
            (format!("{:?}", t.ssl_mode), t.verify)
        };
        assert_eq!(mode("postgresql://db:5432/penpot"), ("Prefer".into(), Some(Verify::None)));
        assert_eq!(mode("postgresql://db:5432/penpot?sslmode=disable"), ("Disable".into(), None));
        assert_eq!(mode("postgresql://db:5432/penpot?sslmode=require"), ("Require".into(), Some(Verify::None)));
        assert_eq!(mode("postgresql://db:5432/penpot?sslmode=verify-full"), ("Require".into(), Some(Verify::Full)));
        assert_eq!(mode("postgresql://db:5432/penpot?sslmode=verify-ca"), ("Require".into(), Some(Verify::ChainOnly)));
        let own = Target::parse("postgresql://db:5432/penpot?sslmode=verify-full&sslrootcert=/etc/pg/ca.crt").unwrap();
        assert_eq!(own.own_tls_files, Some("sslrootcert"));
        let t = Target::parse("postgresql://[fd00::5]:6432/pen.pot?sslmode=prefer").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.database.as_str()), ("[fd00::5]", 6432, "pen.pot"));
    }
}
