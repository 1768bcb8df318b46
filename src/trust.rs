//! Private certificate authorities (`spec.caBundle`): the user's PEM bundle checked, and
//! turned into what each runtime of the pod reads. Pure: bytes in, bytes out.
//!
//! - nginx verifies S3 redirects against one PEM file: the image's public roots plus the
//!   user's, since `proxy_ssl_trusted_certificate` replaces the default roots.
//! - Node (the exporter) adds the user's PEM to its own roots (`NODE_EXTRA_CA_CERTS`).
//! - The backend's JVM replaces its trust store with `javax.net.ssl.trustStore`, so it gets
//!   the same public roots plus the user's, as a JKS store: the format every JVM reads
//!   without a password or a tool, written here because the operator image has no keytool.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha1::{Digest, Sha1};

/// Certificates accepted in one bundle; a bundle is a handful, a whole distribution ~150.
pub const MAX_CERTIFICATES: usize = 512;
/// The JKS store's password. Not a secret: it only seals the store's integrity digest, and
/// the JVM is told it so it checks that digest.
pub const TRUST_STORE_PASSWORD: &str = "changeit";

/// What is wrong with a bundle, never quoting it.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    #[error("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    Empty,
    #[error("is not PEM: {0}")]
    NotPem(String),
    #[error("certificate {0} (counting from 1) is not an X.509 certificate a TLS client can trust")]
    NotACertificate(usize),
    #[error("holds more than {MAX_CERTIFICATES} certificates")]
    TooMany,
}

/// What `spec.caBundle` points at, once read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bundle {
    None,
    /// The certificates, checked and re-encoded as PEM.
    Found(String),
    /// `Secret x` or `ConfigMap x`, or its key, is not there.
    Missing(String),
    /// Names the field, the object and the key; never the content.
    Invalid(String),
}

impl Bundle {
    /// `spec.caBundle` read from the object its source names: `secret` or `config_map` as
    /// found (`None`: absent). The one reading of the source, for the controller and the
    /// offline render alike.
    pub fn from_source(
        source: &crate::crd::CaBundle,
        secret: Option<&k8s_openapi::api::core::v1::Secret>,
        config_map: Option<&k8s_openapi::api::core::v1::ConfigMap>,
    ) -> Bundle {
        match (&source.secret_ref, &source.config_map_ref) {
            (Some(r), _) => Bundle::check(
                format!("Secret {}", r.name),
                &r.key,
                secret.map(|s| crate::relations::secret_data(s).remove(&r.key)),
            ),
            (None, Some(r)) => {
                let value = config_map.map(|m| {
                    let text = m.data.as_ref().and_then(|d| d.get(&r.key)).map(|t| t.clone().into_bytes());
                    text.or_else(|| m.binary_data.as_ref().and_then(|d| d.get(&r.key)).map(|b| b.0.clone()))
                });
                Bundle::check(format!("ConfigMap {}", r.name), &r.key, value)
            }
            (None, None) => Bundle::None,
        }
    }

    /// `value`: `None` when `what` (`Secret x`, `ConfigMap x`) does not exist, `Some(None)`
    /// when it lacks `key`.
    pub fn check(what: String, key: &str, value: Option<Option<Vec<u8>>>) -> Bundle {
        match value {
            None => Bundle::Missing(what),
            Some(None) => Bundle::Missing(format!("{what} key {key:?}")),
            Some(Some(pem)) => match parse_bundle(&pem) {
                Ok(certificates) => Bundle::Found(to_pem(&certificates)),
                Err(e) => Bundle::Invalid(format!("spec.caBundle: {what} key {key:?} {e}")),
            },
        }
    }
}

/// The certificates of a PEM bundle, each checked to be a usable trust anchor. Other PEM
/// blocks (a private key pasted by mistake) are refused rather than carried into the pods.
pub fn parse_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, BundleError> {
    let mut certificates = Vec::new();
    for (index, item) in <(rustls::pki_types::pem::SectionKind, Vec<u8>)>::pem_slice_iter(pem).enumerate() {
        let (kind, der) = item.map_err(|e| BundleError::NotPem(pem_error(&e)))?;
        if kind != rustls::pki_types::pem::SectionKind::Certificate {
            return Err(BundleError::NotPem(format!("block {} is not a CERTIFICATE", index + 1)));
        }
        let certificate = CertificateDer::from(der);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certificate.clone()).map_err(|_| BundleError::NotACertificate(index + 1))?;
        certificates.push(certificate);
        if certificates.len() > MAX_CERTIFICATES {
            return Err(BundleError::TooMany);
        }
    }
    if certificates.is_empty() {
        return Err(BundleError::Empty);
    }
    Ok(certificates)
}

/// The parser's complaint without the bytes it complains about.
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { .. } => "a block has no END line".into(),
        Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
        Error::Base64Decode(_) => "a block is not valid base64".into(),
        _ => "cannot be read".into(),
    }
}

