//! The job ledger: jobs are rows written in the same transaction as their cause; the relay
//! hands due rows to Redis, workers record every attempt and outcome here.
//!
//! States: `pending` (waiting for its time) → `dispatched` (an attempt counted and leased
//! until `deadline_at`, its ticket pushed to Redis; a worker runs it without writing first,
//! decision 34) → `done` | `skipped` | `retry` (back to due at `next_run_at`) | `dead`.
//! `running` is what workers older than decision 34 write when they claim a job. A dispatched
//! or running job whose `deadline_at` passes without an outcome is lost (a crashed worker, a
//! flushed Redis): its attempt goes into the history as lost and it becomes due again.

use crate::Result;
use chrono::{DateTime, Utc};
use convos_core::events::Event;
use convos_core::jobs::{DeliverJob, JobKind, Lease, NotifyEmailJob, PurgeExpiredJob};
use convos_core::{MessageId, ThreadId, UserId};
use sqlx::{PgConnection, PgPool};
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
///
/// A `deliver` job's key is not checked: it must be unique by construction (decision 42; see
/// [`enqueue_event`]), which spares every live event three index entries.
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

/// Enqueues a live event for `users`. `key` names the job in the ledger and must be new: it
/// embeds the id of what the event is about when that is created in the same transaction (a
/// new message), or an id made for the event. It is not checked (decision 42), so an event
/// enqueued twice under one key is two jobs, and two appends to each stream.
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

/// Makes lost jobs due again: dispatched or running past their deadline without an outcome.
/// The attempt counts where a worker may have begun it (a claimed job, or one of a kind that
/// runs on its lease alone: nothing tells), and goes into its history as lost, under the worker
/// that claimed it if one did; if it was the last, the job is dead. A dispatched job of a kind
/// [`JobKind::claimed_before_running`] never started, so its attempt is given back. Rows
/// another transaction holds (an outcome being written) are left for the next sweep. Each lost
/// attempt recorded counts as failed on the queue board (decision 49), under `lost`, which
/// every worker's sweep adds to: each adds its kinds in one order, so two sweeps wait for each
/// other rather than deadlock.
pub async fn requeue_lost(db: &PgPool) -> Result<u64> {
    let claimed = kinds_claimed(true);
    let moved: i64 = sqlx::query_scalar(
        "with expired as ( \
           select id, kind, state, attempts, worker, updated_at, \
             state = 'dispatched' and kind = any($2) as unstarted from jobs \
           where state in ('dispatched', 'running') and deadline_at < now() \
           for update skip locked), \
         unstarted as ( \
           update jobs j set state = 'retry', attempts = j.attempts - 1, next_run_at = now(), \
             deadline_at = null, updated_at = now() \
           from expired e where j.id = e.id and e.unstarted \
           returning 1), \
         lost as (select * from expired where not unstarted), \
         history as ( \
           insert into job_attempts (job_id, attempt, worker, started_at, finished_at, error) \
           select id, attempts, coalesce(worker, 'unknown'), updated_at, now(), $1 \
           from lost \
           on conflict (job_id, attempt) do nothing \
           returning job_id), \
         counted as ( \
           insert into job_outcome_counts as c (kind, minute, counted_by, failed) \
           select l.kind, date_trunc('minute', now()), 'lost', count(*) \
           from history h join lost l on l.id = h.job_id group by l.kind order by l.kind \
           on conflict (kind, minute, counted_by) do update set failed = c.failed + excluded.failed), \
         moved as ( \
           update jobs j set \
             state = case when j.attempts >= j.max_attempts then 'dead' else 'retry' end, \
             last_error = $1, \
             next_run_at = now(), deadline_at = null, updated_at = now(), \
             finished_at = case when j.attempts >= j.max_attempts then now() end \
           from lost l where j.id = l.id \
           returning 1) \
         select (select count(*) from moved) + (select count(*) from unstarted)",
    )
    .bind(LOST)
    .bind(&claimed)
    .fetch_one(db)
    .await?;
    Ok(moved as u64)
}

/// The kinds whose jobs are (or, with `false`, are not) claimed before they run
/// ([`JobKind::claimed_before_running`]), as the ledger names them.
fn kinds_claimed(claimed: bool) -> Vec<&'static str> {
    JobKind::ALL
        .into_iter()
        .filter(|k| k.claimed_before_running() == claimed)
        .map(JobKind::as_str)
        .collect()
}

