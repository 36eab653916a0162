//! Erasing the bodies of expired and consumed ephemeral messages.
//!
//! Read paths already hide these messages (and discount expired ones from the counters); the
//! purge makes the erasure real and settles the counters, a batch at a time under the locks of
//! its threads, so it never races a send, a read or a delete in the same thread.

use crate::Result;
use crate::counters::{Side, uncount_all};
use convos_core::jobs::JobKind;
use sqlx::PgPool;
use uuid::Uuid;

/// An expired message the purge erased, and whose counters it was in.
#[derive(sqlx::FromRow)]
struct Erased {
    thread_id: Uuid,
    sender_id: Uuid,
    recipient_id: Uuid,
    sender_counts: bool,
    recipient_counts: bool,
    sender_read: bool,
    recipient_read: bool,
}

/// What one purge run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Expired messages erased.
    pub expired: u64,
    /// Consumed read-once messages erased.
    pub consumed: u64,
}

/// How long finished jobs are kept for operators (decision 65).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keep {
    /// Days every job but a live event's is kept, and received email's raw text
    /// (`CONVOS_KEEP_JOBS_DAYS`).
    pub days: i32,
    /// Hours a live event's job (`deliver`) is kept (`CONVOS_KEEP_EVENT_JOBS_HOURS`): each
    /// action on one's mail writes one, at up to 300 a minute an account.
    pub event_hours: i32,
}

impl Default for Keep {
    /// The worker's defaults: a week, a day for live events' jobs.
    fn default() -> Self {
        Self {
            days: 7,
            event_hours: 24,
        }
    }
}

/// Deletes what has served its time: jobs finished (done, skipped, discarded) more than
/// `keep.days` ago (a live event's, `keep.event_hours`) with their attempt history,
/// idempotency keys past their 24 hours, reports resolved 90 days ago (decision 89), the
/// heartbeats of workers gone for a day, the queue board's outcome counts past two days (it
/// shows one), and received email: its raw text
/// (quotes and all) after `keep.days` once decided, its record after 30 days (or `keep.days`,
/// if longer), since soft bounces count over 30 days. An email still undecided then is one
/// whose job died (its retries end within hours) and no operator retried in a month: it goes
/// too, or every email a worker could not read would be kept whole for good (decision 74).
/// Returns the number of jobs deleted.
///
/// Each reads what it deletes, through an index: the finished jobs by kind and end (the index
/// leads with the kind, so every kind is named), the keys by age (migration 0028), the board's
/// counts by kind and minute. Run once a period (a minute by default) for the whole cluster,
/// usually with nothing to delete, they read the history otherwise.
pub async fn old_records(db: &PgPool, keep: Keep) -> Result<u64> {
    sqlx::query("delete from idempotency_keys where created_at < now() - interval '25 hours'")
        .execute(db)
        .await?;
    crate::reports::forget_resolved(db).await?;
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
    .bind(keep.days)
    .execute(db)
    .await?;
    sqlx::query(
        "delete from inbound_mail where id in ( \
           select id from inbound_mail \
             where received_at < now() - make_interval(days => greatest($1, 30)) limit 10000)",
    )
    .bind(keep.days)
    .execute(db)
    .await?;
    // The jobs last, after the quick ones, and for a bounded time: a run cut off by its job's
    // time limit still did everything else, and the next run goes on.
    let started = std::time::Instant::now();
    let mut jobs = 0;
    let events = vec![JobKind::Deliver.as_str()];
    let others: Vec<&str> = crate::jobs::all_kinds()
        .into_iter()
        .filter(|k| !events.contains(k))
        .collect();
    let passes = [
        (events, keep.event_hours),
        (others, keep.days.saturating_mul(24)),
    ];
    let mut batches = 0;
    for (kinds, hours) in &passes {
        while batches < OLD_JOB_BATCHES && started.elapsed() <= OLD_JOBS_TIME {
            batches += 1;
            let gone = old_jobs(db, kinds, *hours).await?;
            jobs += gone;
            if gone < OLD_JOB_BATCH as u64 {
                break;
            }
        }
    }
    Ok(jobs)
}

/// Old jobs one statement of [`old_records`] deletes.
const OLD_JOB_BATCH: i64 = 10_000;

/// Statements of [`OLD_JOB_BATCH`] one run of [`old_records`] may take: 600,000 jobs a minute,
/// far more than the platform can create, so the ledger holds `keep_days` whatever the rate
/// (one batch a run deleted 167 jobs a second, fewer than one account's flags made). Each is
/// its own transaction, so none holds its rows for long.
const OLD_JOB_BATCHES: usize = 60;

/// How long one run of [`old_records`] goes on deleting old jobs, well within the purge job's
/// time limit (80% of its two-minute deadline).
const OLD_JOBS_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Deletes up to [`OLD_JOB_BATCH`] jobs of `kinds` finished over `hours` ago, with their
/// history.
async fn old_jobs(db: &PgPool, kinds: &[&str], hours: i32) -> Result<u64> {
    let gone: i64 = sqlx::query_scalar(
        "with gone as ( \
           delete from jobs where id in ( \
             select id from jobs where kind = any($2) \
               and state in ('done', 'skipped', 'discarded') \
               and finished_at < now() - make_interval(hours => $1) limit $3) \
           returning id), \
         history as (delete from job_attempts where job_id in (select id from gone)) \
         select count(*) from gone",
    )
    .bind(hours)
    .bind(kinds)
    .bind(OLD_JOB_BATCH)
    .fetch_one(db)
    .await?;
    Ok(gone as u64)
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
    if due.is_empty() {
        return Ok(Purged {
            expired: 0,
            consumed,
        });
    }
    let (messages, mut threads): (Vec<Uuid>, Vec<Uuid>) = due.into_iter().unzip();
    threads.sort_unstable();
    threads.dedup();
    // The batch in one transaction of three statements (it was one transaction per message):
    // the threads locked in id order, as a write to one thread locks it (`lock_thread`) before
    // its messages, so two purges, or a purge and a sender, wait instead of deadlocking; then
    // the messages still expired erased, re-checked under the locks (a concurrent purge or a
    // read of a read-once message may have taken one); then each participant's counters,
    // once per thread for all its messages erased.
    let mut tx = db.begin().await?;
    sqlx::query("select 1 from threads where id = any($1) order by id for no key update")
        .bind(&threads)
        .execute(&mut *tx)
        .await?;
    let erased: Vec<Erased> = sqlx::query_as(
        "update messages set body = null, purged_at = now() \
         where id = any($1) and purged_at is null and consumed_at is null \
         returning thread_id, sender_id, recipient_id, \
                   sender_deleted_at is null as sender_counts, \
                   recipient_deleted_at is null as recipient_counts, sender_read, recipient_read",
    )
    .bind(&messages)
    .fetch_all(&mut *tx)
    .await?;
    let mut uncounted = Vec::with_capacity(2 * erased.len());
    for m in &erased {
        for (user, counts, read, side) in [
            (m.sender_id, m.sender_counts, m.sender_read, Side::Sent),
            (
                m.recipient_id,
                m.recipient_counts,
                m.recipient_read,
                Side::Received,
            ),
        ] {
            if counts {
                uncounted.push((m.thread_id.into(), user.into(), side, !read));
            }
        }
    }
    uncount_all(&mut tx, &uncounted).await?;
    tx.commit().await?;
    let expired = erased.len() as u64;
    Ok(Purged { expired, consumed })
}
