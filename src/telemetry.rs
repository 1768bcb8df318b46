//! Logging, human-readable or JSON lines, filtered by `RUST_LOG` (default `info`); and, when an
//! OTLP endpoint is configured, the same spans exported as OpenTelemetry traces: one trace per
//! reconcile, a span per step (resolve, render, apply, report) and one per background relation
//! check.

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("--otlp-endpoint {endpoint:?} is not an http:// or https:// URL")]
    Endpoint { endpoint: String },
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("cannot build the OTLP HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Exports what is left when dropped at shutdown.
pub struct Traces(SdkTracerProvider);

impl Drop for Traces {
    fn drop(&mut self) {
        if let Err(e) = self.0.shutdown() {
            tracing::warn!(error = %e, "cannot flush the last spans to the OTLP endpoint");
        }
    }
}

/// Logging only, for the one-shot commands.
pub fn init(format: LogFormat) {
    subscriber::<tracing_subscriber::layer::Identity>(format, None).init();
}

/// Logging, plus traces to `otlp_endpoint` (the collector's base URL, as in
/// `OTEL_EXPORTER_OTLP_ENDPOINT`; `/v1/traces` is appended). Must run inside the tokio
/// runtime, which batches and sends the spans.
pub fn init_with_traces(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<Option<Traces>, TelemetryError> {
    let Some(endpoint) = otlp_endpoint else {
        init(format);
        return Ok(None);
    };
    let provider = provider(endpoint)?;
    let tracer = provider.tracer("penpot-operator");
    subscriber(format, Some(tracing_opentelemetry::layer().with_tracer(tracer))).init();
    Ok(Some(Traces(provider)))
}

/// The registry with its filter, the log layer and, maybe, the OTLP layer.
fn subscriber<L>(format: LogFormat, traces: Option<L>) -> impl tracing::Subscriber + Send + Sync
where
    L: tracing_subscriber::Layer<tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>>
        + Send
        + Sync,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: `kubectl logs` and log collectors would show escape codes.
    let text = matches!(format, LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal())
    });
    let json = matches!(format, LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer().json().with_current_span(true).flatten_event(true).with_writer(std::io::stderr)
    });
    tracing_subscriber::registry().with(filter).with(traces).with(text).with(json)
}

fn provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let base = endpoint.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) || url::Url::parse(base).is_err() {
        return Err(TelemetryError::Endpoint { endpoint: endpoint.to_string() });
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Http(http))
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{base}/v1/traces"))
        .build()?;
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES still apply; the name defaults to ours.
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("penpot-operator");
    }
    Ok(SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource.build()).build())
}

/// The exporter's HTTP client: the operator's own reqwest, rather than a second HTTP stack.
#[derive(Debug)]
struct Http(reqwest::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Http {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<opentelemetry_http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        let response = self.0.execute(reqwest::Request::try_from(request)?).await?;
        let mut out = opentelemetry_http::Response::builder().status(response.status());
        if let Some(headers) = out.headers_mut() {
            *headers = response.headers().clone();
        }
        Ok(out.body(response.bytes().await?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_that_is_not_an_http_url_is_refused_by_name() {
        for bad in ["otel-collector:4318", "grpc://collector:4317", "http://"] {
            let Err(e) = provider(bad) else { panic!("{bad} accepted") };
            assert_eq!(e.to_string(), format!("--otlp-endpoint {bad:?} is not an http:// or https:// URL"));
        }
    }
}
