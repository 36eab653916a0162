//! Prometheus metrics at `GET /metrics` on their own listener (`server_metrics_addr`, loopback by
//! default), never on the API's: HTTP requests by route and status with latency histograms,
//! open event streams, and the queue gauges of the job ledger (computed at most every few
//! seconds, however often it is scraped).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::state::AppState;

/// The server's own metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Event streams open right now.
    pub sse_open: IntGauge,
    /// The queue gauges' text and when it was computed: scrapes in between reuse it.
    queues: Arc<tokio::sync::Mutex<Option<(Instant, String)>>>,
}

/// How long computed queue gauges are reused.
const QUEUE_GAUGES_FRESH_FOR: Duration = Duration::from_secs(5);

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "convos_http_requests_total",
                "HTTP requests by route, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "convos_http_request_duration_seconds",
                "HTTP request latency.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route", "method"],
        )
        .expect("valid metric");
        let sse_open = IntGauge::new("convos_sse_connections_open", "Event streams open.")
            .expect("valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(sse_open.clone()),
        ] {
            registry.register(metric).expect("metric registered once");
        }
        Self {
            registry,
            requests,
            latency,
            sse_open,
            queues: Arc::default(),
        }
    }

    fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts and times every request, labelled by its matched route (low cardinality).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Only the methods the API knows: anything else is one label, not one series per spelling.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state
        .metrics
        .requests
        .with_label_values(&[&route, &method, &status])
        .inc();
    state
        .metrics
        .latency
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The metrics listener's whole application: `GET /metrics`, and 404 for anything else.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(serve))
        .fallback(|| async { crate::error::ApiError::NotFound })
        .with_state(state)
}

/// `GET /metrics`: Prometheus text format.
pub async fn serve(State(state): State<AppState>) -> Response {
    let mut body = state.metrics.render();
    // One computation at a time; concurrent scrapes wait for it and share the result.
    let mut queues = state.metrics.queues.lock().await;
    let fresh = queues
        .as_ref()
        .filter(|(at, _)| at.elapsed() < QUEUE_GAUGES_FRESH_FOR);
    match fresh {
        Some((_, text)) => body.push_str(text),
        None => match convos_store::ops::board(&state.db).await {
            Ok(board) => {
                let text = convos_store::ops::board_metrics(&board);
                body.push_str(&text);
                *queues = Some((Instant::now(), text));
            }
            Err(e) => tracing::warn!(error = %e, "queue gauges unavailable"),
        },
    }
    drop(queues);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

/// Decrements the open-streams gauge when an event stream ends.
pub struct StreamGuard(pub IntGauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
