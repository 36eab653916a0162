//! What operators see of the job queues: the board, jobs, attempts and the audit log. Shared
//! by the server (which answers `/api/v1/admin`), the worker (`convos-worker queues`) and the
//! terminal client's Ops screen.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One queue's line on the board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct QueueStats {
    /// The queue (job kind).
    pub name: String,
    /// Due now and waiting for a worker (including those handed to Redis).
    pub pending: i64,
    /// Waiting for their time: a delay window or a retry backoff.
    pub scheduled: i64,
    /// Being run.
    pub running: i64,
    /// Finished (done or skipped) in the last hour.
    pub succeeded_1h: i64,
    /// Finished (done or skipped) in the last 24 hours.
    pub succeeded_24h: i64,
    /// Failed attempts in the last hour.
    pub failed_1h: i64,
    /// Failed attempts in the last 24 hours.
    pub failed_24h: i64,
    /// Out of attempts, waiting for an operator.
    pub dead: i64,
    /// Seconds the oldest due job has waited; 0 when none.
    pub oldest_pending_secs: f64,
    /// Whether workers are held from starting its jobs.
    pub paused: bool,
}

/// A worker process that reported recently.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WorkerInfo {
    /// Its unique name.
    pub name: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_seen_at: DateTime<Utc>,
}

/// The whole board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Board {
    /// One line per queue.
    pub queues: Vec<QueueStats>,
    /// Workers seen in the last minute.
    pub workers: Vec<WorkerInfo>,
}

/// A job in a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobSummary {
    /// The job.
    pub id: Uuid,
    /// Its queue.
    pub kind: String,
    /// Its state.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it runs next (pending, retry).
    pub next_run_at: DateTime<Utc>,
    /// The last error.
    pub last_error: Option<String>,
    /// What it did, when finished.
    pub outcome: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// One attempt in a job's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Attempt {
    /// Its number (1 first).
    pub attempt: i32,
    /// The worker that ran it.
    pub worker: String,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished, unless lost.
    pub finished_at: Option<DateTime<Utc>>,
    /// Milliseconds it took.
    pub duration_ms: Option<f64>,
    /// Its error, if it failed.
    pub error: Option<String>,
}

/// A job with its payload and history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobDetail {
    /// The ledger row.
    #[serde(flatten)]
    pub job: JobSummary,
    /// Its idempotency key.
    pub key: String,
    /// Its payload (ids only).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// Every attempt, oldest first.
    pub attempts_history: Vec<Attempt>,
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditEntry {
    /// The record.
    pub id: Uuid,
    /// Who did it.
    pub actor: String,
    /// What (`retry`, `discard`, `pause`, `resume`).
    pub action: String,
    /// On what (a job id, a queue, a filter).
    pub target: String,
    /// How many jobs it touched.
    pub affected: i64,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// How many jobs an operator action touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Affected {
    /// Jobs changed.
    pub affected: u64,
}
