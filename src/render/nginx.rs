//! The frontend's nginx.conf and config.js, rendered here instead of by the image's entrypoint
//! so the configuration is declarative, works under a read-only root filesystem and can be
//! checked with `nginx -t` before it ships.
//!
//! Routing follows Penpot 2.17's nginx.conf.template: `/api/export` to the exporter, `/api`,
//! `/ws/notifications`, `/assets` and `/readyz` to the backend in the same pod, S3 redirects
//! fetched server-side, the single-page app for everything else.

use std::fmt::Write;

use super::paths;

pub struct NginxInputs<'a> {
    pub dns_resolver: &'a str,
    pub exporter: bool,
    pub air_gapped: bool,
}

/// Penpot's default upload limit (350 MiB), the same on the backend.
const MAX_BODY_SIZE: u64 = 367_001_600;

const SECURITY_HEADERS: &str = r#"add_header X-Content-Type-Options "nosniff" always;
add_header Referrer-Policy "strict-origin-when-cross-origin" always;
add_header X-Frame-Options "SAMEORIGIN" always;
add_header Permissions-Policy "camera=(), microphone=(), geolocation=()" always;"#;

const PROXY_HEADERS: &str = r#"proxy_set_header Host $http_host;
proxy_set_header X-Real-IP $remote_addr;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
proxy_http_version 1.1;"#;

pub fn nginx_conf(i: &NginxInputs) -> String {
    let backend = format!("http://127.0.0.1:{}", paths::BACKEND_PORT);
    let mut server = String::new();
    let mut loc = |path: &str, body: &str| {
        let _ = writeln!(server, "    location {path} {{");
        for line in body.lines() {
            let _ = writeln!(server, "      {line}");
        }
        let _ = writeln!(server, "    }}\n");
    };

    loc(&format!("= {}", paths::NGINX_HEALTH_PATH), "access_log off;\ndefault_type text/plain;\nreturn 200 \"ok\\n\";");
    loc(
        "= /js/config.js",
        &format!(
            "alias {}/{};\ndefault_type application/javascript;\nadd_header Cache-Control \"no-store\" always;\n{SECURITY_HEADERS}",
            paths::NGINX_CONFIG_DIR,
            paths::CONFIG_JS_FILE
        ),
    );
    if i.exporter {
        loc(
            "/api/export",
            &format!("proxy_pass http://127.0.0.1:{};\nproxy_buffering off;\n{PROXY_HEADERS}", paths::EXPORTER_PORT),
        );
    } else {
        loc("/api/export", "default_type text/plain;\nreturn 503 \"the exporter is disabled\\n\";");
    }
    loc("/api", &format!("proxy_pass {backend}/api;\nproxy_buffering off;\n{PROXY_HEADERS}"));
    loc(
        "/ws/notifications",
        &format!(
            "proxy_pass {backend}/ws/notifications;\n{PROXY_HEADERS}\nproxy_set_header Upgrade $http_upgrade;\nproxy_set_header Connection $connection_upgrade;"
        ),
    );
    loc("/readyz", &format!("access_log off;\nproxy_pass {backend}$request_uri;"));
    // The backend answers asset requests on S3 with a redirect to a presigned URL; nginx follows
    // it itself so the browser never needs to reach the object store.
    loc(
        "/assets",
        &format!(
            "proxy_pass {backend}/assets;\n{PROXY_HEADERS}\nrecursive_error_pages on;\nproxy_intercept_errors on;\nerror_page 301 302 307 = @handle_redirect;"
        ),
    );
    loc(
        "@handle_redirect",
        &format!(
            "set $redirect_uri \"$upstream_http_location\";\nset $redirect_host \"$upstream_http_x_host\";\nset $redirect_cache_control \"$upstream_http_cache_control\";\nset $real_mtype \"$upstream_http_x_mtype\";\nproxy_buffering off;\nproxy_set_header Host \"$redirect_host\";\nproxy_hide_header etag;\nproxy_hide_header x-amz-id-2;\nproxy_hide_header x-amz-request-id;\nproxy_hide_header x-amz-meta-server-side-encryption;\nproxy_hide_header x-amz-server-side-encryption;\nproxy_ssl_server_name on;\nproxy_pass $redirect_uri;\nadd_header x-internal-redirect \"$redirect_uri\";\nadd_header x-cache-control \"$redirect_cache_control\";\nadd_header cache-control \"$redirect_cache_control\";\nadd_header content-type \"$real_mtype\";\n{SECURITY_HEADERS}"
        ),
    );
    if !i.air_gapped {
        // Variables in proxy_pass make nginx resolve these names per request through the
        // resolver, so a cluster without internet DNS still starts (Penpot issue 6408).
        for (path, target, host) in [
            ("/internal/gfonts/css", "https://fonts.googleapis.com/css$is_args$args", "fonts.googleapis.com"),
            ("~ ^/internal/gfonts/font/(.*)$", "https://fonts.gstatic.com/s/$1", "fonts.gstatic.com"),
            (
                "~ ^/github/penpot-files/(.*)$",
                "https://raw.githubusercontent.com/penpot/penpot-files/refs/heads/main/$1",
                "raw.githubusercontent.com",
            ),
        ] {
            loc(
                path,
                &format!(
                    "proxy_pass {target};\nproxy_set_header Host {host};\nproxy_ssl_server_name on;\nproxy_hide_header Access-Control-Allow-Origin;\nproxy_hide_header Cross-Origin-Resource-Policy;\nadd_header Cache-Control \"max-age=86400\" always;\n{SECURITY_HEADERS}"
                ),
            );
        }
    }
    loc(
        "~* \\.(?:js|css|woff2?|ttf|otf|svg|png|jpe?g|gif|ico|webp|wasm|json|map)$",
        &format!(
            "try_files $uri =404;\nadd_header Cache-Control \"public, max-age=604800\" always;\n{SECURITY_HEADERS}"
        ),
    );
    loc(
        "/",
        &format!(
            "try_files $uri $uri/index.html /index.html;\nadd_header Cache-Control \"no-store, no-cache, max-age=0\" always;\n{SECURITY_HEADERS}"
        ),
    );

    format!(
        r#"# Rendered by penpot-operator; edits are overwritten.
worker_processes 2;
pid /tmp/nginx.pid;
error_log stderr warn;
daemon off;

events {{
  worker_connections 2048;
}}

http {{
  include {mime};
  default_type application/octet-stream;
  access_log /dev/stdout;
  server_tokens off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  types_hash_max_size 2048;

  client_body_temp_path /tmp/nginx-client-body;
  proxy_temp_path /tmp/nginx-proxy;
  fastcgi_temp_path /tmp/nginx-fastcgi;
  uwsgi_temp_path /tmp/nginx-uwsgi;
  scgi_temp_path /tmp/nginx-scgi;

  client_max_body_size {MAX_BODY_SIZE};
  proxy_connect_timeout 300s;
  proxy_send_timeout 300s;
  proxy_read_timeout 300s;
  send_timeout 300s;

  # Names looked up per request (S3 redirect targets, fonts) go through this resolver;
  # it ignores search domains, so in-cluster endpoints must be fully qualified.
  resolver {resolver} valid=30s ipv6=off;
  resolver_timeout 10s;

  gzip on;
  gzip_vary on;
  gzip_proxied any;
  gzip_types text/plain text/css application/json application/javascript application/wasm image/svg+xml;

  map $http_upgrade $connection_upgrade {{
    default upgrade;
    '' close;
  }}

  server {{
    listen {port} default_server;
    server_name _;
    charset utf-8;
    etag off;
    root {root};

{server}  }}

  # Read by the Prometheus exporter in the same pod; not reachable from outside it.
  server {{
    listen 127.0.0.1:{status_port};
    access_log off;
    location = /stub_status {{
      stub_status;
    }}
    location / {{
      return 404;
    }}
  }}
}}
"#,
        status_port = paths::NGINX_STATUS_PORT,
        mime = paths::NGINX_MIME_TYPES,
        resolver = i.dns_resolver,
        port = paths::NGINX_PORT,
        root = paths::WEB_ROOT,
    )
}

