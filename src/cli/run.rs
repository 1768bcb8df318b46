//! `penpot-operator run`: wires client, leader election, HTTP server and controller, with
//! one shutdown signal for all of them.

use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::watch;

use crate::cli::RunArgs;
use crate::controller::egress::{Egress, api_server_addresses};
use crate::controller::{self, RunOptions};
use crate::metrics::Metrics;
use crate::{http, leader, telemetry};

pub fn main(args: RunArgs) -> ExitCode {
    // kube and reqwest both use rustls; pick one crypto provider for the whole process.
    let provider_installed = rustls::crypto::ring::default_provider().install_default().is_err();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The trace exporter batches on the runtime, so it starts inside it.
    let traces = {
        let _inside = runtime.enter();
        match telemetry::init_with_traces(args.log_format, args.otlp_endpoint.as_deref()) {
            Ok(traces) => traces,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    if provider_installed {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    if let Some(endpoint) = &args.otlp_endpoint {
        tracing::info!(%endpoint, "exporting reconcile traces over OTLP");
    }
    let code = runtime.block_on(run(args));
    // Flushes the last spans: the flush blocks its thread while the runtime sends them.
    let _ = runtime.block_on(tokio::task::spawn_blocking(move || drop(traces)));
    code
}

/// A client without kube's default retry layer, which retries a 429/503/504 up to 15 times
/// with delays growing to 1000 s: during an API server outage a reconcile or a watch would
/// hang inside it, invisible, long after the server is back. The controller already retries
/// everything with its own short, logged backoff.
async fn controller_client() -> Result<(kube::Client, String), kube::Error> {
    let mut config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
    config.default_retry = false;
    let cluster_url = config.cluster_url.to_string();
    Ok((kube::Client::try_from(config)?, cluster_url))
}

async fn run(args: RunArgs) -> ExitCode {
    let (client, cluster_url) = match controller_client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a Kubernetes client (KUBECONFIG or in-cluster config)");
            return ExitCode::FAILURE;
        }
    };
    let identity = args.identity.clone().unwrap_or_else(hostname);
    let metrics = Arc::new(Metrics::default());
    let (ready_tx, ready_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);

    // One shutdown signal for the HTTP server and the controller.
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let elector = args.leader_elect.then(|| {
        let ns = args.lease_namespace.clone().or_else(|| args.namespace.clone()).unwrap_or_else(|| "default".into());
        let (elector, gate) = leader::Elector::new(client.clone(), &ns, &identity);
        (elector, gate, ns)
    });
    let gate = elector.as_ref().map_or_else(|| Arc::new(leader::Gate::always_open()), |(_, gate, _)| gate.clone());
    let server =
        tokio::spawn(http::serve(args.http_addr, metrics.clone(), ready_rx, gate.clone(), stopped(stop_rx.clone())));

    let mut election = None;
    let lost = if let Some((elector, gate, ns)) = elector {
        election = Some(tokio::spawn(elector.run(gate.clone(), stopped(stop_rx.clone()))));
        tracing::info!(lease = leader::LEASE_NAME, namespace = %ns, %identity, "waiting for leadership");
        // A healthy follower is ready: otherwise a rolling update of the Deployment would
        // wait forever for a replica that cannot lead until the old one is gone.
        let _ = ready_tx.send(true);
        let mut leading = gate.subscribe();
        tokio::select! {
            _ = leading.wait_for(|l| *l) => tracing::info!(%identity, "acquired leadership"),
            _ = stopped(stop_rx.clone()) => return ExitCode::SUCCESS,
        }
        Some(async move {
            let _ = leading.wait_for(|l| !*l).await;
        })
    } else {
        None
    };

    let lost_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shutdown = {
        let lost_flag = lost_flag.clone();
        let stop = stopped(stop_rx);
        async move {
            match lost {
                Some(lost) => tokio::select! {
                    _ = stop => {}
                    _ = lost => {
                        tracing::error!("lost leadership; stopping");
                        lost_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                },
                None => stop.await,
            }
        }
    };

    let opts = RunOptions {
        namespace: args.namespace.clone(),
        concurrency: args.concurrency,
        instance: identity,
        resync: std::time::Duration::from_secs(args.resync_seconds),
        init_image: args.init_image.clone(),
        profiles: args.profiles,
        egress: Egress::new(api_server_addresses(&cluster_url).await, args.egress_allow_hosts.clone()),
        relation_checks: args.relation_checks,
    };
    controller::run(client, opts, metrics, gate, ready_tx, shutdown).await;
    server.abort();
    // Let the election loop release the Lease before the runtime goes: the other replica
    // then takes over at its next attempt instead of after a whole lease duration.
    if let Some(election) = election {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(6), election).await;
    }
    if lost_flag.load(std::sync::atomic::Ordering::SeqCst) {
        // Exit non-zero so the pod restarts as a follower.
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "penpot-operator".into())
}
