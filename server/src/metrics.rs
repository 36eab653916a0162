//! The server's Prometheus metrics, on their own listener (`server_metrics_addr`, loopback by
//! default), never on the API's: HTTP requests by route and status with latency histograms,
//! open event streams, mail posted to the inbound webhook, and the job ledger's queue gauges
//! (`convos_plumbing::metrics`).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use convos_plumbing::metrics::Exposition;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};
use std::time::Instant;

use crate::state::AppState;

/// The server's own metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Everything registered, rendered with the queue gauges.
    pub exposition: Exposition,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Event streams open right now.
    pub sse_open: IntGauge,
    /// Mail posted to the inbound webhook, by outcome (`accepted`, `dropped`: for no genuine
    /// address, `over_cap`); the worker counts the listener's and what the jobs decide.
    pub inbound: IntCounterVec,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let exposition = Exposition::new();
        let requests = exposition.register(
            IntCounterVec::new(
                Opts::new(
                    "convos_http_requests_total",
                    "HTTP requests by route, method and status.",
                ),
                &["route", "method", "status"],
            )
            .expect("valid metric"),
        );
        let latency = exposition.register(
            HistogramVec::new(
                HistogramOpts::new(
                    "convos_http_request_duration_seconds",
                    "HTTP request latency.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
                &["route", "method"],
            )
            .expect("valid metric"),
        );
        let sse_open = exposition.register(
            IntGauge::new("convos_sse_connections_open", "Event streams open.")
                .expect("valid metric"),
        );
        let inbound = exposition.inbound_mail();
        Self {
            exposition,
            requests,
            latency,
            sse_open,
            inbound,
        }
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
pub fn router(state: &AppState) -> axum::Router {
    convos_plumbing::metrics::router(state.metrics.exposition.clone(), state.db.clone())
        .fallback(|| async { crate::error::ApiError::NotFound })
}

/// Decrements the open-streams gauge when an event stream ends.
pub struct StreamGuard(pub IntGauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