/// Certificates as PEM, one block each, in order.
pub fn to_pem(certificates: &[CertificateDer]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for certificate in certificates {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(certificate.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// A JKS trust store holding `certificates` as trusted entries `ca-1`, `ca-2`, ...
///
/// The format (Java's `sun.security.provider.JavaKeyStore`): magic `FEEDFEED`, version 2, the
/// entry count, then per entry tag 2 (trusted certificate), alias, creation time in ms,
/// certificate type `X.509` and the DER; last a SHA-1 over the password as UTF-16BE, the
/// words "Mighty Aphrodite" and everything before it. `created_ms` is fixed by the caller
/// so the same bundle gives the same bytes.
pub fn jks(certificates: &[CertificateDer], password: &str, created_ms: u64) -> Vec<u8> {
    fn utf(out: &mut Vec<u8>, s: &str) {
        // Java's modified UTF-8 equals UTF-8 for the ASCII written here.
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = Vec::new();
    out.extend_from_slice(&0xFEED_FEEDu32.to_be_bytes());
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(&(certificates.len() as u32).to_be_bytes());
    for (index, certificate) in certificates.iter().enumerate() {
        out.extend_from_slice(&2u32.to_be_bytes());
        utf(&mut out, &format!("ca-{}", index + 1));
        out.extend_from_slice(&created_ms.to_be_bytes());
        utf(&mut out, "X.509");
        out.extend_from_slice(&(certificate.as_ref().len() as u32).to_be_bytes());
        out.extend_from_slice(certificate.as_ref());
    }
    let mut digest = Sha1::new();
    for unit in password.encode_utf16() {
        digest.update(unit.to_be_bytes());
    }
    digest.update(b"Mighty Aphrodite");
    digest.update(&out);
    out.extend_from_slice(&digest.finalize());
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed CA made with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256`.
    pub const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBjDCCATOgAwIBAgIUZw5V3dJgvHjH8cWqO0iIXtO4E3EwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQUGVucG90IFRlc3QgQ0EgMTAgFw0yNjEyMDIxMDAxNTJaGA8y
MTI2MTEwODEwMDE1MlowGzEZMBcGA1UEAwwQUGVucG90IFRlc3QgQ0EgMTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABMTDuXgD6vm+1gp8YA3UDq3aGTXKgK2tpG+f
wAln9plc89rIcQsm2cZm7vifl5BP1VwIZjb/zcfLpuOWxn6moUajUzBRMB0GA1Ud
DgQWBBT34Kk2Ns74mmbXR7VRk+vaoyIAJjAfBgNVHSMEGDAWgBT34Kk2Ns74mmbX
R7VRk+vaoyIAJjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCICBT
+3AzsqTl1MctQQ2ScbTLGrupvMWGaAK00Ph6xd+nAiA31zKc4qKkuIw9QV6S6/Xm
ckPuDJ+Gar4V55QgA2Tf1A==
-----END CERTIFICATE-----
";

    #[test]
    fn refusals_name_the_problem_without_the_bytes() {
        assert_eq!(parse_bundle(b""), Err(BundleError::Empty));
        assert_eq!(parse_bundle(b"just text\n"), Err(BundleError::Empty));
        let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n";
        let e = parse_bundle(key.as_bytes()).unwrap_err();
        assert_eq!(e, BundleError::NotPem("block 1 is not a CERTIFICATE".into()));
        assert!(!e.to_string().contains("MC4C"));
        let truncated = CA.replace("-----END CERTIFICATE-----\n", "");
        assert!(matches!(parse_bundle(truncated.as_bytes()), Err(BundleError::NotPem(_))));
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(parse_bundle(garbage.as_bytes()), Err(BundleError::NotACertificate(1)));
    }

    #[test]
    fn a_real_bundle_round_trips_through_pem() {
        let two = format!("{CA}\n{CA}");
        let certificates = parse_bundle(two.as_bytes()).expect("a real CA parses");
        assert_eq!(certificates.len(), 2);
        assert_eq!(to_pem(&certificates[..1]), CA);
    }

    #[test]
    fn bundle_outcomes_name_object_and_key() {
        let what = || "ConfigMap corp-ca".to_string();
        assert_eq!(Bundle::check(what(), "ca.crt", None), Bundle::Missing("ConfigMap corp-ca".into()));
        assert_eq!(
            Bundle::check(what(), "ca.crt", Some(None)),
            Bundle::Missing("ConfigMap corp-ca key \"ca.crt\"".into())
        );
        assert_eq!(
            Bundle::check(what(), "ca.crt", Some(Some(b"secret-looking text".to_vec()))),
            Bundle::Invalid(
                "spec.caBundle: ConfigMap corp-ca key \"ca.crt\" holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                    .into()
            )
        );
        assert_eq!(Bundle::check(what(), "ca.crt", Some(Some(CA.into()))), Bundle::Found(CA.into()));
    }

    #[test]
    fn jks_layout_and_digest() {
        let certificate = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let store = jks(&[certificate], "changeit", 1_700_000_000_000);
        assert_eq!(&store[..12], &[0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 1]);
        assert_eq!(&store[12..16], &[0, 0, 0, 2], "a trusted-certificate entry");
        assert_eq!(&store[16..22], b"\x00\x04ca-1");
        let (body, digest) = store.split_at(store.len() - 20);
        let mut expected = Sha1::new();
        expected.update("changeit".encode_utf16().flat_map(u16::to_be_bytes).collect::<Vec<_>>());
        expected.update(b"Mighty Aphrodite");
        expected.update(body);
        assert_eq!(digest, expected.finalize().as_slice());
    }
}
