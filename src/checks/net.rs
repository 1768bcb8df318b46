//! The connections a check opens: TCP behind the egress fence, then TLS trusting what the
//! workload trusts (the image's public roots plus `spec.caBundle`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Failure, Probe};

/// How long a TCP connection or a TLS handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a TLS peer is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Chain to the roots, name matches the host: what Penpot's clients do by default.
    Full,
    /// Chain to the roots, any name: PgJDBC's `sslmode=verify-ca`.
    ChainOnly,
    /// Encrypt only, as PgJDBC does for `sslmode=require` and `prefer`.
    None,
}

/// `host` as the Penpot's pods resolve it: a one-label name (a Service in their namespace,
/// `pg-rw`) qualified with `namespace`, since the operator runs in a namespace of its own.
pub fn qualify(host: &str, namespace: &str) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.contains(['.', ':']) || bare.eq_ignore_ascii_case("localhost") {
        bare.to_string()
    } else {
        format!("{bare}.{namespace}.svc")
    }
}

/// Connects to `host:port` as the Penpot's pods would find it, refusing what the egress fence
/// refuses (unless an admin allowed the host) and trying each address it resolves to, as a
/// client library would.
pub async fn connect(probe: &Probe<'_>, host: &str, port: u16) -> Result<TcpStream, Failure> {
    let egress = probe.egress;
    let qualified = qualify(host, probe.namespace);
    // An admin may allow the host as the relation writes it, or fully.
    let allowed = egress.allows_host(host) || egress.allows_host(&qualified);
    let host = qualified.as_str();
    if let Some(why) = egress.refused_port(port) {
        return Err(Failure::Fenced(why));
    }
    let found: Vec<SocketAddr> = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| Failure::NotResolved(host.to_string()))?
        .map_err(|_| Failure::NotResolved(host.to_string()))?
        .collect();
    if found.is_empty() {
        return Err(Failure::NotResolved(host.to_string()));
    }
    let mut refused = None;
    let mut last_error = None;
    for addr in found {
        if !allowed && let Some(why) = egress.refusal(addr) {
            refused = Some(why);
            continue;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last_error = Some(e.to_string()),
            Err(_) => last_error = Some(format!("no answer in {} s", CONNECT_TIMEOUT.as_secs())),
        }
    }
    match (last_error, refused) {
        (Some(why), _) => Err(Failure::Unreachable(why)),
        (None, Some(why)) => Err(Failure::Fenced(why)),
        (None, None) => Err(Failure::NotResolved(host.to_string())),
    }
}

/// The client configuration for `verify`: the public roots and `ca_bundle` (checked PEM).
pub fn tls_config(ca_bundle: Option<&str>, verify: Verify) -> Result<Arc<ClientConfig>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Tls(e.to_string()))?;
    let config = match verify {
        Verify::Full => builder.with_root_certificates(roots(ca_bundle)).with_no_client_auth(),
        Verify::ChainOnly => {
            let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(ca_bundle)),
                provider.clone(),
            )
            .build()
            .map_err(|e| Failure::Tls(e.to_string()))?;
            let lenient = Lenient { chain: Some(chain), provider };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(lenient)).with_no_client_auth()
        }
        Verify::None => {
            let lenient = Lenient { chain: None, provider };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(lenient)).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// The image's public roots (`SSL_CERT_FILE` or the system store) and `ca_bundle`'s.
fn roots(ca_bundle: Option<&str>) -> RootCertStore {
    use rustls::pki_types::pem::PemObject;
    // Read once per process: the image's roots do not change while it runs.
    static NATIVE: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(NATIVE.get_or_init(|| rustls_native_certs::load_native_certs().certs).clone());
    if let Some(pem) = ca_bundle {
        roots.add_parsable_certificates(CertificateDer::pem_slice_iter(pem.as_bytes()).flatten());
    }
    roots
}

/// A TLS handshake over `stream` with `host`, bounded by [`CONNECT_TIMEOUT`].
pub async fn handshake(
    stream: TcpStream,
    host: &str,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, Failure> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string()).map_err(|_| Failure::Tls(format!("{host} is not a TLS name")))?;
    tokio::time::timeout(CONNECT_TIMEOUT, TlsConnector::from(config).connect(name, stream))
        .await
        .map_err(|_| Failure::Unreachable(format!("no TLS handshake in {} s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| tls_failure(&e))
}

/// A failure found anywhere in `e`'s sources, as status may say it: a certificate the
/// workload would refuse, in fixed words (never the names the certificate holds); anything
/// else (a plaintext port, a reset, a timeout) is a connection failure, reported coarsely,
/// so TLS errors cannot tell open ports from closed ones.
pub fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Failure {
    let mut source = Some(e);
    while let Some(s) = source {
        // An io::Error's `source` skips the error it wraps: look inside it too.
        let inner = s.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|i| i as &dyn std::error::Error);
        for candidate in [Some(s), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(problem)) = candidate.downcast_ref::<rustls::Error>() {
                return Failure::Tls(certificate_problem(problem).into());
            }
        }
        source = s.source();
    }
    Failure::Unreachable(crate::error::error_chain(e))
}

fn certificate_problem(problem: &rustls::CertificateError) -> &'static str {
    use rustls::CertificateError as C;
    match problem {
        C::UnknownIssuer => {
            "the server's certificate is not signed by a CA the workload trusts (spec.caBundle adds one)"
        }
        C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "the server's certificate is not valid yet",
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the server's certificate is not valid for the host name the relation uses"
        }
        C::Revoked => "the server's certificate is revoked",
        _ => "the server's certificate is refused",
    }
}

/// What PgJDBC accepts short of `verify-full`: with `chain`, the full check without the name
/// (webpki checks the chain first, so a name mismatch is all that is forgiven); without it, any
/// certificate (encryption without authentication). Handshake signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(NotValidForName | NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_label_hosts_are_looked_up_in_the_penpots_namespace() {
        assert_eq!(qualify("pg-rw", "design"), "pg-rw.design.svc");
        for host in ["pg-rw.db", "pg.db.svc.cluster.local", "10.0.0.5", "[fd00::5]", "localhost"] {
            assert_eq!(qualify(host, "design"), host.trim_start_matches('[').trim_end_matches(']'));
        }
    }
}
