//! The job ledger: jobs are rows written in the same transaction as their cause; the relay
//! hands due rows to Redis, workers record every attempt and outcome here.
//!
//! States: `pending` (waiting for its time) → `dispatched` (pushed to Redis) → `running` →
//! `done` | `skipped` | `retry` (back to due at `next_run_at`) | `dead`. A dispatched or
//! running job whose `deadline_at` passes without an outcome is lost (a crashed worker, a
//! flushed Redis) and becomes due again.

use crate::Result;
use chrono::{DateTime, Utc};
use convos_core::events::Event;
use convos_core::jobs::{DeliverJob, JobKind, NotifyEmailJob, PurgeExpiredJob};
use convos_core::{MessageId, ThreadId, UserId};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::time::Duration;
use uuid::Uuid;

/// When the notification email of a new message becomes due (the server sets it from
/// `notify_delay_secs`).
#[derive(Clone, Copy, Debug)]
pub struct NotifySettings {
    /// How long a notification email waits for the recipient to read the message first.
    pub notify_delay: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            notify_delay: Duration::from_secs(120),
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Inserts a job unless one with the same key (or, for coalesced jobs, a pending one with the
/// same coalesce key) exists. Returns whether a row was written.
pub async fn enqueue(
    tx: &mut PgConnection,
    kind: JobKind,
    key: &str,
    coalesce_key: Option<&str>,
    payload: serde_json::Value,
    delay: Duration,
) -> Result<bool> {
    let written = sqlx::query(
        "insert into jobs (id, kind, key, coalesce_key, payload, max_attempts, next_run_at) \
         values ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7)) \
         on conflict do nothing",
    )
    .bind(Uuid::now_v7())
    .bind(kind.as_str())
    .bind(key)
    .bind(coalesce_key)
    .bind(payload)
    .bind(kind.max_attempts())
    .bind(secs(delay))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// Enqueues a live event for `users`; `key` makes it one event however often this is called.
pub async fn enqueue_event(
    tx: &mut PgConnection,
    key: &str,
    event: Event,
    users: Vec<UserId>,
) -> Result<()> {
    let payload = serde_json::to_value(DeliverJob { event, users }).unwrap_or_default();
    enqueue(tx, JobKind::Deliver, key, None, payload, Duration::ZERO).await?;
    Ok(())
}

/// Records the queued email delivery of `message` to `recipient` and makes sure a notify job
/// for the thread is pending: messages within one delay window share one job and one email.
pub async fn enqueue_notification(
    tx: &mut PgConnection,
    notify: &NotifySettings,
    message: MessageId,
    thread: ThreadId,
    recipient: UserId,
) -> Result<()> {
    sqlx::query(
        "insert into deliveries (message_id, recipient_id, thread_id) values ($1, $2, $3) \
         on conflict do nothing",
    )
    .bind(message.as_uuid())
    .bind(recipient.as_uuid())
    .bind(thread.as_uuid())
    .execute(&mut *tx)
    .await?;
    let payload = serde_json::to_value(NotifyEmailJob {
        thread_id: thread,
        recipient_id: recipient,
    })
    .unwrap_or_default();
    enqueue(
        tx,
        JobKind::NotifyEmail,
        &format!("notify_email:{message}:{recipient}"),
        Some(&format!("notify_email:{thread}:{recipient}")),
        payload,
        notify.notify_delay,
    )
    .await?;
    Ok(())
}

/// Schedules the purge run of the current period; a no-op if any worker already did.
pub async fn schedule_purge(db: &PgPool, period: Duration) -> Result<bool> {
    let period_secs = period.as_secs().max(1) as i64;
    let index = Utc::now().timestamp() / period_secs;
    let payload = serde_json::to_value(PurgeExpiredJob { period: index }).unwrap_or_default();
    let mut conn = db.acquire().await?;
    enqueue(
        &mut conn,
        JobKind::PurgeExpired,
        &format!("purge_expired:{period_secs}:{index}"),
        None,
        payload,
        Duration::ZERO,
    )
    .await
}

/// Makes lost jobs due again: dispatched or running past their deadline without an outcome. A
/// running job's attempt counts; if it was the last, the job is dead.
pub async fn requeue_lost(db: &PgPool) -> Result<u64> {
    let moved = sqlx::query(
        "update jobs set \
           state = case when state = 'running' and attempts >= max_attempts then 'dead' \
                        else 'retry' end, \
           last_error = case when state = 'running' \
                             then 'lost: no outcome before the deadline (worker stopped?)' \
                             else last_error end, \
           next_run_at = now(), deadline_at = null, updated_at = now(), \
           finished_at = case when state = 'running' and attempts >= max_attempts \
                              then now() end \
         where state in ('dispatched', 'running') and deadline_at < now()",
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(moved)
}

/// Locks up to `limit` due jobs of `kind` for dispatch, oldest first, skipping rows another
/// relay holds. Commit [`mark_dispatched`] in the same transaction after pushing them.
pub async fn claim_due(
    tx: &mut Transaction<'_, Postgres>,
    kind: JobKind,
    limit: i64,
) -> Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "select id from jobs where state in ('pending', 'retry') and next_run_at <= now() \
           and kind = $1 \
         order by next_run_at limit $2 for update skip locked",
    )
    .bind(kind.as_str())
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(ids)
}

/// Marks claimed jobs as handed to Redis, to be back if no outcome arrives by `deadline`.
pub async fn mark_dispatched(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
    deadline: Duration,
) -> Result<()> {
    sqlx::query(
        "update jobs set state = 'dispatched', updated_at = now(), \
           deadline_at = now() + make_interval(secs => $2) \
         where id = any($1)",
    )
    .bind(ids)
    .bind(secs(deadline))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes dispatched jobs due again (their tickets could not be pushed). They become `retry`,
/// not `pending`, so a newer pending email job of the same thread cannot collide with them.
pub async fn undispatch(db: &PgPool, ids: &[Uuid]) -> Result<()> {
    sqlx::query(
        "update jobs set state = 'retry', \
           deadline_at = null, updated_at = now() \
         where id = any($1) and state = 'dispatched'",
    )
    .bind(ids)
    .execute(db)
    .await?;
    Ok(())
}

/// A job a worker has started.
#[derive(Clone, Debug)]
pub struct Running {
    /// The row.
    pub id: Uuid,
    /// Its kind.
    pub kind: JobKind,
    /// Its payload.
    pub payload: serde_json::Value,
    /// This attempt's number (1 on the first run).
    pub attempt: i32,
    /// Attempts allowed in all.
    pub max_attempts: i32,
}

impl Running {
    /// Whether a failure now would be the last allowed.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// Claims a dispatched job for running. `None` when it is not dispatched any more: another
/// worker took it, or it already finished (a duplicate delivery of the same ticket); or when
/// its queue is paused, in which case it goes back to pending for the relay to hand out after
/// the queue resumes.
pub async fn start(
    db: &PgPool,
    id: Uuid,
    worker: &str,
    deadline: Duration,
) -> Result<Option<Running>> {
    let mut tx = db.begin().await?;
    let row: Option<(String, serde_json::Value, i32, i32)> = sqlx::query_as(
        "update jobs set state = 'running', attempts = attempts + 1, updated_at = now(), \
           deadline_at = now() + make_interval(secs => $2) \
         where id = $1 and state = 'dispatched' \
           and not exists (select 1 from queue_controls q where q.kind = jobs.kind and q.paused) \
         returning kind, payload, attempts, max_attempts",
    )
    .bind(id)
    .bind(secs(deadline))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((kind, payload, attempt, max_attempts)) = row else {
        // A paused queue's job goes back to waiting (as `retry`, which no pending email job of the
        // same thread can collide with), for the relay to hand out on resume.
        sqlx::query(
            "update jobs set state = 'retry', deadline_at = null, updated_at = now() \
             where id = $1 and state = 'dispatched' \
               and exists (select 1 from queue_controls q where q.kind = jobs.kind and q.paused)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(None);
    };
    sqlx::query("insert into job_attempts (job_id, attempt, worker) values ($1, $2, $3)")
        .bind(id)
        .bind(attempt)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let kind = JobKind::parse(&kind).unwrap_or(JobKind::Deliver);
    Ok(Some(Running {
        id,
        kind,
        payload,
        attempt,
        max_attempts,
    }))
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It did its work; the text says what.
    Done(String),
    /// There was nothing to do; the text says why.
    Skipped(String),
    /// It failed and will run again at the given time.
    Retry { error: String, at: DateTime<Utc> },
    /// It failed for good.
    Dead(String),
}

/// Records the outcome of the running attempt.
pub async fn finish(db: &PgPool, job: &Running, outcome: &Outcome) -> Result<()> {
    let (state, text, error, next): (&str, Option<&str>, Option<&str>, Option<DateTime<Utc>>) =
        match outcome {
            Outcome::Done(what) => ("done", Some(what), None, None),
            Outcome::Skipped(why) => ("skipped", Some(why), None, None),
            Outcome::Retry { error, at } => ("retry", None, Some(error), Some(*at)),
            Outcome::Dead(error) => ("dead", None, Some(error), None),
        };
    let mut tx = db.begin().await?;
    sqlx::query(
        "update jobs set state = $2, outcome = coalesce($3, outcome), \
           last_error = coalesce($4, last_error), next_run_at = coalesce($5, next_run_at), \
           deadline_at = null, updated_at = now(), \
           finished_at = case when $2 in ('done', 'skipped', 'dead') then now() end \
         where id = $1 and state = 'running' and attempts = $6",
    )
    .bind(job.id)
    .bind(state)
    .bind(text)
    .bind(error)
    .bind(next)
    .bind(job.attempt)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update job_attempts set finished_at = now(), error = $3 \
         where job_id = $1 and attempt = $2",
    )
    .bind(job.id)
    .bind(job.attempt)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Exponential backoff with full jitter: a random time in `[0, min(cap, base·2^(attempt-1))]`,
/// never less than `base`/2, for the retry after failed `attempt`.
pub fn backoff(attempt: i32, base: Duration, cap: Duration, random: f64) -> Duration {
    let exp = base.as_secs_f64() * 2f64.powi(attempt.clamp(1, 30) - 1);
    let ceiling = exp.min(cap.as_secs_f64());
    let floor = base.as_secs_f64() / 2.0;
    Duration::from_secs_f64((ceiling * random.clamp(0.0, 1.0)).max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_up_to_its_cap_with_jitter() {
        let base = Duration::from_secs(2);
        let cap = Duration::from_secs(600);
        assert_eq!(backoff(1, base, cap, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(3, base, cap, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(20, base, cap, 1.0), cap);
        assert_eq!(
            backoff(5, base, cap, 0.0),
            Duration::from_secs(1),
            "never below base/2"
        );
        let jittered = backoff(5, base, cap, 0.5);
        assert_eq!(jittered, Duration::from_secs(16));
    }
}
