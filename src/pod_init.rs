//! `penpot-operator prepare-pod`: what a Penpot pod's init container does before the
//! workload containers start, as Juju's `containeragent init` does for sidecar charms.
//!
//! - Copies the operator image's static Pebble into the shared volume, where every workload
//!   container runs it as its entrypoint (the operator image is `base: bare`: no `cp`).
//! - Writes nginx's per-pod includes, which depend on the pod and so cannot be rendered by the
//!   operator: the `resolver` from the pod's own /etc/resolv.conf (what the frontend image's
//!   entrypoint does, which the read-only root rules out) and the `listen` lines, with IPv6
//!   when the pod has an IPv6 address.
//!
//! - With `spec.caBundle`, writes the trust files of `render::paths::CA_DIR` (see
//!   [`crate::trust`]): the image's public roots plus the user's CAs.
//!
//! The init container shares the pod's network namespace and /etc/resolv.conf, so what it
//! sees is what nginx will see.

use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(thiserror::Error, Debug)]
pub enum PrepareError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Bundle { path: PathBuf, source: crate::trust::BundleError },
    #[error(
        "{0} has no usable nameserver line, so nginx could not resolve S3 redirects or fonts; set spec.dnsResolver on the Penpot"
    )]
    NoNameserver(PathBuf),
}

/// Where the pod's facts are read from; tests point these at files of their own.
pub struct Sources<'a> {
    pub pebble: &'a Path,
    pub resolv_conf: &'a Path,
    /// Lists the IPv6 addresses of the network namespace; empty or absent without IPv6.
    pub if_inet6: &'a Path,
    /// The image's public roots, which the trust files start from.
    pub system_roots: &'a Path,
}

impl Default for Sources<'_> {
    fn default() -> Self {
        Sources {
            pebble: Path::new(crate::render::paths::OPERATOR_PEBBLE),
            resolv_conf: Path::new("/etc/resolv.conf"),
            if_inet6: Path::new("/proc/net/if_inet6"),
            system_roots: Path::new(crate::render::paths::SYSTEM_ROOTS),
        }
    }
}

/// What the pod is prepared with.
pub struct Settings<'a> {
    pub nginx_port: u16,
    /// `spec.dnsResolver`: nginx's resolver instead of the pod's nameservers.
    pub resolver: Option<&'a str>,
    /// `spec.caBundle` as the operator rendered it: trust files are written when set.
    pub ca_bundle: Option<&'a Path>,
}

/// Fills `into` with `bin/pebble`, `nginx/resolver.conf` and `nginx/listen.conf`. Safe to
/// run again on the same volume: every file is replaced whole.
pub fn prepare(into: &Path, settings: &Settings, from: &Sources) -> Result<(), PrepareError> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| PrepareError::Read { path: path.into(), source });
    // Absent when the kernel has no IPv6 at all.
    let ipv6 = std::fs::read(from.if_inet6).is_ok_and(|list| !list.trim_ascii().is_empty());
    let resolver = match settings.resolver {
        Some(server) => {
            format!("# Written by penpot-operator prepare-pod from spec.dnsResolver.\nresolver {server} valid=30s;\n")
        }
        None => {
            let resolv_conf = String::from_utf8_lossy(&read(from.resolv_conf)?).into_owned();
            let nameservers = nameservers(&resolv_conf);
            if nameservers.is_empty() {
                return Err(PrepareError::NoNameserver(from.resolv_conf.into()));
            }
            resolver_conf(&nameservers, ipv6)
        }
    };
    replace(&into.join("bin/pebble"), &read(from.pebble)?, 0o755)?;
    replace(&into.join("nginx/resolver.conf"), resolver.as_bytes(), 0o644)?;
    replace(&into.join("nginx/listen.conf"), listen_conf(settings.nginx_port, ipv6).as_bytes(), 0o644)?;
    if let Some(bundle) = settings.ca_bundle {
        let extra = crate::trust::parse_bundle(&read(bundle)?)
            .map_err(|source| PrepareError::Bundle { path: bundle.into(), source })?;
        // The image's roots as they are: one odd entry there must not stop the pod.
        let system = read(from.system_roots)?;
        let public: Vec<_> = CertificateDer::pem_slice_iter(&system).filter_map(Result::ok).collect();
        let all: Vec<_> = public.iter().chain(&extra).cloned().collect();
        replace(&into.join("ca/extra.pem"), crate::trust::to_pem(&extra).as_bytes(), 0o644)?;
        replace(&into.join("ca/ca-certificates.crt"), crate::trust::to_pem(&all).as_bytes(), 0o644)?;
        // A fixed creation time: the same bundle gives the same store.
        let store = crate::trust::jks(&all, crate::trust::TRUST_STORE_PASSWORD, 0);
        replace(&into.join("ca/truststore.jks"), &store, 0o644)?;
    }
    Ok(())
}

/// The nameservers of a resolv.conf that nginx can use: zoned link-local addresses
/// (`fe80::1%eth0`) are not, and anything unparsable is skipped like the C library does.
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        .filter_map(|address| address.parse().ok())
        .collect()
}

/// nginx's `resolver`: IPv6 servers bracketed; no AAAA lookups when the pod has no IPv6.
pub fn resolver_conf(nameservers: &[IpAddr], ipv6: bool) -> String {
    let mut line = String::from("# Written by penpot-operator prepare-pod from /etc/resolv.conf.\nresolver");
    for server in nameservers {
        match server {
            IpAddr::V4(v4) => write!(line, " {v4}"),
            IpAddr::V6(v6) => write!(line, " [{v6}]"),
        }
        .expect("writing to a String cannot fail");
    }
    line.push_str(if ipv6 { " valid=30s;\n" } else { " valid=30s ipv6=off;\n" });
    line
}

