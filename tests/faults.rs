//! Faults that touch the whole control plane. Cargo runs test binaries one at a time, so
//! restarting the shared API server here cannot disturb the other suites.

#[path = "e2e/support.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// The API server is restarted in the middle of a reconcile storm (twelve Penpots arriving at
/// once). The operator must ride it out: no crash, watches restarted, every Penpot Ready, and
/// no object created twice or lost.
#[test]
fn api_server_restart_during_a_reconcile_storm() {
    let Some(c) = cluster() else { return };
    let ns = Namespace::new(c, "storm");
    let n = ns.name.as_str();
    let (kubeconfig, _) = operator_identity(c, n, "penpot-operator");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut op = Operator::start(c, n, &kubeconfig, "op", &["--http-addr", &addr]);

    const N: usize = 12;
    let mut storm = String::new();
    for i in 0..N {
        let name = format!("p{i}");
        storm.push_str(&postgresql_secret(&format!("{name}-postgresql"), PG_PASSWORD));
        storm.push_str("---\n");
        storm.push_str(&redis_secret(&format!("{name}-redis"), "6379"));
        storm.push_str("---\n");
        storm.push_str(&s3_secret(&format!("{name}-s3")));
        storm.push_str("---\n");
        storm.push_str(&penpot_yaml(&name, 1));
        storm.push_str("---\n");
    }
    c.apply_ok(n, &storm);
    std::thread::sleep(Duration::from_millis(700));
    restart_api_server(c);

    for i in 0..N {
        wait_ready(c, n, &format!("p{i}"));
    }
    assert!(op.is_running(), "the operator died across the API server restart");
    let count = |kind: &str| {
        c.kubectl_ok(&["-n", n, "get", kind, "-l", "app.kubernetes.io/managed-by=penpot-operator", "-o", "name"])
            .lines()
            .count()
    };
    assert_eq!(count("statefulsets"), N);
    assert_eq!(count("secrets"), 2 * N, "config and secret-key Secret per Penpot, no duplicates");
    assert_eq!(count("services"), 2 * N);
    let metrics = wait_until(Duration::from_secs(30), "/metrics", || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        use std::io::{Read, Write};
        write!(s, "GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    });
    let restarts: f64 = metrics
        .lines()
        .find(|l| l.starts_with("penpot_operator_watch_restarts_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(restarts >= 1.0, "the operator did not notice its watches failing:\n{metrics}");
}

/// Kills kube-apiserver and starts it again with the same command line and pid file.
fn restart_api_server(c: &Cluster) {
    let pid_file = c.dir.join("pids/kube-apiserver");
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> =
        cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    // SIGKILL: a crash, not a drain (a graceful stop waits minutes for open watches).
    assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    // Gone, or a zombie: cluster.sh started it, so its parent is not this process.
    wait_until(Duration::from_secs(30), "kube-apiserver to exit", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
        matches!(state, None | Some("Z")).then_some(())
    });
    // A zombie leader thread can outlive the threads that still hold the listening socket:
    // wait until the port can really be bound again.
    let port = args.iter().position(|a| a == "--secure-port").map(|i| args[i + 1].clone()).unwrap();
    wait_until(Duration::from_secs(30), "the API server port to be released", || {
        std::net::TcpListener::bind(format!("127.0.0.1:{port}")).ok().map(drop)
    });
    let log = std::fs::OpenOptions::new().append(true).open(c.dir.join("logs/kube-apiserver.log")).unwrap();
    let child = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // cluster.sh down stops whatever this file names.
    std::fs::write(&pid_file, child.id().to_string()).unwrap();
    std::mem::forget(child);
    wait_until(Duration::from_secs(60), "kube-apiserver to be ready again", || {
        c.kubectl(&["get", "--raw", "/readyz"]).ok.then_some(())
    });
}
