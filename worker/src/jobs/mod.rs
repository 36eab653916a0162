//! Running one job: take its lease from the ledger, do it, record the outcome there (both
//! batched with other jobs' by [`crate::ledger`]; only the outcome writes, decision 34).
//!
//! The ledger, not apalis, owns retries: a transient failure is recorded as `retry` with an
//! exponential, jittered delay, and the relay hands it back when due; a permanent failure, or the
//! last allowed attempt, is recorded as `dead` with its error. The handler then returns `Ok`, so
//! apalis' own retry path never runs.

pub mod deliver;
pub mod digest_email;
pub mod inbound_mail;
pub mod notify_email;
pub mod purge;
pub mod verify_email;

use crate::Ctx;
use crate::ledger::Ask;
use apalis::prelude::*;
use chrono::Utc;
use convos_core::jobs::{Handed, JobKind, JobTicket};
use convos_store::jobs::{Outcome, Running, Taken, backoff};
use futures::FutureExt;
use rand::Rng;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Why a job did not do its work.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth trying again later (network, SMTP, Redis).
    #[error("{0}")]
    Transient(String),
    /// Trying again cannot help (a malformed payload).
    #[error("{0}")]
    Permanent(String),
}

impl From<convos_store::StoreError> for JobError {
    fn from(e: convos_store::StoreError) -> Self {
        JobError::Transient(format!("database: {e}"))
    }
}

impl From<redis::RedisError> for JobError {
    fn from(e: redis::RedisError) -> Self {
        JobError::Transient(format!("redis: {e}"))
    }
}

/// What a job that worked reports: done, or skipped with a reason.
pub type JobResult = Result<Outcome, JobError>;

/// The jobs of one kind this process may run at once, shared by the tickets of its queue, and
/// a count of its queue's progress (tickets taken, jobs ended) for the stall watchdog.
#[derive(Clone, Debug)]
pub struct Slots(Arc<tokio::sync::Semaphore>, Arc<AtomicU64>, JobKind, usize);

impl Slots {
    /// `n` slots (at least one) for jobs of `kind`.
    pub fn new(kind: JobKind, n: usize) -> Self {
        Self(
            Arc::new(tokio::sync::Semaphore::new(n.max(1))),
            Arc::default(),
            kind,
            n.max(1),
        )
    }

    /// Tickets taken plus jobs ended so far: it stands still only while the queue does nothing.
    pub fn progress(&self) -> u64 {
        self.1.load(Ordering::Relaxed)
    }

