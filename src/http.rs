//! `/healthz`, `/readyz` and `/metrics` for probes and Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::watch;

use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
    leader: Arc<crate::leader::Gate>,
}

pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
    leader: Arc<crate::leader::Gate>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { metrics, ready, leader });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Alive unless the leader election loop stalled (a request hung past its timeouts): then
/// the kubelet's liveness probe restarts the operator instead of leaving it "not leader".
async fn healthz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.leader.alive() { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "leader election stalled") }
}

/// Ready once the Penpot cache has synced, or while following in leader election (a follower
/// that is never ready would block a rolling update of the operator's Deployment).
async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if *s.ready.borrow() { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") }
}

async fn metrics_text(State(s): State<AppState>) -> ([(&'static str, &'static str); 1], String) {
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
}
