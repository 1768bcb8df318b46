//! Redis: `AUTH` with the relation's credentials (a user too, for ACLs), `SELECT` its
//! database, `PING`. A few lines of RESP, over TLS for `rediss://`.

use percent_encoding::percent_decode_str;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::net::{self, Verify};
use super::{Failure, Probe};
use crate::relations::redis::Redis;

/// The error prefixes Redis answers AUTH, SELECT and PING with.
const REDIS_ERRORS: [&str; 4] = ["WRONGPASS ", "NOAUTH ", "NOPERM ", "ERR "];

/// Longest reply line read; Redis's own are far shorter.
const MAX_LINE: usize = 512;

pub async fn check(redis: &Redis, probe: &Probe<'_>) -> Result<String, Failure> {
    let url = url::Url::parse(&redis.uri).map_err(|_| Failure::Protocol("the Redis URI does not parse".into()))?;
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port().unwrap_or(6379);
    let stream = net::connect(probe, &host, port).await?;
    let commands = commands(&url);
    if url.scheme() == "rediss" {
        // Penpot's client (Lettuce) verifies the server by default.
        let tls = net::handshake(stream, &host, net::tls_config(probe.ca_bundle, Verify::Full)?).await?;
        converse(tls, &commands).await?;
    } else {
        converse(stream, &commands).await?;
    }
    let user = url.username();
    Ok(match (user.is_empty(), url.password().is_some()) {
        (false, _) => format!("authenticated as {user}; PING answered"),
        (true, true) => "authenticated; PING answered".to_string(),
        (true, false) => "PING answered (no password in the relation)".to_string(),
    })
}

/// `AUTH` when there is a password, `SELECT` for a database other than 0, then `PING`.
fn commands(url: &url::Url) -> Vec<Vec<String>> {
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut commands = Vec::new();
    if let Some(password) = url.password() {
        let mut auth = vec!["AUTH".to_string()];
        if !url.username().is_empty() {
            auth.push(decode(url.username()));
        }
        auth.push(decode(password));
        commands.push(auth);
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() && db != "0" {
        commands.push(vec!["SELECT".into(), db.into()]);
    }
    commands.push(vec!["PING".into()]);
    commands
}

async fn converse(stream: impl AsyncRead + AsyncWrite + Unpin, commands: &[Vec<String>]) -> Result<(), Failure> {
    let mut stream = BufReader::new(stream);
    for command in commands {
        stream.write_all(&encode(command)).await.map_err(|e| Failure::Unreachable(e.to_string()))?;
        stream.flush().await.map_err(|e| Failure::Unreachable(e.to_string()))?;
        let mut line = Vec::new();
        (&mut stream)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let reply = String::from_utf8_lossy(&line).trim_end().to_string();
        let name = command[0].as_str();
        match reply.split_at_checked(1) {
            Some(("+", _)) => {}
            // `-WRONGPASS ...`, `-NOAUTH ...`, `-ERR DB index is out of range`: Redis's words.
            // Another protocol's line that happens to start with '-' is not quoted.
            Some(("-", error)) if REDIS_ERRORS.iter().any(|e| error.starts_with(e)) => {
                return Err(Failure::Refused(format!("{name} refused: {error}")));
            }
            _ => return Err(Failure::Protocol(format!("{name}: not a Redis reply"))),
        }
    }
    Ok(())
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[String]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_follow_the_uri() {
        let url = url::Url::parse("rediss://pen%40pot:p%3Aw@redis:6380/2").unwrap();
        assert_eq!(
            commands(&url),
            vec![
                vec!["AUTH".to_string(), "pen@pot".into(), "p:w".into()],
                vec!["SELECT".into(), "2".into()],
                vec!["PING".into()]
            ]
        );
        let url = url::Url::parse("redis://:secret@redis:6379").unwrap();
        assert_eq!(commands(&url)[0], vec!["AUTH".to_string(), "secret".into()]);
        assert_eq!(commands(&url::Url::parse("redis://redis:6379/0").unwrap()), vec![vec!["PING".to_string()]]);
    }

    #[test]
    fn resp_bulk_strings_carry_any_bytes() {
        assert_eq!(encode(&["AUTH".into(), "a b\r\n".into()]), b"*2\r\n$4\r\nAUTH\r\n$5\r\na b\r\n\r\n".to_vec());
    }
}