    fn progressed(&self) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

/// The apalis handler for every queue: runs the ticket's jobs side by side, each once a slot
/// of its kind is free (the process works on at most `worker_concurrency` jobs of a kind at
/// once, however they were ticketed; jobs waiting for their outcome's commit hold no slot).
/// A panicking job is reported as an error; its ledger row stays leased until its deadline
/// makes it due again, and the ticket's other jobs finish. The delivery markers of the
/// ticket's `deliver` jobs recorded done are deleted together at the end (one Redis call).
pub async fn handle(
    ticket: JobTicket,
    ctx: Data<Arc<Ctx>>,
    slots: Data<Slots>,
) -> Result<(), BoxDynError> {
    let ctx: Arc<Ctx> = (*ctx).clone();
    let slots: &Slots = &slots;
    slots.progressed();
    let asks: Vec<Ask> = match ticket.handed() {
        Handed::Leased(leases) => leases.into_iter().map(Ask::Lease).collect(),
        Handed::Claim(ids) => ids.into_iter().map(Ask::Claim).collect(),
    };
    let results = if slots.2 == JobKind::Deliver && asks.iter().all(|a| matches!(a, Ask::Lease(_)))
    {
        match AssertUnwindSafe(deliveries(asks, &ctx, slots))
            .catch_unwind()
            .await
        {
            Ok(results) => results,
            Err(_) => vec![Err("a delivery panicked".into())],
        }
    } else {
        let runs = asks.into_iter().map(|ask| {
            let ctx = ctx.clone();
            let slots = slots.clone();
            async move {
                let result = match AssertUnwindSafe(run_one(ask, ctx.clone(), &slots))
                    .catch_unwind()
                    .await
                {
                    Ok(result) => result,
                    Err(_) => Err("the job panicked".into()),
                };
                slots.progressed();
                result
            }
        });
        futures::future::join_all(runs).await
    };
    let mut delivered = Vec::new();
    let mut failed = None;
    for result in results {
        match result {
            Ok(Some(job)) => delivered.push(job),
            Ok(None) => {}
            Err(e) => failed = Some(e),
        }
    }
    deliver::forget(&ctx, &delivered).await;
    failed.map_or(Ok(()), Err)
}

/// What a job's run left: the job if it was a `deliver` job recorded done, or an error.
type Ran = Result<Option<Running>, BoxDynError>;

/// Runs a ticket's leased `deliver` jobs together (decision 41): takes them (one ledger
/// statement, as every take), prepares their appends ([`deliver::prepare`], before they hold a
/// slot: decision 66), runs them in chunks of at most the kind's slots, each holding a slot
/// per job for one Redis round trip ([`deliver::run_all`]), and records each outcome (one
/// ledger statement). Jobs of one chunk share its time limit, the shortest of theirs.
async fn deliveries(asks: Vec<Ask>, ctx: &Ctx, slots: &Slots) -> Vec<Ran> {
    let taken =
        futures::future::join_all(asks.into_iter().map(|ask| bounded(ctx.ledger.take(ask)))).await;
    let taken_at = std::time::Instant::now();
    let mut results = Vec::new();
    let mut ready = Vec::new();
    for taken in taken {
        match taken {
            Ok(Some(taken)) => {
                let appends = deliver::prepare(ctx, &taken.job);
                ready.push((taken, appends));
            }
            // Not to run (see `run_one`), or the ledger did not answer.
            other => {
                results.push(other.map(|_| None));
                slots.progressed();
            }
        }
    }
    let mut chunks = Vec::new();
    let mut ready = ready.into_iter().peekable();
    while ready.peek().is_some() {
        chunks.push(ready.by_ref().take(slots.3).collect::<Vec<_>>());
    }
    let runs = chunks
        .into_iter()
        .map(|chunk| delivery_chunk(chunk, ctx, slots, taken_at));
    results.extend(futures::future::join_all(runs).await.into_iter().flatten());
    results
}

/// Runs one chunk of [`deliveries`], once a slot is free for each of its jobs.
async fn delivery_chunk(
    chunk: Vec<(Taken, Result<deliver::Appends, JobError>)>,
    ctx: &Ctx,
    slots: &Slots,
    taken_at: std::time::Instant,
) -> Vec<Ran> {
    let permits = match slots.0.clone().acquire_many_owned(chunk.len() as u32).await {
        Ok(permits) => permits,
        Err(_) => return vec![Err("the job slots closed".into())],
    };
    let waited = taken_at.elapsed();
    let mut results = Vec::new();
    let mut jobs = Vec::with_capacity(chunk.len());
    let mut appends = Vec::with_capacity(chunk.len());
    let mut limit: Option<Duration> = None;
    for (taken, prepared) in chunk {
        let lease_left = taken.lease_left.saturating_sub(waited);
        match time_limit(ctx.settings.deadline(), lease_left) {
            Some(own) => {
                limit = Some(limit.map_or(own, |l| l.min(own)));
                jobs.push(taken.job);
                appends.push(prepared);
            }
            None => {
                tracing::warn!(
                    job.id = %taken.job.id, lease_left_ms = lease_left.as_millis() as u64,
                    "job left unrun: its lease ends too soon (it waited too long to start)"
                );
                results.push(Ok(None));
                slots.progressed();
            }
        }
    }
    let Some(limit) = limit else {
        return results;
    };
    let started = std::time::Instant::now();
    let queue = JobKind::Deliver.as_str();
    ctx.metrics
        .started
        .with_label_values(&[queue])
        .inc_by(jobs.len() as u64);
    let ran = match tokio::time::timeout(limit, deliver::run_all(ctx, appends)).await {
        Ok(ran) => ran,
        Err(_) => jobs.iter().map(|_| Err(timed_out(limit))).collect(),
    };
    let outcomes: Vec<Outcome> = jobs
        .iter()
        .zip(ran)
        .map(|(job, result)| settle(ctx, job, result, started))
        .collect();
    drop(permits);
    let records = jobs
        .into_iter()
        .zip(outcomes)
        .map(|(job, outcome)| record(ctx, job, outcome));
    for recorded in futures::future::join_all(records).await {
        results.push(recorded);
        slots.progressed();
    }
    results
}

/// Takes, runs and records one job; returns it if it was a `deliver` job whose outcome
/// recorded it done (its markers can go). A slot of its kind is given back before the outcome
/// is written: waiting for the ledger's commit is not work, and holding slots through it capped
/// a queue at its slots over the ledger's latency. A `deliver` job (only read when taken) takes
/// its slot after its take, so a ticket's jobs are taken together and a slot is held for the
/// work alone; a job that is claimed when taken (every other kind) takes its slot first, so
/// no claimed job waits for a slot while its lease runs out.
async fn run_one(ask: Ask, ctx: Arc<Ctx>, slots: &Slots) -> Ran {
    let claims = matches!(ask, Ask::Claim(_)) || slots.2.claimed_before_running();
    let slot_first = if claims {
        Some(acquire(slots).await?)
    } else {
        None
    };
    let Some(taken) = bounded(ctx.ledger.take(ask)).await? else {
        // Not to run: finished, handed out again, or its queue paused (a duplicate or stale
        // ticket, or one given back until the queue resumes).
        return Ok(None);
    };
    let taken_at = std::time::Instant::now();
    let slot = match slot_first {
        Some(slot) => slot,
        None => acquire(slots).await?,
    };
    // Cut off before its lease ends, so a job is never presumed lost (and run again
    // elsewhere) while it still runs here; the time counts from its own start, not from its
    // ticket's, and the lease from its take, less the wait for a slot.
    let lease_left = taken.lease_left.saturating_sub(taken_at.elapsed());
    let Some(limit) = time_limit(ctx.settings.deadline(), lease_left) else {
        tracing::warn!(
            job.id = %taken.job.id, lease_left_ms = lease_left.as_millis() as u64,
            "job left unrun: its lease ends too soon (it waited too long to start)"
        );
        return Ok(None);
    };
    let job = taken.job;
    let started = std::time::Instant::now();
    let queue = job.kind.as_str();
    ctx.metrics.started.with_label_values(&[queue]).inc();
    let irrevocable = Irrevocable::default();
    // The rare kinds' futures are boxed: each is about 15 KB, and inline they made every
    // job's future (a `deliver` job's too) 33 KB, copied each time it moved: a fifth of the
    // worker's time in an engine drain was `memmove` (decision 39).
    let work = async {
        match job.kind {
            JobKind::Deliver => deliver::run(&ctx, &job).await,
            JobKind::NotifyEmail => Box::pin(notify_email::run(&ctx, &job, &irrevocable)).await,
            JobKind::PurgeExpired => Box::pin(purge::run(&ctx, &job)).await,
            JobKind::VerifyEmail => Box::pin(verify_email::run(&ctx, &job)).await,
            JobKind::InboundMail => Box::pin(inbound_mail::run(&ctx, &job)).await,
            JobKind::DigestEmail => digest_email::run(&ctx, &job).await,
        }
    };
    let overrun = lease_left.saturating_sub(limit + ctx.settings.deadline() / 20);
    let result = within(limit, overrun, &irrevocable, work).await;
    if started.elapsed() > limit && irrevocable.is_marked() {
        tracing::warn!(
            job.id = %job.id, job.kind = queue, limit_ms = limit.as_millis() as u64,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "job ran past its time limit to record what the SMTP server answered"
        );
    }
    let outcome = settle(&ctx, &job, result, started);
    drop(slot);
    record(&ctx, job, outcome).await
}

/// The outcome of a run that ended with `result`, counted and (unless it succeeded) logged.
fn settle(ctx: &Ctx, job: &Running, result: JobResult, started: std::time::Instant) -> Outcome {
    let queue = job.kind.as_str();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(JobError::Transient(error)) if !job.is_last_attempt() => {
            let base = Duration::from_millis(ctx.settings.retry_base_ms);
            let cap = Duration::from_secs(ctx.settings.retry_max_secs);
            let wait = backoff(job.attempt, base, cap, rand::rng().random::<f64>());
            let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            Outcome::Retry { error, at }
        }
        Err(e) => Outcome::Dead(e.to_string()),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    // A line per job at thousands a second cost the worker more than some jobs do; the ledger
    // is the record of every run, so only failures are logged by default.
    let label = match &outcome {
        Outcome::Done(_) | Outcome::Skipped(_) => {
            tracing::debug!(
                job.id = %job.id, job.kind = queue, attempt = job.attempt, elapsed_ms,
                outcome = ?outcome, "job finished"
            );
            if matches!(outcome, Outcome::Done(_)) {
                "done"
            } else {
                "skipped"
            }
        }
        Outcome::Retry { .. } => {
            tracing::info!(
                job.id = %job.id, job.kind = queue, attempt = job.attempt, elapsed_ms,
                outcome = ?outcome, "job failed; it will be retried"
            );
            "retry"
        }
        Outcome::Dead(_) => {
            tracing::warn!(
                job.id = %job.id, job.kind = queue, attempt = job.attempt, elapsed_ms,
                outcome = ?outcome, "job failed for good"
            );
            "dead"
        }
    };
    ctx.metrics
        .finished
        .with_label_values(&[queue, label])
        .inc();
    ctx.metrics
        .duration
        .with_label_values(&[queue])
        .observe(started.elapsed().as_secs_f64());
    outcome
}

/// Records `outcome` in the ledger (its slot given back first); returns the job if it was a
/// `deliver` job the ledger now holds done (its markers can go).
async fn record(
    ctx: &Ctx,
    mut job: Running,
    outcome: Outcome,
) -> Result<Option<Running>, BoxDynError> {
    let delivered = job.kind == JobKind::Deliver && matches!(outcome, Outcome::Done(_));
    // The outcome needs the job's identity, not its payload: no copy of the payload's tree.
    let payload = std::mem::take(&mut job.payload);
    let recorded = bounded(ctx.ledger.finish(job.clone(), outcome)).await?;
    job.payload = payload;
    // Only the run whose outcome the ledger took may forget the markers: a late or duplicate
    // run's deleting them could let a run still under way append its event again.
    Ok((delivered && recorded).then_some(job))
}

/// A slot of the queue's kind (never closed, so one always comes).
async fn acquire(slots: &Slots) -> Result<tokio::sync::OwnedSemaphorePermit, BoxDynError> {
    slots
        .0
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| "the job slots closed".into())
}

