//! `spec.caBundle` against the real runtimes: a private CA (made here with openssl) signs a
//! TLS server's certificate, and the files the operator renders and `prepare-pod` writes
//! must make each runtime trust it. The JVM (Penpot's backend is Java; here Debian's JDK)
//! uses the JKS store through the rendered `JAVA_TOOL_OPTIONS`, Node (the exporter) the
//! rendered `NODE_EXTRA_CA_CERTS`, nginx the rendered S3-redirect verification. Each is also
//! shown to refuse the server without them, so the test cannot pass by accident.
//! Needs openssl, a JDK (`java` with its source launcher, `keytool`), node and nginx: Debian
//! packages that `tests/harness/deps.sh` installs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use penpot_operator::crd::{Penpot, PenpotSpec, Relation};
use penpot_operator::pod_init::{self, Sources};
use penpot_operator::relations::{Relations, SecretData, postgresql, redis, s3};
use penpot_operator::render::nginx::{NginxInputs, nginx_conf};
use penpot_operator::render::rollout::Backup;
use penpot_operator::render::{Desired, Inputs, paths, render};

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// A CA and a server certificate for localhost and 127.0.0.1 it signed.
fn private_ca(dir: &Path) -> String {
    let openssl = |args: &str| run(Command::new("openssl").args(args.split_whitespace()).current_dir(dir));
    openssl(
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=Corp-Root",
    );
    openssl(
        "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=localhost",
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext",
    );
    std::fs::read_to_string(dir.join("ca.pem")).unwrap()
}

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTPS file server on `dir` with the CA-signed certificate: Python's, since `openssl
/// s_server -WWW` never ends its HTTP/1.0 answers for the JVM's client.
fn tls_server(dir: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(dir.join("object"), "bytes from the private S3").unwrap();
    std::fs::write(
        dir.join("serve.py"),
        "import http.server, ssl, sys\n\
         server = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)\n\
         context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         context.load_cert_chain('server.pem', 'server.key')\n\
         server.socket = context.wrap_socket(server.socket, server_side=True)\n\
         server.serve_forever()\n",
    )
    .unwrap();
    let child = Command::new("python3")
        .args(["serve.py", &port.to_string()])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 is installed");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "the HTTPS server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server(child, port)
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

/// The operator's render of a Penpot whose spec.caBundle resolved to `ca`.
fn rendered(ca: &str) -> Desired {
    let pg = data(&[("endpoints", "db:5432"), ("database", "penpot"), ("username", "u"), ("password", "p")]);
    let relations = Relations {
        postgresql: postgresql::parse(&SecretData::new(Relation::Postgresql, "pg", &pg)).unwrap(),
        redis: redis::parse(&SecretData::new(Relation::Redis, "r", &data(&[("hostname", "redis")]))).unwrap(),
        s3: Some(
            s3::parse(
                &SecretData::new(
                    Relation::S3,
                    "s3",
                    &data(&[("access-key", "a"), ("secret-key", "s"), ("bucket", "b")]),
                ),
                false,
            )
            .unwrap(),
        ),
        smtp: None,
        oidc: None,
        google: None,
        github: None,
        gitlab: None,
        ldap: None,
    };
    let checked = penpot_operator::trust::to_pem(&penpot_operator::trust::parse_bundle(ca.as_bytes()).unwrap());
    let mut penpot = Penpot::new(
        "p",
        PenpotSpec { public_uri: Some("https://penpot.example.com/".into()), replicas: 1, ..Default::default() },
    );
    penpot.metadata.namespace = Some("t".into());
    let inputs = Inputs {
        relations,
        secret_key: "k".repeat(40),
        prometheus_operator: false,
        init_image: "example.org/op:1".into(),
        live: None,
        backup: Backup::NotNeeded,
        ca_bundle: Some(checked),
        gateway_api: false,
    };
    render(&penpot, &inputs).expect("renders")
}

fn config(desired: &Desired, key: &str) -> String {
    let ByteString(bytes) = &desired.config.data.as_ref().unwrap()[key];
    String::from_utf8(bytes.clone()).unwrap()
}

fn environment(desired: &Desired, layer: &str, service: &str) -> BTreeMap<String, String> {
    let layer: serde_json::Value = serde_saphyr::from_str(&config(desired, layer)).unwrap();
    serde_json::from_value(layer["services"][service]["environment"].clone()).unwrap()
}

/// What the init container leaves for the workload: prepare-pod on the rendered bundle, with
/// this machine's public roots as the image's.
fn prepared(dir: &Path, desired: &Desired) -> PathBuf {
    let bundle = dir.join("ca-bundle.pem");
    std::fs::write(&bundle, config(desired, paths::CA_BUNDLE_KEY)).unwrap();
    std::fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    std::fs::write(dir.join("pebble"), "stand-in for Pebble").unwrap();
    let (pebble, resolv) = (dir.join("pebble"), dir.join("resolv.conf"));
    let sources = Sources {
        pebble: &pebble,
        resolv_conf: &resolv,
        system_roots: Path::new("/etc/ssl/certs/ca-certificates.crt"),
        ..Sources::default()
    };
    let into = dir.join("operator");
    let settings = pod_init::Settings { nginx_port: 8080, resolver: None, ca_bundle: Some(&bundle) };
    pod_init::prepare(&into, &settings, &sources).expect("prepare-pod");
    into
}

/// The rendered path under /operator, moved to where prepare-pod wrote it here.
fn moved(value: &str, operator: &Path) -> String {
    value.replace(&format!("{}/", paths::OPERATOR_DIR), &format!("{}/", operator.display()))
}

#[test]
fn the_jvm_trusts_the_private_ca_through_the_rendered_trust_store() {
    let dir = tempfile::tempdir().unwrap();
    let ca = private_ca(dir.path());
    let server = tls_server(dir.path());
    let desired = rendered(&ca);
    let operator = prepared(dir.path(), &desired);

    // keytool reads the store and checks its integrity digest with the password.
    let store = operator.join("ca/truststore.jks");
    let listing = run(Command::new("keytool")
        .args(["-list", "-storetype", "JKS", "-storepass", "changeit", "-keystore"])
        .arg(&store));
    let listing = String::from_utf8_lossy(&listing.stdout);
    let public =
        std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap().matches("BEGIN CERTIFICATE").count();
    assert!(listing.contains(&format!("Your keystore contains {} entries", public + 1)), "{listing}");
    assert!(listing.contains("trustedCertEntry"), "{listing}");

    let probe = dir.path().join("Probe.java");
    std::fs::write(
        &probe,
        r#"public class Probe {
    public static void main(String[] args) throws Exception {
        var client = java.net.http.HttpClient.newBuilder().version(java.net.http.HttpClient.Version.HTTP_1_1).build();
        var request = java.net.http.HttpRequest.newBuilder(java.net.URI.create(args[0]))
            .timeout(java.time.Duration.ofSeconds(20)).build();
        var response = client.send(request, java.net.http.HttpResponse.BodyHandlers.ofString());
        System.out.println(response.statusCode() + " " + response.body());
    }
}
"#,
    )
    .unwrap();
    let url = format!("https://localhost:{}/object", server.1);
    let java = |tool_options: Option<String>| {
        let mut command = Command::new("java");
        command.arg(&probe).arg(&url).env_remove("JAVA_TOOL_OPTIONS");
        if let Some(options) = tool_options {
            command.env("JAVA_TOOL_OPTIONS", options);
        }
        command.output().expect("java is installed")
    };
    let env = environment(&desired, paths::PENPOT_LAYER_FILE, "backend");
    let options = moved(&env["JAVA_TOOL_OPTIONS"], &operator);
    let trusted = java(Some(options));
    let stdout = String::from_utf8_lossy(&trusted.stdout);
    assert!(
        trusted.status.success() && stdout.contains("200 bytes from the private S3"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let refused = java(None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("PKIX"), "without the store the JVM must refuse: {stderr}");
}

#[test]
fn node_trusts_the_private_ca_through_the_rendered_extra_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = private_ca(dir.path());
    let server = tls_server(dir.path());
    let desired = rendered(&ca);
    let operator = prepared(dir.path(), &desired);
    let script = format!(
        "require('https').get('https://localhost:{}/object', r => {{ let b = ''; r.on('data', d => b += d); r.on('end', () => console.log(r.statusCode, b)); }}).on('error', e => {{ console.error(e.code); process.exit(1); }});",
        server.1
    );
    let node = |extra: Option<String>| {
        let mut command = Command::new("node");
        command.args(["-e", &script]).env_remove("NODE_EXTRA_CA_CERTS");
        if let Some(extra) = extra {
            command.env("NODE_EXTRA_CA_CERTS", extra);
        }
        command.output().expect("node is installed")
    };
    let env = environment(&desired, paths::EXPORTER_LAYER_FILE, "exporter");
    let trusted = node(Some(moved(&env["NODE_EXTRA_CA_CERTS"], &operator)));
    let stdout = String::from_utf8_lossy(&trusted.stdout);
    assert!(trusted.status.success() && stdout.contains("200 bytes from the private S3"), "{stdout}");
    let refused = node(None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("UNABLE_TO_VERIFY_LEAF_SIGNATURE"), "{stderr}");
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-QUIT", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// A backend stand-in that answers every `/assets` request as Penpot does with S3: a 307 to
/// the (here private-CA) object URL, which nginx then fetches itself.
fn redirecting_backend(location: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let response = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nx-host: localhost\r\nx-mtype: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = reader.get_mut().write_all(response.as_bytes());
        }
    });
    port
}

