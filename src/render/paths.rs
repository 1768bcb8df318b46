//! Ports, paths, users and commands shared by the layers, the nginx config and the pod
//! template. The workload paths are those of Penpot's own images (`penpotapp/frontend`,
//! `backend`, `exporter`; `tests/upstream/` records their layout per release and a test
//! checks every path here against it).

/// nginx, the only port users reach.
pub const NGINX_PORT: u16 = 8080;
pub const BACKEND_PORT: u16 = 6060;
pub const EXPORTER_PORT: u16 = 6061;
/// Pebble's health listener per container: Juju's ports, 38813 up, in container-name order.
pub const PEBBLE_PORT_EXPORTER: u16 = 38813;
pub const PEBBLE_PORT_NGINX: u16 = 38814;
pub const PEBBLE_PORT_PENPOT: u16 = 38815;

/// Where the init container leaves what it prepares for the workload containers (an
/// emptyDir, read-only in them): Pebble and nginx's per-pod includes.
pub const OPERATOR_DIR: &str = "/operator";
/// The injected Pebble, every workload container's entrypoint.
pub const PEBBLE_BINARY: &str = "/operator/bin/pebble";
/// nginx's `resolver`, from the pod's /etc/resolv.conf.
pub const NGINX_RESOLVER_INCLUDE: &str = "/operator/nginx/resolver.conf";
/// nginx's `listen` lines: IPv4, plus IPv6 when the pod has it.
pub const NGINX_LISTEN_INCLUDE: &str = "/operator/nginx/listen.conf";
/// The static Pebble inside the operator's image (every rock carries one there).
pub const OPERATOR_PEBBLE: &str = "/usr/bin/pebble";
pub const OPERATOR_BINARY: &str = "/usr/bin/penpot-operator";

/// Pebble's state directory: an emptyDir, so it is writable under a read-only root.
pub const PEBBLE_DIR: &str = "/pebble";
pub const PEBBLE_LAYERS_DIR: &str = "/pebble/layers";
pub const PENPOT_LAYER_FILE: &str = "001-penpot.yaml";
pub const NGINX_LAYER_FILE: &str = "001-nginx.yaml";
pub const EXPORTER_LAYER_FILE: &str = "001-exporter.yaml";

/// The images' own writable scratch space, an emptyDir per container; also HOME.
pub const TMP_DIR: &str = "/tmp";

pub const BACKEND_DIR: &str = "/opt/penpot/backend";
/// `run.sh` resolves penpot.jar and log4j2.xml relative to the working directory.
pub const BACKEND_COMMAND: &str = "/bin/bash /opt/penpot/backend/run.sh";
pub const EXPORTER_DIR: &str = "/opt/penpot/exporter";
pub const EXPORTER_COMMAND: &str = "/opt/node/bin/node app.js";

pub const NGINX_CONFIG_DIR: &str = "/etc/penpot-nginx";
pub const NGINX_CONF_FILE: &str = "nginx.conf";
pub const CONFIG_JS_FILE: &str = "config.js";
/// The image's entrypoint script is skipped: it writes into the read-only root.
pub const NGINX_COMMAND: &str = "/usr/sbin/nginx -c /etc/penpot-nginx/nginx.conf -e stderr";
/// Served by nginx itself, so the frontend's readiness does not depend on the backend's.
pub const NGINX_HEALTH_PATH: &str = "/_penpot/nginx-ready";
/// The compiled single-page app in the frontend image.
pub const WEB_ROOT: &str = "/var/www/app";
/// The frontend image's mime.types (Penpot's own, with wasm and transit types).
pub const NGINX_MIME_TYPES: &str = "/etc/nginx/mime.types";

/// Where the backend keeps assets with filesystem storage and nginx serves them from: the
/// frontend image's `/internal/assets` alias is this path, and both images create it.
pub const ASSETS_DIR: &str = "/opt/data/assets";

/// `spec.caBundle` in the config Secret, mounted into the init container only.
pub const CA_BUNDLE_KEY: &str = "ca-bundle.pem";
pub const INIT_CA_DIR: &str = "/etc/penpot-operator/ca";
/// The public roots of the operator image (its rock's `ca-certificates_data`), which the
/// pod's trust files start from.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// What the init container writes for the workload containers from `spec.caBundle`: the
/// public roots plus the user's as PEM (nginx) and as a JKS store (the JVM), and the user's
/// alone (Node adds them to its own).
pub const CA_DIR: &str = "/operator/ca";
pub const CA_CERTIFICATES: &str = "/operator/ca/ca-certificates.crt";
pub const CA_EXTRA: &str = "/operator/ca/extra.pem";
pub const TRUST_STORE: &str = "/operator/ca/truststore.jks";

/// The user of all three images (`penpot`, 1001:1001).
pub const RUN_AS_USER: i64 = 1001;
