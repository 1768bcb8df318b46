//! The rendered nginx.conf served by a real nginx, with a stand-in for Penpot's backend (a few
//! lines of Rust answering like the backend's HTTP port; Penpot's JVM does not run here). What
//! a browser gets is asserted: which upstream answers, what is compressed, what is cached.
//! Needs `nginx` (Debian's package; `make test` and `.ci/run` check it is there).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use penpot_operator::pod_init::{self, Sources};
use penpot_operator::render::nginx::{NginxInputs, nginx_conf};
use penpot_operator::render::paths;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Stand-in for the backend's port 6060: answers every request with a compressible
/// `application/transit+json` body and an `X-Stand-In: backend` header, and records the paths.
fn stand_in_backend() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = paths.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Drain the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
            seen.lock().unwrap().push(path.clone());
            // Filesystem storage: the backend names the file, nginx sends it (as Penpot's
            // `assets` handler does, with the id split into two directory levels).
            if let Some(id) = path.strip_prefix("/assets/by-file-media-id/") {
                let response = format!(
                    "HTTP/1.1 204 No Content\r\nX-Accel-Redirect: /internal/assets/{}/{}/{}\r\nX-Stand-In: backend\r\nConnection: close\r\n\r\n",
                    &id[..2],
                    &id[2..4],
                    &id[4..]
                );
                let _ = reader.get_mut().write_all(response.as_bytes());
                continue;
            }
            let body = "[\"^ \",\"~:name\",\"penpot\"]".repeat(200);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/transit+json\r\nX-Stand-In: backend\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = reader.get_mut().write_all(response.as_bytes());
        }
    });
    (port, paths)
}

struct Nginx(Child);

impl Drop for Nginx {
    /// SIGQUIT: the master stops its workers and exits. A SIGKILL would leave the workers
    /// running, holding the test's output pipe open.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-QUIT", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// The rendered configuration, moved onto free ports and a scratch directory, with the
/// includes `prepare-pod` writes (from a resolv.conf of only a nameserver line and this
/// machine's own IPv6 addresses), run by nginx.
fn serve(dir: &Path, backend: u16) -> (Nginx, u16) {
    let port = free_port();
    let d = dir.display();
    let resolv_conf = dir.join("resolv.conf");
    std::fs::write(&resolv_conf, "nameserver 127.0.0.1\n").unwrap();
    let pebble = dir.join("pebble");
    std::fs::write(&pebble, "stand-in for the Pebble binary").unwrap();
    let sources = Sources { pebble: &pebble, resolv_conf: &resolv_conf, ..Sources::default() };
    let settings = pod_init::Settings { nginx_port: port, resolver: None, ca_bundle: None };
    pod_init::prepare(&dir.join("operator"), &settings, &sources).expect("prepare-pod");
    let inputs = NginxInputs {
        exporter: true,
        air_gapped: true,
        max_body_size: 367_001_600,
        filesystem_storage: true,
        private_ca: false,
    };
    let conf = nginx_conf(&inputs)
        .replace(&format!("alias {};", paths::ASSETS_DIR), &format!("alias {d}/assets;"))
        .replace(&format!("{}/", paths::OPERATOR_DIR), &format!("{d}/operator/"))
        .replace(&format!("127.0.0.1:{}", paths::BACKEND_PORT), &format!("127.0.0.1:{backend}"))
        .replace(&format!("127.0.0.1:{}", paths::EXPORTER_PORT), &format!("127.0.0.1:{backend}"))
        .replace(&format!("root {}", paths::WEB_ROOT), &format!("root {d}/www"))
        .replace(&format!("alias {}/", paths::NGINX_CONFIG_DIR), &format!("alias {d}/"))
        .replace("/tmp/nginx", &format!("{d}/nginx"));
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    std::fs::create_dir_all(dir.join("www/js")).unwrap();
    std::fs::write(dir.join("www/index.html"), "<html>penpot</html>").unwrap();
    std::fs::write(dir.join("www/js/main.js"), "console.log('penpot')").unwrap();
    std::fs::write(dir.join(paths::CONFIG_JS_FILE), "var penpotFlags = \"\";").unwrap();
    // nginx's workers run as nobody: the scratch directory must be readable.
    Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status().unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("error.log")).unwrap())
        .spawn()
        .expect("nginx is installed (apt-get install nginx)");
    let nginx = Nginx(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "nginx did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    (nginx, port)
}

/// Status line and lower-cased headers of a GET with gzip accepted, and the body's length.
fn get(port: u16, path: &str) -> (String, Vec<(String, String)>, usize) {
    get_from("127.0.0.1", port, path)
}