/// A DNS server that answers every A question with 127.0.0.1: nginx resolves the S3 host of
/// a redirect through its resolver at request time, and `localhost` is what the server's
/// certificate names.
fn dns_stand_in() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            // Header: same id, a response without error, the question once, one answer.
            let mut answer = buf[..2].to_vec();
            answer.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
            answer.extend_from_slice(&buf[12..n]);
            // The question's name by pointer, A, IN, TTL 30, 4 bytes: 127.0.0.1.
            answer.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 1]);
            let _ = socket.send_to(&answer, from);
        }
    });
    port
}

/// Status of `/assets/x` through nginx running the rendered configuration.
fn asset_through_nginx(dir: &Path, operator: &Path, backend: u16, private_ca: bool) -> String {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = dir.display();
    let inputs = NginxInputs {
        exporter: false,
        air_gapped: true,
        max_body_size: 1 << 20,
        filesystem_storage: false,
        private_ca,
    };
    let conf = nginx_conf(&inputs)
        .replace(&format!("{}/", paths::OPERATOR_DIR), &format!("{}/", operator.display()))
        .replace(&format!("127.0.0.1:{}", paths::BACKEND_PORT), &format!("127.0.0.1:{backend}"))
        .replace(&format!("alias {}/", paths::NGINX_CONFIG_DIR), &format!("alias {d}/"))
        .replace("/tmp/nginx", &format!("{d}/nginx-{private_ca}"));
    std::fs::write(operator.join("nginx/listen.conf"), format!("listen 127.0.0.1:{port};\n")).unwrap();
    let resolver = format!("resolver 127.0.0.1:{} valid=30s ipv6=off;\n", dns_stand_in());
    std::fs::write(operator.join("nginx/resolver.conf"), resolver).unwrap();
    let file = dir.join(format!("nginx-{private_ca}.conf"));
    std::fs::write(&file, conf).unwrap();
    Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status().unwrap();
    let _nginx = Nginx(
        Command::new("nginx")
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("nginx-{private_ca}.log"))).unwrap())
            .spawn()
            .expect("nginx"),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET /assets/by-id/x HTTP/1.1\r\nHost: penpot.local\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let log = std::fs::read_to_string(dir.join(format!("nginx-{private_ca}.log"))).unwrap_or_default();
    format!("{raw}\n--- nginx's log:\n{log}")
}

#[test]
fn nginx_verifies_s3_redirects_against_the_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = private_ca(dir.path());
    let server = tls_server(dir.path());
    let desired = rendered(&ca);
    let operator = prepared(dir.path(), &desired);
    let backend = redirecting_backend(format!("https://localhost:{}/object", server.1));

    let trusted = asset_through_nginx(dir.path(), &operator, backend, true);
    assert!(
        trusted.starts_with("HTTP/1.1 200 ") && trusted.contains("\r\n\r\nbytes from the private S3\n---"),
        "{trusted}"
    );

    // The same redirect to a server the bundle does not vouch for is refused.
    let other = tempfile::tempdir().unwrap();
    private_ca(other.path());
    let stranger = tls_server(other.path());
    let backend = redirecting_backend(format!("https://localhost:{}/object", stranger.1));
    let refused = asset_through_nginx(dir.path(), &operator, backend, true);
    assert!(refused.starts_with("HTTP/1.1 502 "), "an unknown CA must fail verification: {refused}");
}