/// A run's mark that it has done what the ledger cannot undo (an SMTP server answered an email):
/// from then on it finishes, its time limit notwithstanding, so that what it did is recorded.
/// Cut off between an email's acceptance and its record, a run left the deliveries queued for
/// its retry to send again (decision 37).
#[derive(Debug, Default)]
pub struct Irrevocable(AtomicBool);

impl Irrevocable {
    /// Marks the run: its work is out in the world.
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `work` for at most `limit`; a run [`Irrevocable`] by then may go on for `overrun` more
/// (to just short of its lease's end, so no other run starts meanwhile), and only then times out.
async fn within(
    limit: Duration,
    overrun: Duration,
    irrevocable: &Irrevocable,
    work: impl std::future::Future<Output = JobResult>,
) -> JobResult {
    let mut work = std::pin::pin!(work);
    match tokio::time::timeout(limit, &mut work).await {
        Ok(result) => result,
        Err(_) if irrevocable.is_marked() => match tokio::time::timeout(overrun, work).await {
            Ok(result) => result,
            Err(_) => Err(timed_out(limit + overrun)),
        },
        Err(_) => Err(timed_out(limit)),
    }
}

/// The error of a run cut off after `after`.
fn timed_out(after: Duration) -> JobError {
    JobError::Transient(format!("timed out after {} s", after.as_secs_f64()))
}

/// How long a job may run: 80% of the deadline, and never into the last 20% of its lease
/// (the time left to record its outcome); `None` if that leaves less than a tenth of the
/// deadline, too little to be worth starting.
fn time_limit(deadline: Duration, lease_left: Duration) -> Option<Duration> {
    let limit = deadline
        .mul_f64(0.8)
        .min(lease_left.saturating_sub(deadline.mul_f64(0.2)));
    (limit >= deadline.mul_f64(0.1)).then_some(limit)
}

/// A ledger write, waited for at most twice a statement's limit (its batch may queue behind one
/// in flight): a job never waits on the ledger for good. On timeout the job's row is left as
/// it is, for its deadline to bring back.
async fn bounded<T, E>(
    write: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, BoxDynError>
where
    E: Into<BoxDynError>,
{
    match tokio::time::timeout(2 * crate::LEDGER_STATEMENT_LIMIT, write).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err("the ledger did not answer in time".into()),
    }
}

/// Runs `write` again for as long as it gives up waiting for a lock (the job pool's
/// `lock_timeout`): for writes after an effect that a retry would not repeat or would repeat
/// twice (an email sent, a reply posted), giving up is worse than waiting. The job's time
/// limit (and its overrun for irrevocable work) bounds the waits (decision 82).
pub(crate) async fn settled<T, F, Fut>(mut write: F) -> Result<T, convos_store::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, convos_store::StoreError>>,
{
    loop {
        match write().await {
            Err(convos_store::StoreError::TimedOut) => {
                tracing::info!(
                    "a write after the job's effect waited past the lock limit; waiting again"
                );
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_for_most_of_the_deadline_but_never_past_its_lease() {
        let deadline = Duration::from_secs(100);
        assert_eq!(
            time_limit(deadline, deadline),
            Some(Duration::from_secs(80)),
            "a fresh lease"
        );
        assert_eq!(
            time_limit(deadline, Duration::from_secs(50)),
            Some(Duration::from_secs(30)),
            "a ticket that waited 50 s keeps 20 s for its outcome"
        );
        assert_eq!(time_limit(deadline, Duration::from_secs(25)), None);
        assert_eq!(time_limit(deadline, Duration::ZERO), None);
    }

    async fn slow(irrevocable: &Irrevocable, mark: bool) -> JobResult {
        if mark {
            irrevocable.mark();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Outcome::Done("recorded".into()))
    }

    #[tokio::test]
    async fn a_run_past_its_limit_is_cut_off_unless_it_did_what_it_must_record() {
        let (limit, overrun) = (Duration::from_millis(50), Duration::from_secs(5));
        let unmarked = Irrevocable::default();
        let cut = within(limit, overrun, &unmarked, slow(&unmarked, false)).await;
        assert!(matches!(cut, Err(JobError::Transient(e)) if e.contains("timed out")));

        let marked = Irrevocable::default();
        let finished = within(limit, overrun, &marked, slow(&marked, true)).await;
        assert_eq!(finished.unwrap(), Outcome::Done("recorded".into()));

        let marked = Irrevocable::default();
        let too_long = within(limit, limit, &marked, slow(&marked, true)).await;
        assert!(
            matches!(too_long, Err(JobError::Transient(e)) if e.contains("timed out")),
            "but not past its overrun"
        );
    }

    /// The size of the future a function returns, from its type alone.
    fn future_size<'a, F, Fut>(_: F) -> usize
    where
        F: Fn(Ask, Arc<Ctx>, &'a Slots) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn a_jobs_future_stays_small_whatever_kinds_it_may_run() {
        // Every job's future is moved several times on its way to running (into its ticket's
        // set of jobs, behind the panic guard); at 33 KB those copies were a fifth of the
        // worker's time in an engine drain.
        let size = future_size(run_one);
        assert!(size <= 8 * 1024, "a job's future takes {size} bytes");
    }
}
