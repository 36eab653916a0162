//! The worker's Prometheus metrics: jobs started, succeeded, failed and retried with their
//! durations, email outcomes by reason, received email, jobs per ledger write, and the
//! ledger's queue gauges (`convos_plumbing::metrics`); served at `/metrics` on
//! `CONVOS_WORKER_METRICS_ADDR`.

use convos_plumbing::metrics::Exposition;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use sqlx::PgPool;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// Every worker metric.
#[derive(Clone)]
pub struct Metrics {
    /// Everything registered, rendered with the queue gauges.
    pub exposition: Exposition,
    /// Jobs started, by queue.
    pub started: IntCounterVec,
    /// Jobs finished, by queue and outcome (`done`, `skipped`, `retry`, `dead`).
    pub finished: IntCounterVec,
    /// Job run time, by queue.
    pub duration: HistogramVec,
    /// Notification decisions, by outcome (`sent`, `skipped`, `failed`) and reason.
    pub emails: IntCounterVec,
    /// Jobs per ledger write, by write (`start`, `finish`): how much the batching saves.
    pub ledger_batch: HistogramVec,
    /// Received email, by way in (`smtp`, `webhook`) and outcome (`accepted`, `deferred`,
    /// then what the job made of it: `posted`, `refused`, `bounce`, `complaint`, `ignored`).
    pub inbound: IntCounterVec,
    /// Queue workers abandoned by the stall watchdog, by queue (should stay 0).
    pub stalls: IntCounterVec,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let exposition = Exposition::new();
        let started = exposition.register(
            IntCounterVec::new(
                Opts::new("convos_jobs_started_total", "Jobs started, by queue."),
                &["queue"],
            )
            .expect("valid metric"),
        );
        let finished = exposition.register(
            IntCounterVec::new(
                Opts::new(
                    "convos_jobs_finished_total",
                    "Jobs finished, by queue and outcome (done, skipped, retry, dead).",
                ),
                &["queue", "outcome"],
            )
            .expect("valid metric"),
        );
        let duration = exposition.register(
            HistogramVec::new(
                HistogramOpts::new("convos_job_duration_seconds", "Job run time.").buckets(vec![
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0,
                ]),
                &["queue"],
            )
            .expect("valid metric"),
        );
        let emails = exposition.register(
            IntCounterVec::new(
                Opts::new(
                    "convos_emails_total",
                    "Notification decisions per message, by outcome and reason.",
                ),
                &["outcome", "reason"],
            )
            .expect("valid metric"),
        );
        let ledger_batch = exposition.register(
            HistogramVec::new(
                HistogramOpts::new(
                    "convos_ledger_batch_jobs",
                    "Jobs per ledger write (one statement and commit), by write (start, finish).",
                )
                .buckets(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                ]),
                &["write"],
            )
            .expect("valid metric"),
        );
        let inbound = exposition.inbound_mail();
        let stalls = exposition.register(
            IntCounterVec::new(
                Opts::new(
                    "convos_queue_worker_stalls_total",
                    "Queue workers abandoned by the stall watchdog, by queue.",
                ),
                &["queue"],
            )
            .expect("valid metric"),
        );
        Self {
            stalls,
            inbound,
            exposition,
            started,
            finished,
            duration,
            emails,
            ledger_batch,
        }
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
    let app = convos_plumbing::metrics::router(metrics.exposition, db);
    // One shared router for every connection (a bare Router is deep-copied per connection).
    let _ = axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
}