fn get_from(host: &str, port: u16, path: &str) -> (String, Vec<(String, String)>, usize) {
    let mut stream = TcpStream::connect((host, port)).unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: penpot.local\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_string();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string())).collect();
    (status, headers, raw.len() - split - 4)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn backend_paths_win_over_static_files_and_api_answers_are_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, seen) = stand_in_backend();
    let (_nginx, port) = serve(dir.path(), backend);

    // The OpenAPI document ends in .json, which the static-file regex also matches.
    for path in ["/api/main/doc/openapi.json", "/assets/by-id/0f3a.png", "/api/export/x.svg"] {
        let (status, headers, _) = get(port, path);
        assert!(status.contains(" 200 "), "{path}: {status}");
        assert_eq!(header(&headers, "x-stand-in"), ["backend"], "{path} did not reach the backend: {headers:?}");
    }
    assert!(seen.lock().unwrap().contains(&"/api/main/doc/openapi.json".to_string()));

    // Penpot's API speaks transit+json; it is compressed like JSON.
    let (_, headers, length) = get(port, "/api/main/methods/get-profile");
    assert_eq!(header(&headers, "content-encoding"), ["gzip"], "{headers:?}");
    assert!(length < 4000, "a {length}-byte body for a 5,400-byte answer is not compressed");

    // The static side still works: a cached asset, the SPA fallback, the probe URL.
    let (status, headers, _) = get(port, "/js/main.js");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(header(&headers, "cache-control"), ["public, max-age=604800"]);
    assert!(header(&headers, "x-stand-in").is_empty());
    let (status, headers, _) = get(port, "/workspace/some-team");
    assert!(status.contains(" 200 ") && header(&headers, "cache-control") == ["no-store, no-cache, max-age=0"]);
    let (status, _, _) = get(port, paths::NGINX_HEALTH_PATH);
    assert!(status.contains(" 200 "), "{status}");
}

/// The font proxies cannot reach the internet here; their rendered headers are checked as text:
/// one Cache-Control (the upstream's is hidden) and the CORS header the fonts need.
/// Filesystem storage (`spec.storage.filesystem`): the backend answers 204 with
/// `X-Accel-Redirect`, and nginx sends the file from the assets volume; the internal location
/// itself is not reachable from outside.
#[test]
fn filesystem_assets_are_sent_from_the_volume() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("assets/0f/3a/9c1e");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "an uploaded image").unwrap();
    let (backend, seen) = stand_in_backend();
    let (_nginx, port) = serve(dir.path(), backend);

    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /assets/by-file-media-id/0f3a9c1e HTTP/1.1\r\nHost: penpot.local\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    assert!(raw.ends_with("\r\n\r\nan uploaded image"), "the file's bytes, sent by nginx: {raw}");
    assert!(raw.to_lowercase().contains("x-internal-redirect: /internal/assets/0f/3a/9c1e"), "{raw}");
    assert!(seen.lock().unwrap().contains(&"/assets/by-file-media-id/0f3a9c1e".to_string()));

    let (status, _, _) = get(port, "/internal/assets/0f/3a/9c1e");
    assert!(status.contains(" 404 "), "the volume is reachable only through the backend: {status}");
}

#[test]
fn font_proxies_send_one_cache_control_and_cors() {
    let inputs = NginxInputs {
        exporter: true,
        air_gapped: false,
        max_body_size: 367_001_600,
        filesystem_storage: false,
        private_ca: false,
    };
    let conf = nginx_conf(&inputs);
    let fonts: Vec<&str> =
        conf.split("location ").filter(|l| l.contains("fonts.g") || l.contains("penpot-files")).collect();
    assert_eq!(fonts.len(), 3, "{conf}");
    for location in fonts {
        assert!(location.contains("proxy_hide_header Cache-Control;"), "{location}");
        assert_eq!(location.matches("add_header Cache-Control").count(), 1, "{location}");
        assert!(location.contains("add_header Access-Control-Allow-Origin \"*\" always;"), "{location}");
    }
}

/// `prepare-pod` read the resolver from a resolv.conf alone, and listens on IPv6 exactly when
/// the network namespace has IPv6 (this machine's: /proc/net/if_inet6).
#[test]
fn resolver_and_listen_come_from_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, _) = stand_in_backend();
    let (_nginx, port) = serve(dir.path(), backend);
    let resolver = std::fs::read_to_string(dir.path().join("operator/nginx/resolver.conf")).unwrap();
    assert!(resolver.contains("resolver 127.0.0.1 "), "{resolver}");
    let has_ipv6 = std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|l| l.lines().any(|l| l.ends_with(" lo")));
    let ipv6 = TcpStream::connect(("::1", port));
    assert_eq!(ipv6.is_ok(), has_ipv6, "IPv6 listen ({ipv6:?}) does not follow the machine's IPv6 ({has_ipv6})");
    if has_ipv6 {
        let (status, _, _) = get_from("::1", port, paths::NGINX_HEALTH_PATH);
        assert!(status.contains(" 200 "), "over IPv6: {status}");
    }
}
