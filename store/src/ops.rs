//! What operators see and do: the queue board, job lists and details, retry, discard, pause
//! and resume, worker heartbeats and the audit log. Plain SQL over the job ledger, so no answer
//! depends on Redis.

use crate::cursor::Cursor;
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use convos_core::jobs::JobKind;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

/// One queue's line on the board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Board {
    /// One line per queue.
    pub queues: Vec<QueueStats>,
    /// Workers seen in the last minute.
    pub workers: Vec<WorkerInfo>,
}

/// Counts every queue's jobs by state.
pub async fn board(db: &PgPool) -> Result<Board> {
    let mut queues = Vec::new();
    for kind in JobKind::ALL {
        let row: (i64, i64, i64, i64, i64, i64, f64) = sqlx::query_as(
            "select \
               count(*) filter (where state in ('pending', 'retry') and next_run_at <= now() \
                                   or state = 'dispatched'), \
               count(*) filter (where state in ('pending', 'retry') and next_run_at > now()), \
               count(*) filter (where state = 'running'), \
               count(*) filter (where state in ('done', 'skipped') \
                                  and finished_at > now() - interval '1 hour'), \
               count(*) filter (where state in ('done', 'skipped') \
                                  and finished_at > now() - interval '1 day'), \
               count(*) filter (where state = 'dead'), \
               coalesce(extract(epoch from now() - min(next_run_at) filter ( \
                 where state in ('pending', 'retry', 'dispatched') and next_run_at <= now())), 0)::float8 \
             from jobs where kind = $1",
        )
        .bind(kind.as_str())
        .fetch_one(db)
        .await?;
        let (failed_1h, failed_24h): (i64, i64) = sqlx::query_as(
            "select count(*) filter (where a.finished_at > now() - interval '1 hour'), count(*) \
             from job_attempts a join jobs j on j.id = a.job_id \
             where j.kind = $1 and a.error is not null \
               and a.finished_at > now() - interval '1 day'",
        )
        .bind(kind.as_str())
        .fetch_one(db)
        .await?;
        let paused: bool = sqlx::query_scalar(
            "select coalesce(bool_or(paused), false) from queue_controls where kind = $1",
        )
        .bind(kind.as_str())
        .fetch_one(db)
        .await?;
        queues.push(QueueStats {
            name: kind.as_str().to_owned(),
            pending: row.0,
            scheduled: row.1,
            running: row.2,
            succeeded_1h: row.3,
            succeeded_24h: row.4,
            failed_1h,
            failed_24h,
            dead: row.5,
            oldest_pending_secs: row.6,
            paused,
        });
    }
    let workers = sqlx::query_as(
        "select name, host, pid, started_at, last_seen_at from worker_heartbeats \
         where last_seen_at > now() - interval '1 minute' order by name",
    )
    .fetch_all(db)
    .await?;
    Ok(Board { queues, workers })
}

/// Records a worker's heartbeat.
pub async fn heartbeat(
    db: &PgPool,
    name: &str,
    host: &str,
    pid: i32,
    started: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "insert into worker_heartbeats (name, host, pid, started_at) values ($1, $2, $3, $4) \
         on conflict (name) do update set last_seen_at = now()",
    )
    .bind(name)
    .bind(host)
    .bind(pid)
    .bind(started)
    .execute(db)
    .await?;
    Ok(())
}

/// Kinds whose queues are paused.
pub async fn paused(db: &PgPool) -> Result<Vec<JobKind>> {
    let kinds: Vec<String> = sqlx::query_scalar("select kind from queue_controls where paused")
        .fetch_all(db)
        .await?;
    Ok(kinds.iter().filter_map(|k| JobKind::parse(k)).collect())
}

/// Pauses or resumes a queue; returns whether that changed anything.
pub async fn set_paused(db: &PgPool, kind: JobKind, paused: bool, actor: Uuid) -> Result<bool> {
    let changed = sqlx::query(
        "insert into queue_controls (kind, paused, updated_by) values ($1, $2, $3) \
         on conflict (kind) do update set paused = excluded.paused, updated_at = now(), \
           updated_by = excluded.updated_by \
         where queue_controls.paused <> excluded.paused",
    )
    .bind(kind.as_str())
    .bind(paused)
    .bind(actor)
    .execute(db)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// A job in a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// Which jobs a list or a bulk action concerns.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    /// One queue.
    pub kind: Option<JobKind>,
    /// One state.
    pub state: Option<String>,
    /// Text in the key, the last error or the payload.
    pub q: Option<String>,
    /// Jobs about this message (its events and email).
    pub message_id: Option<Uuid>,
    /// Jobs about this user (events to them, emails to them).
    pub user: Option<Uuid>,
}

/// The job states.
pub const STATES: [&str; 8] = [
    "pending",
    "dispatched",
    "running",
    "retry",
    "done",
    "skipped",
    "dead",
    "discarded",
];

/// Each kind's attempt budget, as SQL over the `kind` column.
fn budget_sql() -> String {
    let arms: Vec<String> = JobKind::ALL
        .iter()
        .map(|k| format!("when '{}' then {}", k.as_str(), k.max_attempts()))
        .collect();
    format!("(case kind {} else 3 end)", arms.join(" "))
}

