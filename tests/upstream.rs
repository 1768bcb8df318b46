//! The pod the operator renders against the layout of Penpot's published images
//! (`tests/upstream/<version>.yaml`, recorded from the Dockerfiles at the release tag): every
//! image exists for the version, every command, path and working directory the pod spec and
//! the Pebble layers use is in the image that runs it, every container runs as that image's
//! user, and no mount hides a path a service needs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use penpot_operator::cli::render::render_documents;
use penpot_operator::render::{paths, version::Version};
use serde_json::Value;

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The example Penpot, rendered as `penpot-operator render` prints it.
fn rendered() -> Vec<Value> {
    let example = std::fs::read_to_string(repo("docs/examples/penpot.yaml")).unwrap();
    let out = render_documents(&[("docs/examples/penpot.yaml".into(), example)], || "k".repeat(64)).unwrap();
    serde_saphyr::from_multiple::<Value>(&out).unwrap().into_iter().filter(|d| !d.is_null()).collect()
}

fn layout() -> Value {
    let file = repo(&format!("tests/upstream/{}.yaml", Version::CURRENT));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("no recorded layout {}: {e}", file.display()));
    serde_saphyr::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Which upstream image each container runs.
fn image_of(container: &str) -> &'static str {
    match container {
        "nginx" => "frontend",
        "penpot" => "backend",
        "exporter" => "exporter",
        other => panic!("unexpected container {other}"),
    }
}

struct Image {
    executables: Vec<String>,
    files: Vec<String>,
    dirs: Vec<String>,
}

impl Image {
    fn of(layout: &Value, name: &str) -> Image {
        let i = &layout["images"][name];
        Image { executables: strings(&i["executables"]), files: strings(&i["files"]), dirs: strings(&i["dirs"]) }
    }

    /// The first word of a command is an executable of the image; absolute paths among its
    /// arguments are files or directories of it, or writable scratch space.
    fn check_command(&self, who: &str, command: &str) {
        let mut words = command.split_whitespace();
        let program = words.next().unwrap_or_default();
        assert!(self.executables.iter().any(|e| e == program), "{who}: {program} is not in the image");
        for arg in words.filter(|w| w.starts_with('/')) {
            let known = self.files.iter().chain(&self.dirs).any(|f| f == arg)
                || arg.starts_with(paths::NGINX_CONFIG_DIR)
                || arg.starts_with(paths::TMP_DIR);
            assert!(known, "{who}: argument {arg} is not in the image");
        }
    }

    fn check_dir(&self, who: &str, dir: &str) {
        assert!(self.dirs.iter().any(|d| d == dir), "{who}: working directory {dir} is not in the image");
    }
}

fn decode(config: &Value, key: &str) -> String {
    let b64 = config["data"][key].as_str().unwrap_or_else(|| panic!("config has no {key}"));
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

#[test]
fn the_pod_fits_the_published_images() {
    let docs = rendered();
    let layout = layout();
    let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").expect("a StatefulSet");
    let config = docs.iter().find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "penpot-config").unwrap();
    let pod = &sts["spec"]["template"]["spec"];
    let version = layout["version"].as_str().unwrap();

    let uid = pod["securityContext"]["runAsUser"].as_i64().unwrap();
    assert_eq!(pod["securityContext"]["runAsGroup"].as_i64(), Some(uid));
    assert_eq!(pod["securityContext"]["fsGroup"].as_i64(), Some(uid));

    let layers: BTreeMap<&str, &str> = [
        ("nginx", paths::NGINX_LAYER_FILE),
        ("penpot", paths::PENPOT_LAYER_FILE),
        ("exporter", paths::EXPORTER_LAYER_FILE),
    ]
    .into();
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 3, "nginx, penpot and the exporter");
    for c in containers {
        let name = c["name"].as_str().unwrap();
        let upstream = image_of(name);
        let recorded = &layout["images"][upstream];
        // The example sets no images: Penpot's own, at the version the layout records.
        assert_eq!(c["image"].as_str().unwrap(), format!("{}:{version}", recorded["image"].as_str().unwrap()));
        assert_eq!(recorded["user"]["uid"].as_i64(), Some(uid), "{name} runs as another user than its image's");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true, "{name}");
        let image = Image::of(&layout, upstream);

        // Pebble is injected, not looked for in the image.
        assert_eq!(c["command"][0], paths::PEBBLE_BINARY);
        let mounts: Vec<&str> =
            c["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
        assert!(mounts.contains(&paths::OPERATOR_DIR), "{name}: Pebble's volume is not mounted");
        for mount in &mounts {
            for needed in image.files.iter().chain(&image.dirs).chain(&image.executables) {
                assert!(
                    !needed.starts_with(&format!("{mount}/")) && needed != mount,
                    "{name}: the mount at {mount} hides {needed}"
                );
            }
        }
        if let Some(dir) = c["workingDir"].as_str() {
            image.check_dir(name, dir);
        }
        let env: BTreeMap<&str, &str> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
            .collect();
        assert!(mounts.contains(&env["HOME"]), "{name}: HOME {} is not writable", env["HOME"]);

        let layer: Value = serde_saphyr::from_str(&decode(config, layers[name])).unwrap();
        for (service, spec) in layer["services"].as_object().unwrap() {
            let who = format!("{name}/{service}");
            image.check_command(&who, spec["command"].as_str().unwrap());
            if let Some(dir) = spec["working-dir"].as_str() {
                image.check_dir(&who, dir);
            }
        }
        let ports: Vec<i64> = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !p["name"].as_str().unwrap().starts_with("pebble-"))
            .map(|p| p["containerPort"].as_i64().unwrap())
            .collect();
        let recorded_ports: Vec<i64> =
            recorded["ports"].as_array().unwrap().iter().map(|p| p.as_i64().unwrap()).collect();
        assert_eq!(ports, recorded_ports, "{name}");
    }

    // nginx reads the image's MIME types and serves its web root.
    let frontend = Image::of(&layout, "frontend");
    let conf = decode(config, paths::NGINX_CONF_FILE);
    assert!(frontend.files.iter().any(|f| f == paths::NGINX_MIME_TYPES) && conf.contains(paths::NGINX_MIME_TYPES));
    assert!(frontend.dirs.iter().any(|d| d == paths::WEB_ROOT) && conf.contains(paths::WEB_ROOT));

    // `kubectl exec` lands where manage.py lives, for admins who run it by hand (the operator
    // itself talks to the PREPL through port-forward and needs neither it nor Python).
    let backend = Image::of(&layout, "backend");
    let script = format!("{}/manage.py", paths::BACKEND_DIR);
    assert!(backend.files.contains(&script), "no {script} in the backend image");

    // The init container runs the operator's image, not a workload image.
    let init = &pod["initContainers"][0];
    assert_eq!(init["command"][0], paths::OPERATOR_BINARY);
    assert_eq!(init["securityContext"]["readOnlyRootFilesystem"], true);
}