/// Every kind, as the ledger names them: bound as `kind = any($n)` where an index of jobs
/// leads with the kind and the statement would otherwise name none (PostgreSQL 15 cannot skip
/// over the kinds of such an index).
pub(crate) fn all_kinds() -> Vec<&'static str> {
    JobKind::ALL.map(JobKind::as_str).to_vec()
}

/// Whether the two attempts of job `id` before `attempt` both ended without an outcome
/// (presumed lost: the worker running them stopped, or they outlived their deadline).
pub async fn two_attempts_lost_before(db: &PgPool, id: Uuid, attempt: i32) -> Result<bool> {
    let lost: i64 = sqlx::query_scalar(
        "select count(*) from job_attempts \
         where job_id = $1 and attempt in ($2 - 1, $2 - 2) and error = $3",
    )
    .bind(id)
    .bind(attempt)
    .bind(LOST)
    .fetch_one(db)
    .await?;
    Ok(lost == 2)
}

/// The error of an attempt that ended without an outcome.
const LOST: &str = "lost: no outcome before the deadline (worker stopped?)";

/// The SQL of [`dispatch_due`]: binds the kind (`$1`), the most to hand out (`$2`), the
/// deadline in seconds (`$3`) and the ceiling (`$4`). Public so that tests can check its plan.
pub const DISPATCH_DUE_SQL: &str = "with flight as ( \
           select state, deadline_at from jobs \
           where kind = $1 and state in ('dispatched', 'running') \
           order by deadline_at limit $4), \
         room as ( \
           select case when count(*) filter (where state = 'dispatched' and deadline_at \
                                  < now() + make_interval(secs => $3 * 0.75)) > $4 / 4 then 0 \
                       else greatest(0, $4 - count(*)) end as n from flight), \
         due as ( \
           select id from jobs where kind = $1 and state in ('pending', 'retry') \
             and next_run_at <= now() \
           order by next_run_at limit least($2, (select n from room)) \
           for update skip locked), \
         moved as ( \
           update jobs j set state = 'dispatched', attempts = j.attempts + 1, worker = null, \
             handouts = j.handouts + 1, \
             updated_at = now(), deadline_at = now() + make_interval(secs => $3) \
           where j.id = any(array(select id from due)) \
           returning j.id, j.attempts, j.handouts, j.next_run_at) \
         select moved.id, moved.attempts, moved.handouts, moved.next_run_at, room.n \
         from room left join moved on true";

/// Hands out up to `limit` due jobs of `kind`, oldest first, skipping rows another relay holds,
/// and no more than keeps `ceiling` of the kind in flight (waiting in Redis, for a worker's
/// slot, or running), and none while over a quarter of that many have held their lease
/// unclaimed for over a quarter of `deadline` (the workers are behind: more would only wait
/// out their leases; a few lost tickets, or a slow job, do not stop the kind): counts an
/// attempt of each and leases it until `deadline` (back if no outcome arrives by then), and
/// returns the leases in due order. One statement (one round
/// trip, one commit), committed before any ticket exists, so a worker that takes a ticket at
/// once always finds its lease.
///
/// The update finds its rows by primary key (`= any(array(...))`): joined to the `due` set,
/// whose size the planner cannot know, the prepared statement's generic plan read the whole
/// table into a hash on every dispatch (2 ms at 20,000 rows, growing with the backlog;
/// decision 35). The jobs in flight are read in deadline order, at most `ceiling` of them (the
/// stale ones come first): an index scan, which marks the entries of jobs that left the flight
/// dead as it passes them, where the plain count ran as a bitmap scan, which never does, and
/// read them all again at every look until the next vacuum (decision 47).
pub async fn dispatch_due(
    db: &PgPool,
    kind: JobKind,
    limit: i64,
    ceiling: i64,
    deadline: Duration,
) -> Result<Dispatched> {
    /// A dispatched job (id, attempt, hand-out, due time) if any, and the room there was.
    type Row = (
        Option<Uuid>,
        Option<i32>,
        Option<i32>,
        Option<DateTime<Utc>>,
        i64,
    );
    let rows: Vec<Row> = sqlx::query_as(DISPATCH_DUE_SQL)
        .bind(kind.as_str())
        .bind(limit)
        .bind(secs(deadline))
        .bind(ceiling)
        .fetch_all(db)
        .await?;
    let room = rows.first().map_or(0, |r| r.4);
    let mut moved: Vec<(Lease, DateTime<Utc>)> = rows
        .into_iter()
        .filter_map(|(id, attempt, handout, due, _)| {
            Some((
                Lease {
                    id: id?,
                    attempt: attempt?,
                    handout: handout?,
                },
                due?,
            ))
        })
        .collect();
    moved.sort_by_key(|(_, due)| *due);
    // Bound by the ceiling: the room was below the request, and all of it was taken (fewer due
    // jobs than the room is not the ceiling's doing).
    let at_ceiling = room < limit && moved.len() as i64 >= room;
    Ok(Dispatched {
        leases: moved.into_iter().map(|(lease, _)| lease).collect(),
        at_ceiling,
    })
}

