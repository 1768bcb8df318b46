//! Ports, paths and commands shared by the layers, the nginx config, the pod template and the
//! workload rock (rock/penpot/rockcraft.yaml installs the files at these paths).

/// nginx, the only port users reach.
pub const NGINX_PORT: u16 = 8080;
pub const BACKEND_PORT: u16 = 6060;
pub const EXPORTER_PORT: u16 = 6061;
/// nginx's stub_status, loopback only: the exporter reads it.
pub const NGINX_STATUS_PORT: u16 = 8081;
/// The nginx Prometheus exporter.
pub const NGINX_EXPORTER_PORT: u16 = 9113;
pub const NGINX_EXPORTER_COMMAND: &str = "/usr/bin/prometheus-nginx-exporter --nginx.scrape-uri=http://127.0.0.1:8081/stub_status --web.listen-address=:9113";
/// Pebble's health listener per container, in Juju's order (containers sorted by name).
pub const PEBBLE_PORT_NGINX: u16 = 38813;
pub const PEBBLE_PORT_PENPOT: u16 = 38814;

/// Pebble's state directory: an emptyDir, so it is writable under a read-only root.
pub const PEBBLE_DIR: &str = "/pebble";
pub const PEBBLE_LAYERS_DIR: &str = "/pebble/layers";
pub const PEBBLE_BINARY: &str = "/usr/bin/pebble";
pub const PENPOT_LAYER_FILE: &str = "001-penpot.yaml";
pub const NGINX_LAYER_FILE: &str = "001-nginx.yaml";

pub const BACKEND_DIR: &str = "/opt/penpot/backend";
pub const BACKEND_COMMAND: &str = "/opt/penpot/backend/run.sh";
pub const EXPORTER_DIR: &str = "/opt/penpot/exporter";
pub const EXPORTER_COMMAND: &str = "/opt/node/bin/node app.js";

pub const NGINX_CONFIG_DIR: &str = "/etc/penpot-nginx";
pub const NGINX_CONF_FILE: &str = "nginx.conf";
pub const CONFIG_JS_FILE: &str = "config.js";
pub const NGINX_COMMAND: &str = "/usr/sbin/nginx -c /etc/penpot-nginx/nginx.conf -e stderr";
/// Served by nginx itself, so the frontend's readiness does not depend on the backend's.
pub const NGINX_HEALTH_PATH: &str = "/_penpot/nginx-ready";
/// The compiled single-page app in the workload image.
pub const WEB_ROOT: &str = "/var/www/app";
/// mime.types of the image's nginx package.
pub const NGINX_MIME_TYPES: &str = "/etc/nginx/mime.types";

/// The non-root user the workload rock runs as (`_daemon_`).
pub const RUN_AS_USER: i64 = 584792;
