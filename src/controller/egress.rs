//! Where the operator's own HTTP requests may go. Tenants choose the OIDC issuer the operator
//! fetches, so unchecked it would fetch whatever they point it at from inside the cluster:
//! the cloud's metadata service, the operator's own loopback, the API server, a kubelet.
//! Addresses are checked after DNS resolution, and the connection uses exactly the addresses
//! checked (the resolver below hands them to the HTTP client), so a second lookup cannot
//! rebind the name to a refused address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Ports of node agents and the control plane's store, refused on any address.
const REFUSED_PORTS: [u16; 4] = [10250, 10255, 2379, 2380];

/// Cloud metadata services outside the link-local range.
const METADATA: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)), // Alibaba Cloud
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254)), // AWS over IPv6
];

#[derive(Clone, Debug, Default)]
pub struct Egress {
    /// The API server's own addresses (the `kubernetes` Service and the configured server).
    api_server: Vec<IpAddr>,
    /// Host names an admin allowed with `--oidc-allow-host`: not checked at all.
    allowed_hosts: Vec<String>,
}

impl Egress {
    pub fn new(api_server: Vec<IpAddr>, allowed_hosts: Vec<String>) -> Self {
        Self { api_server, allowed_hosts: allowed_hosts.iter().map(|h| normal(h)).collect() }
    }

    /// Whether an admin allowed `host` (a name, or an address in either notation).
    pub fn allows_host(&self, host: &str) -> bool {
        self.allowed_hosts.contains(&normal(host))
    }

    /// Why the operator will not connect to `port` on any address, or `None`.
    pub fn refused_port(&self, port: u16) -> Option<&'static str> {
        REFUSED_PORTS.contains(&port).then_some("a kubelet or etcd port")
    }

    /// Why the operator will not connect to `addr`, or `None` when it may.
    pub fn refusal(&self, addr: SocketAddr) -> Option<&'static str> {
        if let Some(why) = self.refused_port(addr.port()) {
            return Some(why);
        }
        // An IPv4 address written as IPv6 (::ffff:a.b.c.d) is that IPv4 address.
        let ip = match addr.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let class = match ip {
            IpAddr::V4(v4) if v4.is_loopback() => Some("a loopback address"),
            IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address (cloud metadata)"),
            IpAddr::V4(v4) if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() => {
                Some("not a unicast address")
            }
            IpAddr::V6(v6) if v6.is_loopback() => Some("a loopback address"),
            IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address"),
            IpAddr::V6(v6) if v6.is_unspecified() || v6.is_multicast() => Some("not a unicast address"),
            _ => None,
        };
        class
            .or_else(|| self.api_server.contains(&ip).then_some("the Kubernetes API server"))
            .or_else(|| METADATA.contains(&ip).then_some("a cloud metadata service"))
    }
}