/// What one dispatch handed out.
#[derive(Debug, Default)]
pub struct Dispatched {
    /// The jobs' leases, in due order.
    pub leases: Vec<Lease>,
    /// Whether the ceiling, not the request or the due jobs, bounded it: it left no room, and
    /// more may be due once some of the kind end.
    pub at_ceiling: bool,
}

/// Gives leases back uncounted (their tickets could not be pushed): the jobs are due again.
/// They become `retry`, not `pending`, so a newer pending email job of the same thread cannot
/// collide with them.
pub async fn undispatch(db: &PgPool, leases: &[Lease]) -> Result<()> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = leases.iter().map(|l| (l.id, l.attempt)).unzip();
    let handouts: Vec<i32> = leases.iter().map(|l| l.handout).collect();
    sqlx::query(
        "update jobs j set state = 'retry', attempts = j.attempts - 1, \
           deadline_at = null, updated_at = now() \
         from unnest($1::uuid[], $2::int4[], $3::int4[]) as l(id, attempt, handout) \
         where j.id = l.id and j.attempts = l.attempt and j.state = 'dispatched' \
           and (l.handout = 0 or j.handouts = l.handout)",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(&handouts)
    .execute(db)
    .await?;
    Ok(())
}

/// A leased job ready to run, and how long its lease has left (PostgreSQL's clock).
#[derive(Clone, Debug)]
pub struct Taken {
    /// The job.
    pub job: Running,
    /// Time left before the ledger presumes it lost.
    pub lease_left: Duration,
}

/// Takes the jobs of `leases` that are still to run, in one statement: a lease the ledger has
/// moved past (the job finished, or was presumed lost and handed out again, or an operator
/// acted on it), or of a hand-out given back and handed out again (decision 36), runs nothing;
/// the leases of a paused queue are given back uncounted, for the
/// relay to hand out after it resumes (as `retry`, which no pending email job of the same
/// thread can collide with). Jobs of kinds [`JobKind::claimed_before_running`] are claimed for
/// `worker` (`running`, their lease renewed to `deadline`), so a second delivery of the same
/// ticket finds them taken; the others are only read, and the statement writes (and waits for
/// a commit) only when a queue is paused or such a job is among them.
///
/// Each job is read by its primary key behind an `offset 0` fence, its state tested on the row
/// found: a state condition in the scan let the generic plan read the in-flight index, all of
/// it, for every ticket, whenever the statistics said few jobs were in flight (decision 35).
pub async fn take(
    db: &PgPool,
    leases: &[Lease],
    worker: &str,
    deadline: Duration,
) -> Result<Vec<Taken>> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = leases.iter().map(|l| (l.id, l.attempt)).unzip();
    let handouts: Vec<i32> = leases.iter().map(|l| l.handout).collect();
    let unclaimed = kinds_claimed(false);
    /// id, kind, payload, attempt, max attempts, now, lease seconds left, hand-out.
    type Row = (
        Uuid,
        String,
        serde_json::Value,
        i32,
        i32,
        DateTime<Utc>,
        f64,
        i32,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "with lease as ( \
               select * from unnest($1::uuid[], $2::int4[], $6::int4[]) \
                 as l(id, attempt, handout)), \
             open as ( \
               select j.*, j.kind = any($4) as read_only, \
                 exists (select 1 from queue_controls q where q.kind = j.kind and q.paused) \
                   as paused \
               from lease l cross join lateral ( \
                 select id, kind, payload, state, attempts, handouts, max_attempts, \
                        deadline_at from jobs \
                 where id = l.id offset 0) j \
               where j.state = 'dispatched' and j.attempts = l.attempt \
                 and (l.handout = 0 or j.handouts = l.handout)), \
             held as ( \
               update jobs j set state = 'retry', attempts = j.attempts - 1, \
                 deadline_at = null, updated_at = now() \
               from open o where j.id = o.id and o.paused \
                 and j.state = o.state and j.attempts = o.attempts \
                 and j.handouts = o.handouts), \
             claimed as ( \
               update jobs j set state = 'running', worker = $3, updated_at = now(), \
                 deadline_at = now() + make_interval(secs => $5) \
               from open o where j.id = o.id and not o.paused and not o.read_only \
                 and j.state = o.state and j.attempts = o.attempts \
                 and j.handouts = o.handouts \
               returning j.id, j.kind, j.payload, j.attempts, j.max_attempts, j.deadline_at, \
                 j.handouts), \
             taken as ( \
               select id, kind, payload, attempts, max_attempts, deadline_at, handouts \
               from claimed \
               union all \
               select id, kind, payload, attempts, max_attempts, deadline_at, handouts \
               from open where read_only and not paused) \
             select id, kind, payload, attempts, max_attempts, now(), \
                    greatest(0, extract(epoch from deadline_at - now()))::float8, handouts \
             from taken",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(worker)
    .bind(&unclaimed)
    .bind(secs(deadline))
    .bind(&handouts)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, kind, payload, attempt, max_attempts, started_at, left, handout)| Taken {
                job: Running {
                    handout,
                    ..Running::from_row((id, kind, payload, attempt, max_attempts, started_at))
                },
                lease_left: Duration::from_secs_f64(left.max(0.0)),
            },
        )
        .collect())
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
    /// When this attempt started (PostgreSQL's clock), for its history.
    pub started_at: DateTime<Utc>,
    /// The hand-out it was taken under (decision 36); 0 when claimed from an older relay's
    /// ticket, whose outcome matches any hand-out of its attempt.
    pub handout: i32,
}

