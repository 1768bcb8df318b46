//! SMTP: the greeting, `EHLO`, `STARTTLS` or implicit TLS as the relation says, `AUTH` with its
//! credentials when it has them, `QUIT`. No mail is sent.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::net::{self, Verify};
use super::{Failure, Probe};
use crate::relations::smtp::{Smtp, TransportSecurity};

/// Longest reply line read (RFC 5321 allows 512) and most lines in one reply.
const MAX_LINE: usize = 1024;
const MAX_LINES: usize = 64;

pub async fn check(smtp: &Smtp, probe: &Probe<'_>) -> Result<String, Failure> {
    let stream = net::connect(probe, &smtp.host, smtp.port).await?;
    let tls = || net::tls_config(probe.ca_bundle, Verify::Full);
    match smtp.security {
        TransportSecurity::Tls => {
            let stream = net::handshake(stream, &smtp.host, tls()?).await?;
            let mut session = Session::new(stream);
            session.expect("greeting", None, 220).await?;
            session.login(smtp).await
        }
        TransportSecurity::StartTls => {
            let mut session = Session::new(stream);
            session.expect("greeting", None, 220).await?;
            let offered = session.expect("EHLO", Some("EHLO penpot-operator"), 250).await?;
            if !offered.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
                return Err(Failure::Refused(
                    "the server does not offer STARTTLS (transport_security: starttls)".into(),
                ));
            }
            session.expect("STARTTLS", Some("STARTTLS"), 220).await?;
            let stream = net::handshake(session.into_inner(), &smtp.host, tls()?).await?;
            Session::new(stream).login(smtp).await
        }
        TransportSecurity::None => {
            let mut session = Session::new(stream);
            session.expect("greeting", None, 220).await?;
            session.login(smtp).await
        }
    }
}

struct Session<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(stream: S) -> Self {
        Self { stream: BufReader::new(stream) }
    }

    fn into_inner(self) -> S {
        self.stream.into_inner()
    }

    /// `EHLO`, `AUTH` when the relation has a user, then the sender Penpot will use
    /// (`MAIL FROM`, taken back with `RSET`: no mail is sent), then `QUIT`.
    async fn login(&mut self, smtp: &Smtp) -> Result<String, Failure> {
        let offered = self.expect("EHLO", Some("EHLO penpot-operator"), 250).await?;
        let passed = match &smtp.username {
            Some(user) => {
                self.authenticate(&offered, user, smtp.password.as_deref().unwrap_or_default()).await?;
                format!("logged in as {user}")
            }
            None => "no username in the relation".to_string(),
        };
        // A relay that wants a login, or refuses the sender, says so here, as it would to Penpot.
        self.expect("MAIL FROM", Some(&format!("MAIL FROM:<{}>", smtp.from)), 250).await?;
        self.expect("RSET", Some("RSET"), 250).await?;
        self.quit().await;
        Ok(format!("{passed}; sender {} accepted", smtp.from))
    }

    /// `AUTH PLAIN` or `AUTH LOGIN`, whichever the server offers. Penpot authenticates
    /// whenever a username is set, with an empty password if there is none.
    async fn authenticate(&mut self, offered: &[String], user: &str, password: &str) -> Result<(), Failure> {
        let mechanisms: Vec<String> = offered
            .iter()
            .filter_map(|l| l.get(..5).filter(|p| p.eq_ignore_ascii_case("AUTH ")).map(|_| l[5..].to_ascii_uppercase()))
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect();
        if mechanisms.iter().any(|m| m == "PLAIN") {
            let token = STANDARD.encode(format!("\0{user}\0{password}"));
            self.expect("AUTH PLAIN", Some(&format!("AUTH PLAIN {token}")), 235).await?;
        } else if mechanisms.iter().any(|m| m == "LOGIN") {
            self.expect("AUTH LOGIN", Some("AUTH LOGIN"), 334).await?;
            self.expect("AUTH LOGIN", Some(&STANDARD.encode(user)), 334).await?;
            self.expect("AUTH LOGIN", Some(&STANDARD.encode(password)), 235).await?;
        } else {
            let offered = if mechanisms.is_empty() { "none".to_string() } else { mechanisms.join(" ") };
            return Err(Failure::Refused(format!(
                "the server offers no PLAIN or LOGIN authentication here (offered: {offered}); without TLS many servers offer none"
            )));
        }
        Ok(())
    }

    async fn quit(&mut self) {
        let _ = self.expect("QUIT", Some("QUIT"), 221).await;
    }

    /// Sends `line` (when given), reads one reply and requires `code`; the reply's lines
    /// after the code come back (EHLO's extensions).
    async fn expect(&mut self, step: &str, line: Option<&str>, code: u16) -> Result<Vec<String>, Failure> {
        if let Some(line) = line {
            let io = |e: std::io::Error| Failure::Unreachable(e.to_string());
            self.stream.write_all(format!("{line}\r\n").as_bytes()).await.map_err(io)?;
            self.stream.flush().await.map_err(io)?;
        }
        let (got, text) = self.reply().await?;
        if got != code {
            let said = text.last().map(String::as_str).unwrap_or_default();
            // Refusing credentials or a sender is an SMTP server's answer worth its words
            // (`535 5.7.8 Authentication credentials invalid`); an odd answer to the greeting
            // or EHLO may be another protocol's banner, which status must not quote.
            return Err(if step.starts_with("AUTH") || step == "MAIL FROM" {
                Failure::Refused(format!("{step}: the server answered {got} {said}"))
            } else {
                Failure::Protocol(format!("{step}: the server answered {got} {said}"))
            });
        }
        Ok(text)
    }

    /// One reply: its code and the text of each line (`250-PIPELINING` ... `250 OK`).
    async fn reply(&mut self) -> Result<(u16, Vec<String>), Failure> {
        let not_smtp = || Failure::Protocol("not an SMTP reply".into());
        let mut lines = Vec::new();
        loop {
            let mut raw = Vec::new();
            (&mut self.stream)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut raw)
                .await
                .map_err(|e| Failure::Unreachable(e.to_string()))?;
            let line = String::from_utf8_lossy(&raw).trim_end().to_string();
            let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(not_smtp)?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if !more {
                return Ok((code, lines));
            }
            if lines.len() >= MAX_LINES {
                return Err(not_smtp());
            }
        }
    }
}
