//! Erasing the bodies of expired and consumed ephemeral messages.
//!
//! Read paths already hide these messages (and discount expired ones from the counters); the
//! purge makes the erasure real and settles the counters, one thread lock at a time so it never
//! races a send, a read or a delete in the same thread.

use crate::Result;
use crate::counters::{Side, uncount};
use sqlx::PgPool;
use uuid::Uuid;

/// What one purge run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Expired messages erased.
    pub expired: u64,
    /// Consumed read-once messages erased.
    pub consumed: u64,
}

/// Deletes what has served its time: jobs finished (done, skipped, discarded) more than
/// `keep_days` ago with their attempt history, idempotency keys past their 24 hours, the
/// heartbeats of workers gone for a day, the queue board's outcome counts past two days
/// (it shows one), and received email: its raw text (quotes and all)
/// after `keep_days`, its record after 30 days (or `keep_days`, if longer), since soft bounces
/// count over 30 days. Returns the number of jobs deleted.
///
/// Each reads what it deletes, through an index: the finished jobs by kind and end (the index
/// leads with the kind, so every kind is named), the keys by age (migration 0028), the board's
/// counts by kind and minute. Run once a period (a minute by default) for the whole cluster,
/// usually with nothing to delete, they read the history otherwise.
pub async fn old_records(db: &PgPool, keep_days: i32) -> Result<u64> {
    let jobs: i64 = sqlx::query_scalar(
        "with gone as ( \
           delete from jobs where id in ( \
             select id from jobs where kind = any($2) \
               and state in ('done', 'skipped', 'discarded') \
               and finished_at < now() - make_interval(days => $1) limit 10000) \
           returning id), \
         history as (delete from job_attempts where job_id in (select id from gone)) \
         select count(*) from gone",
    )
    .bind(keep_days)
    .bind(crate::jobs::all_kinds())
    .fetch_one(db)
    .await?;
    let jobs = jobs as u64;
    sqlx::query("delete from idempotency_keys where created_at < now() - interval '25 hours'")
        .execute(db)
        .await?;
    sqlx::query("delete from worker_heartbeats where last_seen_at < now() - interval '1 day'")
        .execute(db)
        .await?;
    sqlx::query(
        "delete from job_outcome_counts \
         where kind = any($1) and minute < now() - interval '2 days'",
    )
    .bind(crate::jobs::all_kinds())
    .execute(db)
    .await?;
    sqlx::query(
        "update inbound_mail set raw = '' where id in ( \
           select id from inbound_mail where status <> 'received' and raw <> '' \
             and received_at < now() - make_interval(days => $1) limit 10000)",
    )
    .bind(keep_days)
    .execute(db)
    .await?;
    sqlx::query(
        "delete from inbound_mail where id in ( \
           select id from inbound_mail where status <> 'received' \
             and received_at < now() - make_interval(days => greatest($1, 30)) limit 10000)",
    )
    .bind(keep_days)
    .execute(db)
    .await?;
    Ok(jobs)
}

/// Erases up to `batch` expired and `batch` consumed messages.
pub async fn run(db: &PgPool, batch: i64) -> Result<Purged> {
    let consumed = sqlx::query(
        "update messages set body = null, purged_at = now() where id in ( \
           select id from messages where consumed_at is not null and purged_at is null \
           limit $1 for update skip locked)",
    )
    .bind(batch)
    .execute(db)
    .await?
    .rows_affected();

    let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "select id, thread_id from messages \
         where expires_at <= now() and purged_at is null and consumed_at is null \
         order by expires_at limit $1",
    )
    .bind(batch)
    .fetch_all(db)
    .await?;
    let mut expired = 0;
    for (message, thread) in due {
        let mut tx = db.begin().await?;
        sqlx::query("select 1 from threads where id = $1 for no key update")
            .bind(thread)
            .execute(&mut *tx)
            .await?;
        // Re-checked under the lock: a concurrent purge may have taken it.
        let row: Option<(Uuid, Uuid, bool, bool, bool, bool)> = sqlx::query_as(
            "update messages set body = null, purged_at = now() \
             where id = $1 and purged_at is null and consumed_at is null \
             returning sender_id, recipient_id, sender_deleted_at is null, \
                       recipient_deleted_at is null, sender_read, recipient_read",
        )
        .bind(message)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((sender, recipient, sender_has, recipient_has, sender_read, recipient_read)) =
            row
        {
            for (user, has, read, side) in [
                (sender, sender_has, sender_read, Side::Sent),
                (recipient, recipient_has, recipient_read, Side::Received),
            ] {
                if has {
                    uncount(&mut tx, thread.into(), user.into(), side, !read).await?;
                }
            }
            expired += 1;
        }
        tx.commit().await?;
    }
    Ok(Purged { expired, consumed })
}