/// The frontend's runtime configuration, normally written into the bundle by the entrypoint.
pub fn config_js(frontend_flags: &str, public_uri: &str) -> String {
    // serde_json quotes and escapes, so no value can break out of the string literal.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!(
        "// Rendered by penpot-operator.\nvar penpotFlags = {};\nvar penpotPublicURI = {};\n",
        q(frontend_flags),
        q(public_uri)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_present() {
        let conf = nginx_conf(&NginxInputs { dns_resolver: "10.96.0.10", exporter: true, air_gapped: false });
        for needle in [
            "location /api/export",
            "proxy_pass http://127.0.0.1:6061",
            "proxy_pass http://127.0.0.1:6060/api;",
            "location /ws/notifications",
            "resolver 10.96.0.10",
            "listen 8080 default_server",
            "fonts.googleapis.com",
        ] {
            assert!(conf.contains(needle), "missing {needle}");
        }
        let gapped = nginx_conf(&NginxInputs { dns_resolver: "10.96.0.10", exporter: false, air_gapped: true });
        assert!(!gapped.contains("googleapis"));
        assert!(gapped.contains("the exporter is disabled"));
    }

    #[test]
    fn config_js_escapes() {
        let js = config_js("enable-x", "https://a/\";alert(1)//");
        assert!(js.contains(r#"var penpotPublicURI = "https://a/\";alert(1)//";"#), "{js}");
    }
}
