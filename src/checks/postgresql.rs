//! PostgreSQL: log in as Penpot will (password, SCRAM or MD5, as the server asks) to the
//! relation's database, with the TLS PgJDBC would use, and run `SELECT 1`.

use tokio::net::TcpStream;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, NoTls, TlsConnect};

use super::net::{self, Verify};
use super::{Failure, Probe};
use crate::relations::postgresql::Postgresql;

pub async fn check(pg: &Postgresql, probe: &Probe<'_>) -> Result<String, Failure> {
    let target = Target::parse(&pg.uri)?;
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
    Ok(format!("logged in to database {} as {}", target.database, pg.username))
}

/// Logs in over `stream` and runs `SELECT 1`.
async fn select_one<T>(config: &tokio_postgres::Config, stream: TcpStream, tls: T) -> Result<(), Failure>
where
    T: TlsConnect<TcpStream>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect_raw(stream, tls).await.map_err(failure)?;
    let running = tokio::spawn(connection);
    let answered = client.simple_query("SELECT 1").await;
    drop(client);
    running.abort();
    answered.map(drop).map_err(failure)
}

/// What the check needs of `postgresql://host:port/database?params`.
struct Target {
    host: String,
    port: u16,
    database: String,
    ssl_mode: SslMode,
    /// `None`: no TLS at all (`sslmode=disable`).
    verify: Option<Verify>,
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
            Some("verify-ca" | "verify-full") => (SslMode::Require, Some(Verify::Full)),
            // `allow`, `prefer` and no mode: TLS when the server offers it, unverified.
            _ => (SslMode::Prefer, Some(Verify::None)),
        };
        Ok(Self { host, port, database, ssl_mode, verify })
    }
}

/// The server's own words when it refused (wrong password, no such database, pg_hba), which
/// carry no secret; anything else is a connection or protocol failure.
fn failure(e: tokio_postgres::Error) -> Failure {
    match e.as_db_error() {
        Some(db) => Failure::Refused(format!("the server refused: {} (SQLSTATE {})", db.message(), db.code().code())),
        None if e.to_string().contains("TLS") => Failure::Tls(super::error_chain(&e)),
        None => Failure::Protocol(super::error_chain(&e)),
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
        let t = Target::parse("postgresql://[fd00::5]:6432/pen.pot?sslmode=prefer").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.database.as_str()), ("[fd00::5]", 6432, "pen.pot"));
    }
}
