//! Prometheus exposition, the same for the server and the worker: a process's own registry,
//! then the job ledger's queue gauges (computed from the ops board at most every few seconds,
//! one computation at a time, however often it is scraped), served at `GET /metrics`.

use convos_core::ops::{Board, QueueStats};
use prometheus::core::Collector;
use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// How long computed queue gauges are reused.
const QUEUE_GAUGES_FRESH_FOR: Duration = Duration::from_secs(5);

/// A process's metrics and the ledger's queue gauges; cheap to clone.
#[derive(Clone)]
pub struct Exposition {
    registry: Registry,
    queues: Arc<tokio::sync::Mutex<Option<(Instant, String)>>>,
}

impl Exposition {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            registry: Registry::new(),
            queues: Arc::default(),
        }
    }

    /// Registers `metric` and hands it back. Metric definitions are fixed at compile time, so a
    /// bad or repeated one is a bug.
    pub fn register<C: Collector + Clone + 'static>(&self, metric: C) -> C {
        self.registry
            .register(Box::new(metric.clone()))
            .expect("metric defined once, with a valid name");
        metric
    }

    /// Registers the count of received email by way in (`smtp`, `webhook`) and outcome, which
    /// both processes keep: the server what its webhook answered, the worker what its listener
    /// answered and what the jobs decided.
    pub fn inbound_mail(&self) -> IntCounterVec {
        self.register(
            IntCounterVec::new(
                Opts::new(
                    "convos_inbound_mail_total",
                    "Received email, by way in and outcome.",
                ),
                &["via", "outcome"],
            )
            .expect("valid metric"),
        )
    }

    /// This process's metrics, then the queue gauges (skipped, and logged, when PostgreSQL
    /// does not answer).
    pub async fn render(&self, db: &PgPool) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        let mut body = String::from_utf8(buffer).unwrap_or_default();
        let mut queues = self.queues.lock().await;
        match queues
            .as_ref()
            .filter(|(at, _)| at.elapsed() < QUEUE_GAUGES_FRESH_FOR)
        {
            Some((_, text)) => body.push_str(text),
            None => match convos_store::ops::board(db).await {
                Ok(board) => {
                    let text = queue_gauges(&board);
                    body.push_str(&text);
                    *queues = Some((Instant::now(), text));
                }
                Err(e) => tracing::warn!(error = %e, "queue gauges unavailable"),
            },
        }
        body
    }
}

impl Default for Exposition {
    fn default() -> Self {
        Self::new()
    }
}

/// A router answering `GET /metrics` (and 404 otherwise), for a listener of its own.
pub fn router(exposition: Exposition, db: PgPool) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (exposition, db) = (exposition.clone(), db.clone());
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    exposition.render(&db).await,
                )
            }
        }),
    )
}

/// The ops board as Prometheus gauges (text exposition format): server and worker read the
/// same ledger, so their gauges always match the board.
pub fn queue_gauges(board: &Board) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, value) in samples {
            if labels.is_empty() {
                out.push_str(&format!("{name} {value}\n"));
            } else {
                out.push_str(&format!("{name}{{{labels}}} {value}\n"));
            }
        }
    };
    let per_queue = |f: &dyn Fn(&QueueStats) -> f64| -> Vec<(String, f64)> {
        board
            .queues
            .iter()
            .map(|q| (format!("queue=\"{}\"", q.name), f(q)))
            .collect()
    };
    let mut jobs = Vec::new();
    for q in &board.queues {
        for (state, value) in [
            ("pending", q.pending),
            ("scheduled", q.scheduled),
            ("running", q.running),
            ("dead", q.dead),
        ] {
            jobs.push((
                format!("queue=\"{}\",state=\"{state}\"", q.name),
                value as f64,
            ));
        }
    }
    gauge(
        "convos_queue_jobs",
        &format!(
            "Jobs in the ledger per queue and state, each counted to at most {} (decision 57).",
            convos_store::ops::COUNT_LIMIT
        ),
        jobs,
    );
    gauge(
        "convos_queue_oldest_pending_seconds",
        "Age of the oldest job that is due and not started.",
        per_queue(&|q| q.oldest_pending_secs),
    );
    gauge(
        "convos_queue_paused",
        "1 when the queue is paused.",
        per_queue(&|q| f64::from(u8::from(q.paused))),
    );
    let mut windows = Vec::new();
    let mut failures = Vec::new();
    for q in &board.queues {
        windows.push((
            format!("queue=\"{}\",window=\"1h\"", q.name),
            q.succeeded_1h as f64,
        ));
        windows.push((
            format!("queue=\"{}\",window=\"24h\"", q.name),
            q.succeeded_24h as f64,
        ));
        failures.push((
            format!("queue=\"{}\",window=\"1h\"", q.name),
            q.failed_1h as f64,
        ));
        failures.push((
            format!("queue=\"{}\",window=\"24h\"", q.name),
            q.failed_24h as f64,
        ));
    }
    gauge(
        "convos_queue_succeeded",
        "Jobs finished (done or skipped) in the window.",
        windows,
    );
    gauge(
        "convos_queue_failed_attempts",
        "Failed attempts in the window.",
        failures,
    );
    gauge(
        "convos_workers_seen",
        "Worker processes that reported in the last minute.",
        vec![(String::new(), board.workers.len() as f64)],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_gauges_are_labelled_per_queue_and_state() {
        let board = Board {
            queues: vec![QueueStats {
                name: "deliver".into(),
                pending: 3,
                scheduled: 0,
                running: 0,
                succeeded_1h: 0,
                succeeded_24h: 0,
                failed_1h: 0,
                failed_24h: 0,
                dead: 1,
                oldest_pending_secs: 0.0,
                paused: false,
                count_limit: Some(100_000),
            }],
            workers: Vec::new(),
        };
        let text = queue_gauges(&board);
        assert!(text.contains("convos_queue_jobs{queue=\"deliver\",state=\"pending\"} 3\n"));
        assert!(text.contains("convos_queue_jobs{queue=\"deliver\",state=\"dead\"} 1\n"));
        assert!(text.contains("# TYPE convos_workers_seen gauge\nconvos_workers_seen 0\n"));
    }
}
