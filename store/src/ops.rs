//! What operators see and do: the queue board, job lists and details, retry, discard, pause
//! and resume, worker heartbeats and the audit log. Plain SQL over the job ledger, so no answer
//! depends on Redis.

use crate::cursor::{Cursor, split_page};
use crate::{Result, StoreError, Written};
use chrono::{DateTime, Utc};
use convos_core::jobs::JobKind;
pub use convos_core::ops::{
    Attempt, AuditEntry, Board, JobDetail, JobSummary, QueueStats, WorkerInfo,
};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

/// Counts every queue's jobs by state, and its outcomes in the last hour and day.
///
/// Each count of jobs reads only the jobs it counts, through the index that holds them (the due
/// jobs, those in flight, the dead): finished jobs are kept for days until the purge, and
/// counting a kind's every job read all of them each time an operator's board refreshed (about
/// half a second for a queue holding a million). The outcomes are not counted from the rows at
/// all but summed from the counts the workers keep per minute as they record them (decision
/// 49): the last day's rows grow with the traffic, the minutes of a day do not. The hour and
/// the day are to the minute.
///
/// The live counts stop at [`COUNT_LIMIT`] (decision 57): a backlog of millions is read to its
/// limit, not to its end, so a refresh costs the same during an incident as on a quiet day.
/// The due and in-flight counts are ordered as their indexes are, so that each walks its index
/// and stops: left to choose, the planner read a small table from its start, and so would a
/// large one whose counted rows lie at its end. The dead jobs are counted in the order of their
/// index by queue and id (migration 0032), so that this count too walks its index and stops
/// (a full-suite run once saw the plan test read 16,001 rows where 4,000 were expected; which
/// count read more was not found).
pub async fn board(db: &PgPool) -> Result<Board> {
    board_counting_to(db, COUNT_LIMIT).await
}

/// Where the board's live counts stop: about 25 ms of index per count on an idle machine.
pub const COUNT_LIMIT: i64 = 100_000;

/// [`board`], its live counts stopping at `limit`.
pub async fn board_counting_to(db: &PgPool, limit: i64) -> Result<Board> {
    let mut queues = Vec::new();
    for kind in JobKind::ALL {
        let row: (i64, i64, i64, i64, i64, i64, i64, i64, f64) = sqlx::query_as(
            "with due as ( \
               select (select count(*) from (select from jobs where kind = $1 \
                         and state in ('pending', 'retry') and next_run_at <= now() \
                         order by next_run_at limit $2) n) as now, \
                      (select count(*) from (select from jobs where kind = $1 \
                         and state in ('pending', 'retry') and next_run_at > now() \
                         order by next_run_at limit $2) n) as later, \
                      (select min(next_run_at) from jobs where kind = $1 \
                         and state in ('pending', 'retry')) as oldest), \
             outcomes as ( \
               select coalesce(sum(succeeded) filter (where minute >= \
                                 date_trunc('minute', now() - interval '1 hour')), 0)::int8 \
                        as succeeded_hour, \
                      coalesce(sum(succeeded), 0)::int8 as succeeded_day, \
                      coalesce(sum(failed) filter (where minute >= \
                                 date_trunc('minute', now() - interval '1 hour')), 0)::int8 \
                        as failed_hour, \
                      coalesce(sum(failed), 0)::int8 as failed_day \
               from job_outcome_counts \
               where kind = $1 and minute >= date_trunc('minute', now() - interval '1 day')) \
             select due.now, due.later, \
               (select count(*) from (select from jobs where kind = $1 \
                  and state in ('dispatched', 'running') order by deadline_at limit $2) n), \
               outcomes.succeeded_hour, outcomes.succeeded_day, \
               outcomes.failed_hour, outcomes.failed_day, \
               (select count(*) from (select from jobs where kind = $1 and state = 'dead' \
                  order by id limit $2) n), \
               greatest(coalesce(extract(epoch from now() - due.oldest), 0), 0)::float8 \
             from due, outcomes",
        )
        .bind(kind.as_str())
        .bind(limit)
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
            failed_1h: row.5,
            failed_24h: row.6,
            dead: row.7,
            oldest_pending_secs: row.8,
            paused,
            count_limit: Some(limit),
        });
    }
    let workers: Vec<WorkerRow> = sqlx::query_as(
        "select name, host, pid, started_at, last_seen_at from worker_heartbeats \
         where last_seen_at > now() - interval '1 minute' order by name",
    )
    .fetch_all(db)
    .await?;
    let workers = workers
        .into_iter()
        .map(|w| WorkerInfo {
            name: w.name,
            host: w.host,
            pid: w.pid,
            started_at: w.started_at,
            last_seen_at: w.last_seen_at,
        })
        .collect();
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