/// nginx's `listen` lines: IPv4 always (loopback has it even in IPv6-only pods), IPv6 too
/// when the pod has it.
pub fn listen_conf(port: u16, ipv6: bool) -> String {
    let mut conf = format!("# Written by penpot-operator prepare-pod.\nlisten {port} default_server;\n");
    if ipv6 {
        conf.push_str(&format!("listen [::]:{port} default_server;\n"));
    }
    conf
}

/// Writes `path` whole through a temporary file and a rename: a container that reads it
/// never sees half a file, and a Pebble binary in use is replaced, not overwritten.
fn replace(path: &Path, contents: &[u8], mode: u32) -> Result<(), PrepareError> {
    let failed = |source| PrepareError::Write { path: path.into(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(failed)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_from_resolv_conf() {
        let conf = "search ns.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\n# nameserver 1.1.1.1\nnameserver fd00::a\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:5\n";
        let found = nameservers(conf);
        assert_eq!(found, ["10.96.0.10".parse::<IpAddr>().unwrap(), "fd00::a".parse().unwrap()]);
        assert_eq!(
            resolver_conf(&found, false).lines().last(),
            Some("resolver 10.96.0.10 [fd00::a] valid=30s ipv6=off;")
        );
        assert!(resolver_conf(&found, true).ends_with("resolver 10.96.0.10 [fd00::a] valid=30s;\n"));
    }

    #[test]
    fn listens_on_ipv6_only_when_the_pod_has_it() {
        assert!(!listen_conf(8080, false).contains("[::]"));
        assert!(listen_conf(8080, true).contains("listen [::]:8080 default_server;"));
    }

    #[test]
    fn prepares_a_volume_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let pebble = file("pebble-src", "#!binary");
        let resolv = file("resolv.conf", "nameserver 10.0.0.10\n");
        let inet6 = file("if_inet6", "00000000000000000000000000000001 01 80 10 80       lo\n");
        let into = dir.path().join("operator");
        let roots = file("roots.pem", "");
        let sources = Sources { pebble: &pebble, resolv_conf: &resolv, if_inet6: &inet6, system_roots: &roots };
        let pod = Settings { nginx_port: 8080, resolver: None, ca_bundle: None };
        prepare(&into, &pod, &sources).unwrap();
        // Twice: a restarted init container finds its own files there.
        prepare(&into, &pod, &sources).unwrap();
        let copied = into.join("bin/pebble");
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "#!binary");
        assert_eq!(std::fs::metadata(&copied).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(std::fs::read_to_string(into.join("nginx/listen.conf")).unwrap().contains("[::]:8080"));

        let empty = file("empty-resolv.conf", "search x\n");
        let no_dns = Sources { resolv_conf: &empty, ..sources };
        let e = prepare(&into, &pod, &no_dns).unwrap_err().to_string();
        assert!(e.contains("empty-resolv.conf") && e.contains("spec.dnsResolver"), "{e}");
        // spec.dnsResolver set: the pod's resolv.conf is not needed.
        prepare(&into, &Settings { resolver: Some("10.96.0.10"), ..pod }, &no_dns).unwrap();
        let resolver = std::fs::read_to_string(into.join("nginx/resolver.conf")).unwrap();
        assert!(resolver.ends_with("resolver 10.96.0.10 valid=30s;\n"), "{resolver}");
        let missing = dir.path().join("no-pebble");
        let e = prepare(&into, &pod, &Sources { pebble: &missing, ..sources }).unwrap_err();
        assert!(e.to_string().contains("no-pebble"), "{e}");
        assert!(!into.join("ca").exists(), "no trust files without spec.caBundle");
    }

    /// `spec.caBundle`: the public roots plus the user's CA, as PEM and as a JKS store; the
    /// user's alone for Node. A bad bundle names its file.
    #[test]
    fn writes_the_trust_files_from_the_bundle_and_the_public_roots() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca = crate::trust::tests::CA;
        let pebble = file("pebble-src", "#!binary");
        let resolv = file("resolv.conf", "nameserver 10.0.0.10\n");
        let roots = file("roots.pem", &format!("# a public root\n{ca}"));
        let bundle = file("bundle.pem", ca);
        let into = dir.path().join("operator");
        let sources = Sources { pebble: &pebble, resolv_conf: &resolv, if_inet6: &roots, system_roots: &roots };
        let pod = Settings { nginx_port: 8080, resolver: None, ca_bundle: Some(&bundle) };
        prepare(&into, &pod, &sources).unwrap();
        let read = |name: &str| std::fs::read(into.join("ca").join(name)).unwrap();
        assert_eq!(String::from_utf8(read("extra.pem")).unwrap(), ca);
        assert_eq!(String::from_utf8(read("ca-certificates.crt")).unwrap(), format!("{ca}{ca}"));
        assert_eq!(&read("truststore.jks")[..12], &[0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 2]);

        let bad = file("bad.pem", "not a certificate");
        let e = prepare(&into, &Settings { ca_bundle: Some(&bad), ..pod }, &sources).unwrap_err().to_string();
        assert!(e.contains("bad.pem") && e.contains("no PEM certificate"), "{e}");
    }
}
