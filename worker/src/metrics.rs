//! The worker's Prometheus metrics: jobs started, succeeded, failed and retried with their
//! durations, email outcomes by reason, and the ledger's queue gauges; served at `/metrics` on
//! `CONVOS_WORKER_METRICS_ADDR`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use sqlx::PgPool;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// Every worker metric.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Jobs started, by queue.
    pub started: IntCounterVec,
    /// Jobs finished, by queue and outcome (`done`, `skipped`, `retry`, `dead`).
    pub finished: IntCounterVec,
    /// Job run time, by queue.
    pub duration: HistogramVec,
    /// Notification decisions, by outcome (`sent`, `skipped`, `failed`) and reason.
    pub emails: IntCounterVec,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let started = IntCounterVec::new(
            Opts::new("convos_jobs_started_total", "Jobs started, by queue."),
            &["queue"],
        )
        .expect("valid metric");
        let finished = IntCounterVec::new(
            Opts::new(
                "convos_jobs_finished_total",
                "Jobs finished, by queue and outcome (done, skipped, retry, dead).",
            ),
            &["queue", "outcome"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("convos_job_duration_seconds", "Job run time.").buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0,
            ]),
            &["queue"],
        )
        .expect("valid metric");
        let emails = IntCounterVec::new(
            Opts::new(
                "convos_emails_total",
                "Notification decisions per message, by outcome and reason.",
            ),
            &["outcome", "reason"],
        )
        .expect("valid metric");
        for metric in [
            Box::new(started.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(finished.clone()),
            Box::new(duration.clone()),
            Box::new(emails.clone()),
        ] {
            registry.register(metric).expect("metric registered once");
        }
        Self {
            registry,
            started,
            finished,
            duration,
            emails,
        }
    }

    /// This process's metrics and the ledger's queue gauges, in Prometheus text format.
    pub async fn render(&self, db: &PgPool) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        let mut body = String::from_utf8(buffer).unwrap_or_default();
        match convos_store::ops::board(db).await {
            Ok(board) => body.push_str(&convos_store::ops::board_metrics(&board)),
            Err(e) => tracing::warn!(error = %e, "queue gauges unavailable"),
        }
        body
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `/metrics` on `addr` until `cancel` fires.
pub async fn serve(addr: SocketAddr, metrics: Metrics, db: PgPool, cancel: CancellationToken) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, %addr, "could not serve metrics");
            return;
        }
    };
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (metrics, db) = (metrics.clone(), db.clone());
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    metrics.render(&db).await,
                )
            }
        }),
    );
    // One shared router for every connection (a bare Router is deep-copied per connection).
    let _ = axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
}