fn filter_sql() -> &'static str {
    "($1::text is null or kind = $1) and ($2::text is null or state = $2) \
     and ($3::text is null or key ilike '%' || $3 || '%' or last_error ilike '%' || $3 || '%' \
          or payload::text ilike '%' || $3 || '%') \
     and ($4::uuid is null or key like '%' || $4::text || '%' \
          or (kind = 'notify_email' and exists (select 1 from deliveries d \
                where d.message_id = $4 and d.thread_id::text = payload->>'thread_id' \
                  and d.recipient_id::text = payload->>'recipient_id'))) \
     and ($5::uuid is null or payload->>'recipient_id' = $5::text \
          or payload->'users' ? $5::text)"
}

/// A page of jobs, newest first.
pub async fn list_jobs(
    db: &PgPool,
    filter: &JobFilter,
    limit: i64,
    after: Option<Cursor>,
) -> Result<(Vec<JobSummary>, Option<String>)> {
    let after = after.unwrap_or(Cursor {
        at: DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default(),
        id: Uuid::max(),
    });
    let sql = format!(
        "select id, kind, state, attempts, max_attempts, next_run_at, last_error, outcome, \
                created_at, updated_at \
         from jobs where {} and (created_at, id) < ($6, $7) \
         order by created_at desc, id desc limit $8",
        filter_sql()
    );
    let mut rows: Vec<JobSummary> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(filter.kind.map(JobKind::as_str))
        .bind(&filter.state)
        .bind(&filter.q)
        .bind(filter.message_id)
        .bind(filter.user)
        .bind(after.at)
        .bind(after.id)
        .bind(limit + 1)
        .fetch_all(db)
        .await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| {
            Cursor {
                at: r.created_at,
                id: r.id,
            }
            .encode()
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// One job with its payload and attempt history.
pub async fn job(db: &PgPool, id: Uuid) -> Result<JobDetail> {
    let job: JobSummary = sqlx::query_as(
        "select id, kind, state, attempts, max_attempts, next_run_at, last_error, outcome, \
                created_at, updated_at from jobs where id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?;
    let (key, payload): (String, serde_json::Value) =
        sqlx::query_as("select key, payload from jobs where id = $1")
            .bind(id)
            .fetch_one(db)
            .await?;
    let attempts_history = sqlx::query_as(
        "select attempt, worker, started_at, finished_at, \
                (extract(epoch from finished_at - started_at) * 1000)::float8 as duration_ms, error \
         from job_attempts where job_id = $1 order by attempt",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    Ok(JobDetail {
        job,
        key,
        payload,
        attempts_history,
    })
}

/// Makes dead or waiting-to-retry jobs matching `filter` (or the one `id`) due now; dead jobs
/// get a fresh attempt budget. Returns how many were touched.
pub async fn retry(db: &PgPool, filter: &JobFilter, id: Option<Uuid>) -> Result<u64> {
    let sql = format!(
        "update jobs set state = 'retry', next_run_at = now(), updated_at = now(), \
           finished_at = null, \
           max_attempts = case when state = 'dead' then attempts + {budget} else max_attempts end \
         where state in ('dead', 'retry') and ($6::uuid is null or id = $6) and {} \
         returning id, kind, payload",
        filter_sql(),
        budget = budget_sql(),
    );
    let mut tx = db.begin().await?;
    let rows: Vec<(Uuid, String, serde_json::Value)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(filter.kind.map(JobKind::as_str))
        .bind(&filter.state)
        .bind(&filter.q)
        .bind(filter.message_id)
        .bind(filter.user)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    for (_, kind, payload) in &rows {
        if JobKind::parse(kind) == Some(JobKind::NotifyEmail) {
            sqlx::query(
                "update deliveries set status = 'queued', updated_at = now() \
                 where thread_id::text = $1->>'thread_id' and recipient_id::text = $1->>'recipient_id' \
                   and status = 'failed'",
            )
            .bind(payload)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Discards dead jobs matching `filter` (or the one `id`): they leave the dead count for good.
pub async fn discard(db: &PgPool, filter: &JobFilter, id: Option<Uuid>) -> Result<u64> {
    let sql = format!(
        "update jobs set state = 'discarded', updated_at = now() \
         where state = 'dead' and ($6::uuid is null or id = $6) and {}",
        filter_sql()
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(filter.kind.map(JobKind::as_str))
        .bind(&filter.state)
        .bind(&filter.q)
        .bind(filter.message_id)
        .bind(filter.user)
        .bind(id)
        .execute(db)
        .await?
        .rows_affected();
    Ok(done)
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// Records an operator action.
pub async fn audit(
    db: &PgPool,
    actor: Uuid,
    action: &str,
    target: &str,
    affected: u64,
) -> Result<()> {
    sqlx::query(
        "insert into audit_log (id, actor_id, action, target, affected) values ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(affected as i64)
    .execute(db)
    .await?;
    Ok(())
}

/// The newest audit records.
pub async fn audit_log(db: &PgPool, limit: i64) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query_as(
        "select a.id, u.username as actor, a.action, a.target, a.affected, a.created_at \
         from audit_log a join users u on u.id = a.actor_id order by a.created_at desc limit $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// The board as Prometheus gauges (text exposition format), for `/metrics` on the server and
/// the worker: both read the same ledger, so their gauges always match the board.
pub fn board_metrics(board: &Board) -> String {
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
        "Jobs in the ledger per queue and state.",
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