/// A [`Running`] as its statements select it: id, kind, payload, attempt, max attempts, start.
type RunningRow = (Uuid, String, serde_json::Value, i32, i32, DateTime<Utc>);

impl Running {
    fn from_row((id, kind, payload, attempt, max_attempts, started_at): RunningRow) -> Self {
        Self {
            id,
            kind: JobKind::parse(&kind).unwrap_or(JobKind::Deliver),
            payload,
            attempt,
            max_attempts,
            started_at,
            handout: 0,
        }
    }

    /// Whether a failure now would be the last allowed.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// Claims dispatched jobs for running, for tickets from relays older than decision 34 (which
/// carry no lease), in one statement (one round trip, one commit) however many: each started
/// job's row is `running` with its attempt counted and `worker` holding it
/// (its history is written with its outcome, [`finish`], or as lost, [`requeue_lost`]). Ids
/// missing from the answer were not dispatched any more (another worker took them, or they
/// already finished: a duplicate delivery of the same ticket) or belong to a paused queue, in
/// which case they go back to waiting for the relay to hand out after the queue resumes (as
/// `retry`, which no pending email job of the same thread can collide with).
pub async fn start(
    db: &PgPool,
    ids: &[Uuid],
    worker: &str,
    deadline: Duration,
) -> Result<Vec<Running>> {
    let rows: Vec<RunningRow> = sqlx::query_as(
        "with started as ( \
           update jobs set state = 'running', attempts = attempts + 1, updated_at = now(), \
             deadline_at = now() + make_interval(secs => $2), worker = $3 \
           where id = any($1) and state = 'dispatched' \
             and not exists (select 1 from queue_controls q \
                             where q.kind = jobs.kind and q.paused) \
           returning id, kind, payload, attempts, max_attempts, updated_at), \
         held as ( \
           update jobs set state = 'retry', deadline_at = null, updated_at = now() \
           where id = any($1) and state = 'dispatched' \
             and exists (select 1 from queue_controls q where q.kind = jobs.kind and q.paused)) \
         select id, kind, payload, attempts, max_attempts, updated_at from started",
    )
    .bind(ids)
    .bind(secs(deadline))
    .bind(worker)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Running::from_row).collect())
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