impl Egress {
    /// Why the operator will not fetch `url`, checked before any lookup: an address in the
    /// URL never reaches the resolver, and the port is only in the URL. Names are checked by
    /// [`Resolver`] on what they resolve to.
    pub fn check_url(&self, url: &str) -> Result<(), UrlRefused> {
        let parsed = url::Url::parse(url)?;
        if self.allows_host(parsed.host_str().unwrap_or_default()) {
            return Ok(());
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        let refused = match target(&parsed) {
            Some(Target::Address(ip)) => self.refusal(SocketAddr::new(ip, port)),
            Some(Target::Name(_)) => self.refused_port(port),
            None => Some("no host"),
        };
        refused.map_or(Ok(()), |why| Err(UrlRefused::Fenced(why)))
    }
}

/// Why [`Egress::check_url`] refused a URL.
#[derive(Debug, thiserror::Error)]
pub enum UrlRefused {
    #[error(transparent)]
    Unparsed(#[from] url::ParseError),
    #[error("refused destination: {0}")]
    Fenced(&'static str),
}

/// An HTTP client fenced by `egress` (its resolver, no redirects, `timeout`) that trusts the
/// public roots plus `ca_bundle` (checked PEM). Call [`Egress::check_url`] before each request.
pub fn fenced_client(
    egress: &Arc<Egress>,
    ca_bundle: Option<&str>,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(Resolver(egress.clone())));
    if let Some(pem) = ca_bundle {
        for certificate in reqwest::Certificate::from_pem_bundle(pem.as_bytes())? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build()
}

/// A host as compared: no brackets, no trailing dot, lowercase.
fn normal(host: &str) -> String {
    host.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_lowercase()
}

/// What a URL points at: a name to resolve, or the address it already is.
pub enum Target {
    Name(String),
    Address(IpAddr),
}

pub fn target(url: &url::Url) -> Option<Target> {
    Some(match url.host()? {
        url::Host::Domain(name) => Target::Name(name.to_string()),
        url::Host::Ipv4(v4) => Target::Address(v4.into()),
        url::Host::Ipv6(v6) => Target::Address(v6.into()),
    })
}

/// A refused destination, as the HTTP client's error source.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to refused addresses ({why})")]
pub struct Refused {
    pub host: String,
    pub why: &'static str,
}

/// The DNS resolver of the operator's HTTP client: the system's lookup, then [`Egress`].
pub struct Resolver(pub Arc<Egress>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if egress.allows_host(&host) {
                return Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs);
            }
            // Port 0 here: the port is checked on the URL, before any lookup.
            let mut why = "no address";
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match egress.refusal(*a) {
                    Some(reason) => {
                        why = reason;
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused { host, why }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The API server's addresses, as this process reaches it: the in-cluster `kubernetes`
/// Service and the configured server URL's host, resolved.
pub async fn api_server_addresses(cluster_url: &str) -> Vec<IpAddr> {
    // Only the addresses count, so names are looked up with port 0.
    let mut names: Vec<String> = std::env::var("KUBERNETES_SERVICE_HOST").into_iter().collect();
    let mut found = Vec::new();
    match url::Url::parse(cluster_url).ok().as_ref().and_then(target) {
        Some(Target::Name(name)) => names.push(name),
        Some(Target::Address(ip)) => found.push(ip),
        None => {}
    }
    for name in names {
        if let Ok(addrs) = tokio::net::lookup_host((name.as_str(), 0)).await {
            found.extend(addrs.map(|a| a.ip()));
        }
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(addr: &str) -> SocketAddr {
        addr.parse().unwrap()
    }

    #[test]
    fn refuses_what_only_the_cluster_can_reach() {
        let egress = Egress::new(vec!["10.96.0.1".parse().unwrap(), "192.0.2.2".parse().unwrap()], vec![]);
        for (addr, why) in [
            ("169.254.169.254:80", "a link-local address (cloud metadata)"),
            ("[fd00:ec2::254]:80", "a cloud metadata service"),
            ("100.100.100.200:80", "a cloud metadata service"),
            ("127.0.0.1:8080", "a loopback address"),
            ("127.1.2.3:443", "a loopback address"),
            ("[::1]:443", "a loopback address"),
            ("[::ffff:127.0.0.1]:443", "a loopback address"),
            ("[::ffff:169.254.169.254]:80", "a link-local address (cloud metadata)"),
            ("[fe80::1]:443", "a link-local address"),
            ("0.0.0.0:443", "not a unicast address"),
            ("10.96.0.1:443", "the Kubernetes API server"),
            ("192.0.2.2:6443", "the Kubernetes API server"),
            ("10.0.0.7:10250", "a kubelet or etcd port"),
            ("10.0.0.7:2379", "a kubelet or etcd port"),
        ] {
            assert_eq!(egress.refusal(at(addr)), Some(why), "{addr}");
        }
        // In-cluster and public identity providers stay reachable.
        for addr in ["10.0.0.7:8080", "10.96.12.4:443", "203.0.113.9:443", "[2001:db8::1]:443"] {
            assert_eq!(egress.refusal(at(addr)), None, "{addr}");
        }
    }

    #[test]
    fn allowed_hosts_match_whatever_their_case_and_trailing_dot() {
        let egress = Egress::new(vec![], vec!["Keycloak.Example.".into()]);
        assert!(egress.allows_host("keycloak.example"));
        assert!(egress.allows_host("KEYCLOAK.example."));
        assert!(!egress.allows_host("evil.example"));
        // An address allowed in URL notation matches the resolver's and the URL's forms.
        let egress = Egress::new(vec![], vec!["[FD00::5]".into()]);
        assert!(egress.allows_host("fd00::5") && egress.allows_host("[fd00::5]"));
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback() {
        use reqwest::dns::Resolve;
        let resolver = Resolver(Arc::new(Egress::default()));
        let Err(e) = resolver.resolve("localhost".parse().unwrap()).await else { panic!("localhost must be refused") };
        assert!(e.to_string().starts_with("localhost resolves only to refused addresses"), "{e}");
        let allowed = Resolver(Arc::new(Egress::new(vec![], vec!["localhost".into()])));
        assert!(allowed.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