/// Pauses or resumes a queue; returns whether that changed anything. Resuming a paused queue
/// makes its waiting jobs due, which counts as writing jobs.
pub async fn set_paused(
    db: &PgPool,
    kind: JobKind,
    paused: bool,
    actor: Uuid,
) -> Result<Written<bool>> {
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
    let changed = changed == 1;
    Ok(Written::new(changed, changed && !paused))
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

#[derive(sqlx::FromRow)]
struct WorkerRow {
    name: String,
    host: String,
    pid: i32,
    started_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    kind: String,
    state: String,
    attempts: i32,
    max_attempts: i32,
    next_run_at: DateTime<Utc>,
    last_error: Option<String>,
    outcome: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl JobRow {
    /// Where a page ending with this job leaves off.
    fn cursor(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id,
        }
    }
}

impl From<JobRow> for JobSummary {
    fn from(r: JobRow) -> Self {
        JobSummary {
            id: r.id,
            kind: r.kind,
            state: r.state,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            next_run_at: r.next_run_at,
            last_error: r.last_error,
            outcome: r.outcome,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt: i32,
    worker: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<f64>,
    error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: Uuid,
    actor: String,
    action: String,
    target: String,
    affected: i64,
    created_at: DateTime<Utc>,
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

/// An `ilike` pattern matching any text that contains `text` literally: `%`, `_` and the
/// escape character `\` (the default `escape`) lose their pattern meaning.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `$3` of [`filter_sql`] is a [`contains_pattern`].
fn filter_sql() -> &'static str {
    "($1::text is null or kind = $1) and ($2::text is null or state = $2) \
     and ($3::text is null or key ilike $3 or last_error ilike $3 or payload::text ilike $3) \
     and ($4::uuid is null or key like '%' || $4::text || '%' \
          or (kind = 'notify_email' and exists (select 1 from deliveries d \
                where d.message_id = $4 and d.thread_id::text = payload->>'thread_id' \
                  and d.recipient_id::text = payload->>'recipient_id'))) \
     and ($5::uuid is null or payload->>'recipient_id' = $5::text \
          or payload->'users' ? $5::text)"
}

/// The filter's queue and state as literals (from the known kinds and states, never the
/// caller's text), beside their parameters in [`filter_sql`]: a prepared statement's generic
/// plan cannot tell that `($2 is null or state = $2)` means `state = 'dead'`, so without them
/// it could use no index of dead jobs and walked the ledger for them (the operators' screen
/// lists them every few seconds). An unknown state matches nothing.
fn known_filters_sql(filter: &JobFilter) -> String {
    let mut sql = String::new();
    if let Some(kind) = filter.kind {
        sql.push_str(&format!(" and kind = '{}'", kind.as_str()));
    }
    if let Some(state) = &filter.state {
        match STATES.iter().find(|s| **s == state.as_str()) {
            Some(known) => sql.push_str(&format!(" and state = '{known}'")),
            None => sql.push_str(" and false"),
        }
    }
    sql
}

/// The most jobs a page of a filtered job list reads ([`list_jobs`]), whatever the filters.
pub const JOB_LIST_WINDOW: i64 = 5_000;

/// The states whose jobs an index holds (due, in flight, dead): a page of them reads that
/// index, not the ledger. The others (`done`, `skipped`, `discarded`) are most of the ledger.
const INDEXED_STATES: [&str; 5] = ["pending", "retry", "dispatched", "running", "dead"];

/// A page of jobs, newest first: in the order of their ids, which are UUIDv7 (decision 44), so
/// a page is read from the primary key's newest end and stops once it is full.
///
/// Filters that can match few jobs (text, message, user, a queue, a finished state) read at
/// most [`JOB_LIST_WINDOW`] jobs after the cursor (decision 51): a page may hold fewer jobs
/// than `limit`, none at all, and still have a next cursor, which continues after the jobs
/// read. A state whose jobs an index holds ([`INDEXED_STATES`]) is read through that index; it
/// is also written into the statement ([`known_filters_sql`]), so that every plan uses it.
pub async fn list_jobs(
    db: &PgPool,
    filter: &JobFilter,
    limit: i64,
    after: Option<Cursor>,
) -> Result<(Vec<JobSummary>, Option<String>)> {
    let after = after.map_or(Uuid::max(), |c| c.id);
    let indexed = filter
        .state
        .as_deref()
        .is_some_and(|s| INDEXED_STATES.contains(&s));
    let rare = filter.q.is_some() || filter.message_id.is_some() || filter.user.is_some();
    // Unfiltered, or an indexed state (and its queue): the page is the first jobs read.
    let plain = !rare && (indexed || (filter.kind.is_none() && filter.state.is_none()));
    if plain {
        let page = |known: &str| {
            format!(
                "select id, kind, state, attempts, max_attempts, next_run_at, last_error, \
                        outcome, created_at, updated_at \
                 from jobs where {}{known} and id < $6 \
                 order by id desc limit $7",
                filter_sql(),
            )
        };
        let sql = match filter.kind {
            // The indexes of a state lead with the queue: a page of every queue is a page of
            // each, merged. Read as one, it walked the ledger from its newest end, or read every
            // job in the state and sorted them (20,000 dead jobs for a page of 100).
            None if indexed => {
                let known = known_filters_sql(filter);
                let arms: Vec<String> = crate::jobs::all_kinds()
                    .into_iter()
                    .map(|kind| format!("({})", page(&format!(" and kind = '{kind}'{known}"))))
                    .collect();
                format!(
                    "select * from ({}) page order by id desc limit $7",
                    arms.join(" union all ")
                )
            }
            _ => page(&known_filters_sql(filter)),
        };
        let rows: Vec<JobRow> = bind_filter(sqlx::query_as(AssertSqlSafe(sql)), filter)
            .bind(after)
            .bind(limit + 1)
            .fetch_all(db)
            .await?;
        let (rows, next) = split_page(rows, limit, JobRow::cursor);
        return Ok((rows.into_iter().map(Into::into).collect(), next));
    }
    // The jobs read: those of the state's index, or the ledger's newest end after the cursor.
    // (Not bounded below by a message's time: the email job that covered a message can be
    // older than it, and so can the other email jobs of its thread to its recipient.)
    let read = if indexed {
        known_filters_sql(filter)
    } else {
        String::new()
    };
    // The page, in one pass over the window: the jobs the filters match, and the window's last
    // job (matched or not) if it read a whole window. Once that job is reached with the page
    // not full, the next page starts after it.
    let sql = format!(
        "select id, kind, state, attempts, max_attempts, next_run_at, last_error, outcome, \
                created_at, updated_at, matched, n = {JOB_LIST_WINDOW} as edge \
         from ( \
           select *, coalesce({filter}, false) as matched from ( \
             select id, kind, state, attempts, max_attempts, next_run_at, last_error, outcome, \
                    created_at, updated_at, key, payload, \
                    row_number() over (order by id desc) as n \
             from jobs where id < $6{read} order by id desc limit {JOB_LIST_WINDOW}) w) f \
         where matched or n = {JOB_LIST_WINDOW} \
         order by id desc limit $7",
        filter = filter_sql(),
    );
    let rows: Vec<WindowRow> = bind_filter(sqlx::query_as(AssertSqlSafe(sql)), filter)
        .bind(after)
        .bind(limit + 2)
        .fetch_all(db)
        .await?;
    let edge = rows.iter().find(|r| r.edge).map(|r| r.job.cursor());
    let jobs: Vec<JobRow> = rows
        .into_iter()
        .filter(|r| r.matched)
        .map(|r| r.job)
        .collect();
    let (jobs, next) = split_page(jobs, limit, JobRow::cursor);
    Ok((
        jobs.into_iter().map(Into::into).collect(),
        next.or(edge.map(|c| c.encode())),
    ))
}

/// Binds `filter` as `$1`–`$5` of [`filter_sql`].
fn bind_filter<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    filter: &'q JobFilter,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
        .bind(filter.kind.map(JobKind::as_str))
        .bind(&filter.state)
        .bind(filter.q.as_deref().map(contains_pattern))
        .bind(filter.message_id)
        .bind(filter.user)
}

/// A row of a windowed [`list_jobs`] statement: a job the filters matched, or the window's
/// last job, or both.
#[derive(sqlx::FromRow)]
struct WindowRow {
    #[sqlx(flatten)]
    job: JobRow,
    /// The filters match it.
    matched: bool,
    /// The window's last job.
    edge: bool,
}

/// One job with its payload and attempt history.
pub async fn job(db: &PgPool, id: Uuid) -> Result<JobDetail> {
    let job: JobRow = sqlx::query_as(
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
    // Finished and lost attempts (a successful one from the job's row, decision 40), then the
    // one under way (its history is written with its outcome).
    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "select attempt, worker, started_at, finished_at, \
                (extract(epoch from finished_at - started_at) * 1000)::float8 as duration_ms, error \
         from job_history where job_id = $1 \
         union all \
         select j.attempts, coalesce(j.worker, 'unknown'), j.updated_at, null, null, null \
         from jobs j where j.id = $1 and j.state in ('dispatched', 'running') \
           and not exists (select 1 from job_attempts a \
                           where a.job_id = j.id and a.attempt = j.attempts) \
         order by attempt",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    let attempts_history = attempts
        .into_iter()
        .map(|a| Attempt {
            attempt: a.attempt,
            worker: a.worker,
            started_at: a.started_at,
            finished_at: a.finished_at,
            duration_ms: a.duration_ms,
            error: a.error,
        })
        .collect();
    Ok(JobDetail {
        job: job.into(),
        key,
        payload,
        attempts_history,
    })
}

/// The most jobs one step of a bulk action reads ([`retry`], [`discard`]), as a page of the
/// job list does (decision 67).
pub const BULK_WINDOW: i64 = 5_000;

/// What one step of a bulk action did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Jobs changed.
    pub affected: u64,
    /// Where the next step starts: after the last job this one read; `None` once the walk
    /// reached the oldest job it could act on.
    pub next: Option<Cursor>,
}

/// The window of one step: the newest [`BULK_WINDOW`] jobs in `states` (of the filter's queue
/// and state, `$6` alone when given) older than the cursor (`after`), through the indexes that
/// hold those states by queue and id (migration 0032), never the ledger; `matched` where the
/// rest of the filter holds. The jobs to change are then looked up by id (`= any(array(…))`, a
/// primary-key lookup whatever the planner guesses of the filter; as a join, a text filter it
/// took for rare made it read the whole ledger).
fn window_sql(filter: &JobFilter, states: &[&str], after: &str) -> String {
    let known = known_filters_sql(filter);
    // One arm per state and queue: the indexes of a state lead with the queue, so an arm of
    // every queue at once read every job in the state (or walked the ledger) for each step.
    // Merged in id order, each arm is read only as far as the window needs, in a plan made for
    // the step's cursor; a generic plan (the statement cached and planned once for any cursor)
    // read every job in the state again, so the statements built on this are not cached.
    let kinds = match filter.kind {
        Some(kind) => vec![kind.as_str()],
        None => crate::jobs::all_kinds(),
    };
    let arms: Vec<String> = states
        .iter()
        .flat_map(|state| kinds.iter().map(move |kind| (state, kind)))
        .map(|(state, kind)| {
            format!(
                "(select id, created_at, coalesce({filter}, false) as matched \
                  from jobs where state = '{state}' and kind = '{kind}'{known} \
                  and id < {after} and ($6::uuid is null or id = $6) \
                  order by id desc limit {BULK_WINDOW})",
                filter = filter_sql(),
            )
        })
        .collect();
    format!(
        "bulk_window as (select * from ({}) w order by id desc limit {BULK_WINDOW}), \
         window_end as (select id, created_at, \
             (select count(*) from bulk_window) = {BULK_WINDOW} as filled \
           from bulk_window order by id limit 1)",
        arms.join(" union all ")
    )
}

/// The step's answer from the `changed` rows and the window's end.
fn step_sql() -> &'static str {
    "select (select count(*) from changed), \
            (select id from window_end where filled), \
            (select created_at from window_end where filled)"
}

/// A step's answer as read.
fn step_of((affected, id, at): (i64, Option<Uuid>, Option<DateTime<Utc>>)) -> Step {
    Step {
        affected: affected as u64,
        next: id.zip(at).map(|(id, at)| Cursor { at, id }),
    }
}

/// Makes dead or waiting-to-retry jobs matching `filter` (or the one `id`) due now, one window
/// of them, newest first, after `after` (decision 67); dead jobs get a fresh attempt budget,
/// and an email job's failed deliveries are queued again.
///
/// A window of at most [`BULK_WINDOW`] jobs per statement: a million dead email jobs after a
/// relay's outage, retried in one statement, ran into the statement limit every time, and the
/// documented recovery could not finish. The deliveries are found by thread and recipient
/// through their index of failed ones, all of them in one update (each retried email job's
/// update of its own, matched by a text cast, read every delivery ever made).
pub async fn retry(
    db: &PgPool,
    filter: &JobFilter,
    id: Option<Uuid>,
    after: Option<Cursor>,
) -> Result<Written<Step>> {
    let sql = format!(
        "with {window}, \
         changed as ( \
           update jobs set state = 'retry', next_run_at = now(), updated_at = now(), \
             finished_at = null, \
             max_attempts = case when state = 'dead' then attempts + {budget} \
                                 else max_attempts end \
           where id = any(array(select id from bulk_window where matched)) \
             and state in ('dead', 'retry') \
           returning id, kind, payload), \
         emails as ( \
           select (payload->>'thread_id')::uuid as thread_id, \
                  (payload->>'recipient_id')::uuid as recipient_id, array_agg(id) as jobs \
           from changed \
           where kind = 'notify_email' and payload->>'thread_id' ~ $7 \
             and payload->>'recipient_id' ~ $7 \
           group by 1, 2), \
         requeued as ( \
           update deliveries d set status = 'queued', updated_at = now() \
           from emails e \
           where d.thread_id = e.thread_id and d.recipient_id = e.recipient_id \
             and d.status = 'failed' \
             and (d.tried_by is null or d.tried_by = any(e.jobs))) \
         {step}",
        window = window_sql(filter, &["dead", "retry"], "$8"),
        budget = budget_sql(),
        step = step_sql(),
    );
    let row = bind_filter(sqlx::query_as(AssertSqlSafe(sql)), filter)
        .bind(id)
        .bind(UUID_TEXT)
        .bind(after.map_or(Uuid::max(), |c| c.id))
        // Planned for its values each time (see `window_sql`).
        .persistent(false)
        .fetch_one(db)
        .await?;
    let step = step_of(row);
    let wrote = step.affected > 0;
    Ok(Written::new(step, wrote))
}

/// A UUID as text, for reading ids out of job payloads without failing on a malformed one.
const UUID_TEXT: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// Discards dead jobs matching `filter` (or the one `id`), one window of them, newest first,
/// after `after`, as [`retry`] does: they leave the dead count for good. A discard finishes
/// the job then: it is kept `keep_days` from the discard, not from when it died (one dead for
/// over a week was purged within a minute of its discard).
///
/// A discarded email job's deliveries end `failed`: those it still holds, and those it tried
/// and left `queued` for an operator's retry (our relay refused them, decision 59's
/// `our_side`) that no other job has tried since (`tried_by`). Left queued, the sender saw them
/// pending for ever, and the thread's next email took them along after the operator had given
/// up on them. A retry of another job of the thread queues again only its own job's failed
/// deliveries, so a discard is for good.
pub async fn discard(
    db: &PgPool,
    filter: &JobFilter,
    id: Option<Uuid>,
    after: Option<Cursor>,
) -> Result<Step> {
    let sql = format!(
        "with {window}, \
         changed as ( \
           update jobs set state = 'discarded', updated_at = now(), finished_at = now() \
           where id = any(array(select id from bulk_window where matched)) \
             and state = 'dead' \
           returning id, kind, payload), \
         emails as ( \
           select id, (payload->>'thread_id')::uuid as thread_id, \
                  (payload->>'recipient_id')::uuid as recipient_id \
           from changed \
           where kind = 'notify_email' and payload->>'thread_id' ~ $8 \
             and payload->>'recipient_id' ~ $8), \
         given_up as ( \
           update deliveries d set status = 'failed', updated_at = now(), tried_by = e.id, \
             reason = coalesce(d.reason, 'discarded') \
           from emails e \
           where d.thread_id = e.thread_id and d.recipient_id = e.recipient_id \
             and d.status = 'queued' \
             and (d.claimed_by = e.id or d.tried_by = e.id)) \
         {step}",
        window = window_sql(filter, &["dead"], "$7"),
        step = step_sql(),
    );
    let row = bind_filter(sqlx::query_as(AssertSqlSafe(sql)), filter)
        .bind(id)
        .bind(after.map_or(Uuid::max(), |c| c.id))
        .bind(UUID_TEXT)
        // Planned for its values each time (see `window_sql`).
        .persistent(false)
        .fetch_one(db)
        .await?;
    Ok(step_of(row))
}

/// Records an operator action (on the pool, or in the action's own transaction).
pub async fn audit<'c>(
    db: impl sqlx::PgExecutor<'c>,
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
    let rows: Vec<AuditRow> = sqlx::query_as(
        "select a.id, u.username as actor, a.action, a.target, a.affected, a.created_at \
         from audit_log a join users u on u.id = a.actor_id order by a.created_at desc limit $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            actor: r.actor,
            action: r.action,
            target: r.target,
            affected: r.affected,
            created_at: r.created_at,
        })
        .collect())
}