/// Records the outcomes of attempts `worker` ran, in one statement (one round trip, one commit)
/// however many: each job's row, with the start of the attempt whose outcome it holds, and a
/// history row for each attempt that did not succeed (decision 40: a done or skipped attempt
/// lives on its job's row, and `job_history` shows it). An outcome for an attempt that is not
/// the job's current one (it was presumed lost and handed out again, or an operator acted on
/// it) changes only that attempt's history; one from a hand-out given back and handed out
/// again under the same attempt changes nothing (decision 36).
///
/// The same statement adds the succeeded outcomes that took and the failed attempts it
/// recorded to `worker`'s count for the minute, which the queue board sums (decision 49).
///
/// Returns the attempts (job, attempt) whose row took its outcome (the others were late or
/// duplicate runs). The outcomes must name distinct attempts.
///
/// Rows are read by primary key, as [`take`] reads them (decision 35), and updated only if
/// still as read.
pub async fn finish(
    db: &PgPool,
    worker: &str,
    finished: &[(&Running, &Outcome)],
) -> Result<Vec<(Uuid, i32)>> {
    let n = finished.len();
    let (mut ids, mut attempts, mut handouts, mut started) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut kinds = Vec::with_capacity(n);
    let (mut states, mut texts, mut errors, mut nexts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (job, outcome) in finished {
        let (state, text, error, next): (&str, Option<&str>, Option<&str>, Option<DateTime<Utc>>) =
            match outcome {
                Outcome::Done(what) => ("done", Some(what), None, None),
                Outcome::Skipped(why) => ("skipped", Some(why), None, None),
                Outcome::Retry { error, at } => ("retry", None, Some(error), Some(*at)),
                Outcome::Dead(error) => ("dead", None, Some(error), None),
            };
        ids.push(job.id);
        kinds.push(job.kind.as_str());
        attempts.push(job.attempt);
        handouts.push(job.handout);
        started.push(job.started_at);
        states.push(state);
        texts.push(text);
        errors.push(error);
        nexts.push(next);
    }
    let rows: Vec<(Uuid, i32)> = sqlx::query_as(
        "with outcome as ( \
           select * from unnest($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::text[], \
                                $6::timestamptz[], $7::timestamptz[], $9::int4[], $10::text[]) \
             as o(id, attempt, state, text, error, next_run_at, started_at, handout, kind)), \
         current as ( \
           select o.*, j.state as was, j.handouts from outcome o cross join lateral ( \
             select state, attempts, handouts from jobs where id = o.id offset 0) j \
           where j.state in ('dispatched', 'running') and j.attempts = o.attempt \
             and (o.handout = 0 or j.handouts = o.handout)), \
         finished as ( \
           update jobs j set state = c.state, outcome = coalesce(c.text, j.outcome), \
             worker = $8, \
             last_error = coalesce(c.error, j.last_error), \
             next_run_at = coalesce(c.next_run_at, j.next_run_at), \
             deadline_at = null, updated_at = now(), started_at = c.started_at, \
             finished_at = case when c.state in ('done', 'skipped', 'dead') then now() end \
           from current c \
           where j.id = c.id and j.state = c.was and j.attempts = c.attempt \
             and j.handouts = c.handouts \
           returning j.id, j.attempts, j.kind, j.state), \
         history as ( \
           insert into job_attempts (job_id, attempt, worker, started_at, finished_at, error) \
           select o.id, o.attempt, $8, o.started_at, now(), o.error from outcome o \
           where not (o.state in ('done', 'skipped') \
                      and (o.id, o.attempt) in (select id, attempts from finished)) \
             and exists (select 1 from jobs j where j.id = o.id \
                         and (o.handout = 0 or j.handouts = o.handout \
                              or j.attempts <> o.attempt)) \
           on conflict (job_id, attempt) do update \
             set finished_at = excluded.finished_at, error = excluded.error \
           returning job_id, attempt, error, xmax = 0 as inserted), \
         counted as ( \
           insert into job_outcome_counts as c (kind, minute, counted_by, succeeded, failed) \
           select kind, date_trunc('minute', now()), $8, count(*) filter (where ok), \
                  count(*) filter (where not ok) \
           from (select kind, true as ok from finished where state in ('done', 'skipped') \
                 union all \
                 select o.kind, false from history h \
                 join outcome o on o.id = h.job_id and o.attempt = h.attempt \
                 where h.error is not null and h.inserted) counted \
           group by kind order by kind \
           on conflict (kind, minute, counted_by) do update \
             set succeeded = c.succeeded + excluded.succeeded, \
                 failed = c.failed + excluded.failed) \
         select id, attempts from finished",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(&states)
    .bind(&texts)
    .bind(&errors)
    .bind(&nexts)
    .bind(&started)
    .bind(worker)
    .bind(&handouts)
    .bind(&kinds)
    .fetch_all(db)
    .await?;
    Ok(rows)
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
