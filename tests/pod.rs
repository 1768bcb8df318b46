//! The rendered pod, run without a kubelet: the init container's `prepare-pod` copies real
//! Pebble into the shared volume, then each container runs that Pebble as its entrypoint with
//! its rendered layer, as the images' user (1001), under a read-only root in its own mount
//! namespace, all in one network namespace (`tests/pod/run.sh`).
//!
//! The root filesystem is Penpot's image layout (`tests/upstream/`) with STAND-INS for the
//! programs that cannot be fetched or built here: `run.sh` (the JVM backend) and `node` (the
//! exporter) are small scripts that report how they were started and then serve their port
//! with nginx. nginx itself is real, serving the rendered nginx.conf.
//!
//! Needs root (namespaces, chroot), `unshare`, `setpriv`, `curl`, `nginx` and `pebble` on PATH
//! (the e2e harness builds it). Skipped with a note otherwise, unless PENPOT_E2E_REQUIRED=1.

#[path = "e2e/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use penpot_operator::cli::render::render_documents;
use penpot_operator::render::paths;
use serde_json::Value;
use support::on_path;

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Why this machine cannot run the pod, if it cannot.
fn missing() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    ["unshare", "setpriv", "curl", "nginx", "pebble", "ip", "chroot"]
        .into_iter()
        .find(|p| on_path(p).is_none())
        .map(|p| format!("{p} is not on PATH"))
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The example Penpot's config Secret, decoded.
fn rendered_config() -> BTreeMap<String, String> {
    let example = std::fs::read_to_string(repo("docs/examples/penpot.yaml")).unwrap();
    let out = render_documents(&[("docs/examples/penpot.yaml".into(), example)], || "k".repeat(64)).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&out).unwrap();
    let config = docs.iter().find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "penpot-config").unwrap();
    config["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
            (k.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

/// A root filesystem in the images' layout: the rendered nginx configuration where the
/// Secret volume puts it, the stand-ins, the images' user, mount points for the volumes.
fn build_root(root: &Path, config: &BTreeMap<String, String>) {
    let stand_ins = repo("tests/pod/stand-ins");
    let read = |name: &str| std::fs::read_to_string(stand_ins.join(name)).unwrap();
    for dir in ["usr", "dev", "tmp", "pebble", "operator", "proc"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for (link, target) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        std::os::unix::fs::symlink(target, root.join(link)).unwrap();
    }
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\npenpot:x:1001:1001::/opt/penpot:/bin/bash\n",
        0o644,
    );
    write(&root.join("etc/group"), "root:x:0:\npenpot:x:1001:\n", 0o644);
    write(&root.join("etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n", 0o644);
    write(&root.join("etc/resolv.conf"), "search penpot.svc.cluster.local\nnameserver 127.0.0.53\n", 0o644);
    write(&root.join("etc/nginx/mime.types"), &std::fs::read_to_string("/etc/nginx/mime.types").unwrap(), 0o644);
    let nginx_dir = root.join(paths::NGINX_CONFIG_DIR.trim_start_matches('/'));
    write(&nginx_dir.join(paths::NGINX_CONF_FILE), &config[paths::NGINX_CONF_FILE], 0o644);
    write(&nginx_dir.join(paths::CONFIG_JS_FILE), &config[paths::CONFIG_JS_FILE], 0o644);
    let web = root.join(paths::WEB_ROOT.trim_start_matches('/'));
    write(&web.join("index.html"), "<html>penpot</html>\n", 0o644);
    let backend = root.join(paths::BACKEND_DIR.trim_start_matches('/'));
    write(&backend.join("run.sh"), &read("run.sh"), 0o755);
    let conf =
        |port: u16, name: &str| read("stand-in.conf.tmpl").replace("PORT", &port.to_string()).replace("NAME", name);
    write(&backend.join("stand-in.conf"), &conf(paths::BACKEND_PORT, "backend"), 0o644);
    let exporter = root.join(paths::EXPORTER_DIR.trim_start_matches('/'));
    write(&exporter.join("app.js"), "// stand-in\n", 0o644);
    write(&exporter.join("stand-in.conf"), &conf(paths::EXPORTER_PORT, "exporter"), 0o644);
    write(&root.join("opt/node/bin/node"), &read("node"), 0o755);
    // The images own /opt/penpot; the read-only root must still refuse writes there.
    Command::new("chown").args(["-R", "1001:1001"]).arg(root.join("opt/penpot")).status().unwrap();
    Command::new("chmod").arg("0755").arg(root).status().unwrap();
}

#[test]
fn pebble_injected_by_prepare_pod_runs_every_container_as_the_images_user() {
    if let Some(why) = missing() {
        assert!(std::env::var("PENPOT_E2E_REQUIRED").as_deref() != Ok("1"), "cannot run the pod: {why}");
        eprintln!("\n*** pod test SKIPPED: {why} ***\n");
        return;
    }
    let config = rendered_config();
    let work = tempfile::tempdir().unwrap();
    // The pod's user must reach the root through the temporary directory.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = work.path().join("root");
    build_root(&root, &config);
    for (container, layer) in [
        ("nginx", paths::NGINX_LAYER_FILE),
        ("penpot", paths::PENPOT_LAYER_FILE),
        ("exporter", paths::EXPORTER_LAYER_FILE),
    ] {
        write(&work.path().join("layers").join(container).join(layer), &config[layer], 0o644);
    }
    let out = Command::new("unshare")
        .args(["--mount", "--net", "--propagation", "private", "--fork", "bash"])
        .arg(repo("tests/pod/run.sh"))
        .arg(&root)
        .arg(work.path())
        .arg(env!("CARGO_BIN_EXE_penpot-operator"))
        .arg(on_path("pebble").unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{report}");
    assert!(!stdout.contains("FAIL"), "{report}");

    // Pebble started each service as the images' user, in the layer's working directory,
    // with HOME on a writable volume and the layer's environment.
    for facts in [
        "[backend] facts uid=1001 gid=1001 cwd=/opt/penpot/backend home=/tmp database=set",
        "[exporter] facts uid=1001 gid=1001 cwd=/opt/penpot/exporter home=/tmp script=app.js internal_uri=http://localhost:8080",
        "[backend] root read-only",
    ] {
        assert!(stdout.contains(facts), "missing {facts:?}:\n{report}");
    }
    // nginx routes to the stand-ins in the pod, and serves the rendered config.js.
    assert!(stdout.contains("api: X-Stand-In: backend"), "{report}");
    assert!(stdout.contains("export: X-Stand-In: exporter"), "{report}");
    assert!(stdout.contains("config.js: 1"), "{report}");
    // SIGTERM reached every Pebble, which stopped its services.
    for service in ["frontend", "backend", "exporter"] {
        assert!(stdout.contains(&format!("Service \"{service}\" stopped")), "{service} not stopped:\n{report}");
    }
}
