//! The frontend's nginx.conf and config.js, rendered here instead of by the image's entrypoint
//! so the configuration is declarative, works under a read-only root filesystem and can be
//! checked with `nginx -t` before it ships.
//!
//! Routing follows Penpot 2.17's nginx.conf.template: `/api/export` to the exporter, `/api`,
//! `/ws/notifications`, `/assets` and `/readyz` to the backend in the same pod, S3 redirects
//! fetched server-side, filesystem assets sent from the volume (`/internal/assets`), the
//! single-page app for everything else.

use super::paths;
use super::template::fill;

pub struct NginxInputs {
    pub exporter: bool,
    pub air_gapped: bool,
    /// `client_max_body_size`, the backend's limit too.
    pub max_body_size: u64,
    /// Assets on the `storage.filesystem` volume, served from [`paths::ASSETS_DIR`].
    pub filesystem_storage: bool,
    /// `spec.caBundle` is set: S3 redirects are verified against the public roots plus it.
    pub private_ca: bool,
}

const NGINX_CONF: &str = include_str!("nginx/nginx.conf.tmpl");
const EXPORT_ENABLED: &str = include_str!("nginx/export-enabled.tmpl");
const EXPORT_DISABLED: &str = include_str!("nginx/export-disabled.tmpl");
/// Google Fonts and the GitHub templates proxied. Variables in `proxy_pass` make nginx
/// resolve these names per request through the resolver, so a cluster without internet DNS
/// still starts (Penpot issue 6408); air-gapped clusters get none of them.
const FONTS: &str = include_str!("nginx/fonts.tmpl");
const ASSETS_FILESYSTEM: &str = include_str!("nginx/assets-filesystem.tmpl");
const REDIRECT_VERIFY: &str = include_str!("nginx/redirect-verify.tmpl");

pub fn nginx_conf(i: &NginxInputs) -> String {
    let backend = format!("http://127.0.0.1:{}", paths::BACKEND_PORT);
    let exporter_port = paths::EXPORTER_PORT.to_string();
    let export =
        if i.exporter { fill(EXPORT_ENABLED, &[("exporter_port", &exporter_port)]) } else { EXPORT_DISABLED.into() };
    let config_js = format!("{}/{}", paths::NGINX_CONFIG_DIR, paths::CONFIG_JS_FILE);
    let redirect_tls = if i.private_ca {
        fill(REDIRECT_VERIFY, &[("ca_certificates", paths::CA_CERTIFICATES)])
    } else {
        String::new()
    };
    let assets = if i.filesystem_storage {
        fill(ASSETS_FILESYSTEM, &[("assets_dir", paths::ASSETS_DIR)])
    } else {
        String::new()
    };
    fill(
        NGINX_CONF,
        &[
            ("export_locations", &export),
            ("font_locations", if i.air_gapped { "" } else { FONTS }),
            ("assets_location", &assets),
            ("redirect_tls", &redirect_tls),
            ("mime_types", paths::NGINX_MIME_TYPES),
            ("max_body_size", &i.max_body_size.to_string()),
            // Written by the init container (`prepare-pod`): spec.dnsResolver or the pod's own.
            ("resolver_include", paths::NGINX_RESOLVER_INCLUDE),
            ("listen_include", paths::NGINX_LISTEN_INCLUDE),
            ("web_root", paths::WEB_ROOT),
            ("health_path", paths::NGINX_HEALTH_PATH),
            ("config_js", &config_js),
            ("backend", &backend),
        ],
    )
}

/// The frontend's runtime configuration, normally written into the bundle by the entrypoint.
/// `oidc_name` labels the OIDC login button.
pub fn config_js(frontend_flags: &str, public_uri: &str, oidc_name: Option<&str>) -> String {
    // serde_json quotes and escapes, so no value can break out of the string literal.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let mut js = format!(
        "// Rendered by penpot-operator.\nvar penpotFlags = {};\nvar penpotPublicURI = {};\n",
        q(frontend_flags),
        q(public_uri)
    );
    if let Some(name) = oidc_name {
        js.push_str(&format!("var penpotOIDCName = {};\n", q(name)));
    }
    js
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_present() {
        let conf = nginx_conf(&NginxInputs {
            exporter: true,
            air_gapped: false,
            max_body_size: 367_001_600,
            filesystem_storage: false,
            private_ca: false,
        });
        for needle in [
            "location ^~ /api/export",
            "proxy_pass http://127.0.0.1:6061",
            "proxy_pass http://127.0.0.1:6060/api;",
            "location ^~ /ws/notifications",
            "include /operator/nginx/resolver.conf;",
            "include /operator/nginx/listen.conf;",
            "fonts.googleapis.com",
        ] {
            assert!(conf.contains(needle), "missing {needle}");
        }
        let gapped = nginx_conf(&NginxInputs {
            exporter: false,
            air_gapped: true,
            max_body_size: 1_048_576,
            filesystem_storage: true,
            private_ca: true,
        });
        assert!(!gapped.contains("googleapis"));
        assert!(gapped.contains("the exporter is disabled"));
        assert!(gapped.contains("location /internal/assets {\n      internal;\n      alias /opt/data/assets;"));
        assert!(!conf.contains("/internal/assets"), "no volume alias with S3");
        assert!(gapped.contains(
            "proxy_ssl_verify on;\n      proxy_ssl_verify_depth 4;\n      proxy_ssl_trusted_certificate /operator/ca/ca-certificates.crt;\n      proxy_pass $redirect_uri;"
        ));
        assert!(!conf.contains("proxy_ssl_verify"), "upstream's behaviour without a bundle");
    }

    #[test]
    fn config_js_escapes() {
        let js = config_js("enable-x", "https://a/\";alert(1)//", Some("Corp \"SSO\""));
        assert!(js.contains(r#"var penpotPublicURI = "https://a/\";alert(1)//";"#), "{js}");
        assert!(js.contains(r#"var penpotOIDCName = "Corp \"SSO\"";"#), "{js}");
        assert!(!config_js("", "https://a/", None).contains("penpotOIDCName"));
    }
}
