//! The relay: moves due jobs from the PostgreSQL ledger to the Redis queues, in bounded
//! batches, only while each queue is shallower than its ceiling, so a backlog of any size waits
//! in PostgreSQL (where it costs nothing) and Redis never holds more than a working set.
//!
//! Beside the relay, a housekeeping task makes lost jobs due again, schedules the periodic purge
//! (once per period across every worker: the ledger's unique key decides) and the daily digests,
//! and reports the worker's heartbeat, waking the relay when it made jobs due; another task
//! vacuums finished tasks out of Redis. Neither holds up a dispatch. Several relays (one per
//! worker process) cooperate through `FOR UPDATE SKIP LOCKED`.
//!
//! Servers announce commits that wrote jobs on the wake channel (decision 12); the relay then
//! dispatches at once instead of at its next tick (except kinds at a ceiling, looked at again
//! as their jobs end: decision 47). A wake-up is only a hint: the relay still dispatches every
//! `relay_interval_ms` (which also finds retries and delayed jobs come due), so nothing depends
//! on one arriving.

use crate::Ctx;
use crate::ledger::Ended;
use crate::queue::{self, Queue};
use convos_core::jobs::{JobKind, JobTicket, TICKET_JOBS_MAX, TICKET_SPREAD};
use convos_store::jobs;
use futures::{FutureExt, StreamExt};
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Jobs dispatched per queue per pass at most (in up to [`TICKET_JOBS_MAX`] per ticket).
const BATCH: i64 = 1_000;

/// How soon a pass that filled a queue's room (more may be due) is followed by another.
/// Waiting for the next tick instead capped a drain at one ceiling's worth of tickets per tick
/// (500 per 200 ms).
const AGAIN: Duration = Duration::from_millis(5);

/// A kind at its ceiling (of jobs in flight, or of tickets in Redis) is looked at again once
/// this share of the ceiling ended here (1/16: 125 of the default 2,000), or after
/// [`LOOK_AGAIN`].
const REFILL_SHARE: i64 = 16;

/// The longest a kind at its ceiling goes without a look: room its jobs' endings here do not
/// show (other processes' workers took its tickets, stale tickets left Redis, the housekeeping
/// found lost jobs, an operator retried some) is found this soon. It was 10 ms for every kind
/// at a ceiling before decision 47.
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// The kinds a pass found at a ceiling, with how many of the kind had ended in this process
/// then (decision 47).
///
/// A look at a kind counts its jobs in flight, up to the ceiling: in the sustained benchmark's
/// full-speed phase, 2,000 email jobs read every 10 ms to find room for a handful. Room mostly
/// opens as jobs end, so a kind at its ceiling is looked at again once this process's workers
/// ended a share of the ceiling, and at the latest after [`LOOK_AGAIN`] or at the tick.
#[derive(Debug)]
struct Ceilings {
    /// How many jobs of a kind at its ceiling end here before it is looked at again.
    refill: u64,
    /// Each kind at a ceiling: how many of it had ended here, and when it was found.
    found: HashMap<JobKind, (u64, Instant)>,
}

impl Ceilings {
    /// None yet, for a ceiling of `jobs_in_flight`.
    fn new(jobs_in_flight: i64) -> Self {
        Self {
            refill: (jobs_in_flight / REFILL_SHARE).max(1) as u64,
            found: HashMap::new(),
        }
    }

    /// Whether `kind` is worth a look at `now`, `ended` of it having ended here: it was not at
    /// a ceiling, a share of the ceiling of it ended here since, or [`LOOK_AGAIN`] passed.
    fn worth_a_look(&self, kind: JobKind, ended: u64, now: Instant) -> bool {
        self.found.get(&kind).is_none_or(|&(then, at)| {
            ended.saturating_sub(then) >= self.refill || now.duration_since(at) >= LOOK_AGAIN
        })
    }

    /// Whether any kind at a ceiling is worth a look (see [`Ceilings::worth_a_look`]).
    fn any_worth_a_look(&self, ended: &Ended, now: Instant) -> bool {
        self.found
            .keys()
            .any(|&kind| self.worth_a_look(kind, ended.of(kind), now))
    }

    /// What a pass found of `kind` at `now`, `ended` of it having ended here before it looked.
    fn found(&mut self, kind: JobKind, at_ceiling: bool, ended: u64, now: Instant) {
        if at_ceiling {
            self.found.insert(kind, (ended, now));
        } else {
            self.found.remove(&kind);
        }
    }

    /// When the kind at a ceiling longest is due a look whatever ended; `None` if none is.
    fn next_look(&self) -> Option<Instant> {
        self.found.values().map(|&(_, at)| at + LOOK_AGAIN).min()
    }

    /// Forgets the ceilings of `kinds` (paused: the pass does not look at them).
    fn forget(&mut self, kinds: &[JobKind]) {
        self.found.retain(|kind, _| !kinds.contains(kind));
    }

    /// Forgets every ceiling: the next pass looks at every kind.
    fn clear(&mut self) {
        self.found.clear();
    }
}

/// What a pass left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Left {
    /// Nothing due that it could see, or nothing it could hand out before jobs end (kinds at a
    /// ceiling are in [`Ceilings`]).
    Nothing,
    /// A queue took as many as it had room for: more may be due, go again at once.
    More,
}

/// First and longest pause before subscribing to the wake channel again.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);

/// How often an idle wake-up subscription is checked, and how long its answer may take: a
/// connection that died silently is noticed and replaced.
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Dispatches until `cancel` fires: every tick, as soon as a server announces new jobs, and as
/// soon as the housekeeping made some due. The housekeeping runs beside it, in a task of its
/// own: on the relay's loop, a wake-up arriving during it waited for its four statements, up
/// to 16–18 ms a tick while digests are scheduled (decision 45).
pub async fn run(ctx: Arc<Ctx>, mut queues: HashMap<JobKind, Queue>, cancel: CancellationToken) {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(ctx.clone(), wake.clone()));
    let keep = |after: Duration| {
        let (ctx, wake, cancel) = (ctx.clone(), wake.clone(), cancel.clone());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            housekeeping(ctx, wake, cancel).await;
        })
    };
    let mut housekeeper = keep(Duration::ZERO);
    let mut tick = tokio::time::interval(Duration::from_millis(ctx.settings.relay_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut again: Option<Instant> = None;
    let mut ceilings = Ceilings::new(ctx.settings.jobs_in_flight);
    let ended = ctx.ledger.ended().clone();
    loop {
        // Cancellation first: once shutdown begins, nothing more is handed out.
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            stopped = &mut housekeeper => {
                // It only ends on cancellation, which the branch above saw first: it panicked.
                tracing::error!(error = ?stopped.err(), "housekeeping stopped; starting it again");
                housekeeper = keep(Duration::from_secs(1));
                continue;
            }
            // Every kind is looked at on the tick, what other processes freed included.
            _ = tick.tick() => ceilings.clear(),
            () = wake.notified() => {}
            () = tokio::time::sleep_until(again.unwrap_or_else(Instant::now)),
                if again.is_some() => {}
            () = ended.more(), if ceilings.next_look().is_some() => {
                if !ceilings.any_worth_a_look(&ended, Instant::now()) {
                    continue;
                }
            }
        }
        again = None;
        match dispatch(&ctx, &mut queues, &mut ceilings).await {
            Ok(left) => {
                if failing {
                    tracing::info!("relay recovered");
                    failing = false;
                }
                // Due jobs may be left behind: go again soon, not at the next tick. Kinds at a
                // ceiling are looked at again as their jobs end, or once their time is up.
                again = match left {
                    Left::More => Some(Instant::now() + AGAIN),
                    Left::Nothing => ceilings.next_look(),
                };
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "relay pass failed; jobs wait in the ledger");
                }
                failing = true;
            }
        }
    }
    listener.abort();
    let _ = housekeeper.await;
}

/// Every `relay_interval_ms` until `cancel` fires: makes lost jobs due again, schedules the
/// purge and the daily digests, and reports the heartbeat; wakes the relay when any job became
/// due.
async fn housekeeping(ctx: Arc<Ctx>, wake: Arc<Notify>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(ctx.settings.relay_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match keep_house(&ctx).await {
            Ok(due) => {
                if failing {
                    tracing::info!("housekeeping recovered");
                    failing = false;
                }
                if due {
                    wake.notify_one();
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "housekeeping failed; lost jobs wait for the next");
                }
                failing = true;
            }
        }
    }
}

/// One round of housekeeping; returns whether it made jobs due.
async fn keep_house(ctx: &Ctx) -> anyhow::Result<bool> {
    let lost = jobs::requeue_lost(&ctx.ledger_db).await?;
    if lost > 0 {
        tracing::warn!(
            jobs = lost,
            "jobs without an outcome past their deadline are due again"
        );
    }
    let purge = jobs::schedule_purge(
        &ctx.ledger_db,
        Duration::from_secs(ctx.settings.purge_every_secs),
    )
    .await?;
    let digests = convos_store::digests::schedule_due(&ctx.ledger_db, 500).await?;
    if digests > 0 {
        tracing::info!(digests, "daily digests due");
    }
    if ctx.heartbeat_due() {
        let pid = std::process::id() as i32;
        convos_store::ops::heartbeat(&ctx.ledger_db, &ctx.name, &ctx.host, pid, ctx.started)
            .await?;
    }
    Ok(lost > 0 || purge || digests > 0)
}

/// Removes finished tasks from Redis every `vacuum_every_secs` until `cancel` fires, in a task
/// of its own: a vacuum is one Lua script per queue over every finished task, and on the relay's
/// loop it held up dispatching for as long as it ran. Run often, each one stays small.
pub async fn vacuum(ctx: Arc<Ctx>, mut queues: HashMap<JobKind, Queue>, cancel: CancellationToken) {
    let every = Duration::from_secs(ctx.settings.vacuum_every_secs.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut redis = ctx.redis.clone();
        for (kind, queue) in &mut queues {
            let prefix = &ctx.settings.redis_prefix;
            match queue::vacuum(queue, &mut redis, prefix, *kind).await {
                Ok(n) if n > 0 => tracing::debug!(kind = kind.as_str(), removed = n, "vacuumed"),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "vacuum failed"),
            }
        }
    }
}

/// Subscribes to the wake channel and wakes the relay for every burst of messages on it,
/// subscribing again with backoff whenever the subscription is lost or cannot be made.
async fn listen(ctx: Arc<Ctx>, wake: Arc<Notify>) {
    let channel = convos_core::jobs::wake_channel(&ctx.settings.redis_prefix);
    let client = match convos_plumbing::redis_client::open(ctx.settings.redis_url.expose_secret()) {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "no wake-ups: the relay runs on its tick alone");
            return;
        }
    };
    let mut pause = RESUBSCRIBE_MIN;
    let mut lost = false;
    loop {
        match subscribe(&client, &channel).await {
            Ok(pubsub) => {
                pause = RESUBSCRIBE_MIN;
                if lost {
                    tracing::info!("wake-up subscription restored");
                }
                // Jobs committed while nobody listened are found by this pass.
                wake.notify_one();
                let (mut sink, mut messages) = pubsub.split();
                let mut ping =
                    tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
                loop {
                    tokio::select! {
                        next = messages.next() => {
                            if next.is_none() {
                                break;
                            }
                            // Coalesce a burst: take every wake-up already here, then wake the
                            // relay once. One that arrives during the pass wakes it once more.
                            while let Some(Some(_)) = messages.next().now_or_never() {}
                            wake.notify_one();
                        }
                        _ = ping.tick() => {
                            let answer =
                                tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                            if !matches!(answer, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                tracing::info!(
                    "wake-up subscription lost; the relay runs on its tick until it is back"
                );
                lost = true;
            }
            Err(e) => {
                tracing::debug!(error = %e, retry_in = ?pause, "wake-up subscription unavailable")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RESUBSCRIBE_MAX);
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "timed out subscribing",
            )))
        })
}

/// A relay pass: hands due jobs of every kind that is not paused to its queue. Whether due
/// jobs may be left behind.
async fn dispatch(
    ctx: &Ctx,
    queues: &mut HashMap<JobKind, Queue>,
    ceilings: &mut Ceilings,
) -> anyhow::Result<Left> {
    let paused = convos_store::ops::paused(&ctx.ledger_db).await?;
    push_due(ctx, queues, ceilings, &paused).await
}

/// Pushes tickets for due jobs of every kind that is not paused, while its queue has room.
/// Returns what it may have left behind.
async fn push_due(
    ctx: &Ctx,
    queues: &mut HashMap<JobKind, Queue>,
    ceilings: &mut Ceilings,
    paused: &[JobKind],
) -> anyhow::Result<Left> {
    let mut left = Left::Nothing;
    let mut redis = ctx.redis.clone();
    let ceiling = ctx.settings.jobs_in_flight;
    ceilings.forget(paused);
    for kind in JobKind::ALL.into_iter().filter(|k| !paused.contains(k)) {
        let Some(queue) = queues.get_mut(&kind) else {
            continue;
        };
        let ended = ctx.ledger.ended().of(kind);
        if !ceilings.worth_a_look(kind, ended, Instant::now()) {
            continue;
        }
        let depth = queue::depth(&mut redis, &ctx.settings.redis_prefix, kind).await?;
        let room = ctx.settings.queue_ceiling - depth;
        if room <= 0 {
            ceilings.found(kind, true, ended, Instant::now());
            continue;
        }
        let most = jobs_for(room);
        // Dispatched is committed before any ticket exists. Tickets that cannot be pushed are
        // made due again right away (or, if even that fails, by their deadline).
        let deadline = ctx.settings.deadline();
        let dispatched = jobs::dispatch_due(&ctx.ledger_db, kind, most, ceiling, deadline).await?;
        // Enough of the kind in flight: looked at again once enough of it ended.
        ceilings.found(kind, dispatched.at_ceiling, ended, Instant::now());
        let leases = dispatched.leases;
        if leases.is_empty() {
            continue;
        }
        if let Err(e) = queue::push_all(queue, JobTicket::split(&leases)).await {
            // Which tickets reached Redis is unknown: all go back to due. A ticket that did
            // arrive runs nothing, now or after the job's next hand-out (decision 36); one
            // taken before the give-back runs on, and its outcome is ignored.
            ceilings.found(kind, false, ended, Instant::now());
            jobs::undispatch(&ctx.ledger_db, &leases).await?;
            return Err(anyhow::anyhow!("could not push to redis: {e}"));
        }
        ctx.wakers.pushed(kind);
        if leases.len() as i64 >= most {
            left = Left::More;
        }
    }
    Ok(left)
}

/// How many jobs to dispatch into a queue with room for `room` more tickets: as many as
/// [`JobTicket::split`] fits in that room, at most [`BATCH`]. With less room than
/// [`TICKET_SPREAD`] tickets, one job per ticket (a handful of jobs is split one per ticket).
fn jobs_for(room: i64) -> i64 {
    if room < TICKET_SPREAD as i64 {
        room
    } else {
        (room * TICKET_JOBS_MAX as i64).min(BATCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_at_its_ceiling_is_looked_at_again_once_a_share_ended_here_or_its_time_is_up() {
        let mut ceilings = Ceilings::new(2_000);
        assert_eq!(ceilings.refill, 125);
        let start = Instant::now();
        let soon = start + Duration::from_millis(10);
        assert!(ceilings.worth_a_look(JobKind::NotifyEmail, 0, start));
        assert_eq!(ceilings.next_look(), None);

        ceilings.found(JobKind::NotifyEmail, true, 1_000, start);
        assert!(!ceilings.worth_a_look(JobKind::NotifyEmail, 1_124, soon));
        assert!(ceilings.worth_a_look(JobKind::NotifyEmail, 1_125, soon));
        assert!(ceilings.worth_a_look(JobKind::NotifyEmail, 1_000, start + LOOK_AGAIN));
        assert_eq!(ceilings.next_look(), Some(start + LOOK_AGAIN));
        assert!(
            ceilings.worth_a_look(JobKind::Deliver, 0, soon),
            "other kinds are looked at as before"
        );

        ceilings.found(JobKind::NotifyEmail, false, 1_125, soon);
        assert_eq!(ceilings.next_look(), None);
        ceilings.found(JobKind::Deliver, true, 7, soon);
        ceilings.found(JobKind::NotifyEmail, true, 9, soon);
        ceilings.forget(&[JobKind::Deliver]);
        assert!(
            ceilings.worth_a_look(JobKind::Deliver, 7, soon),
            "paused, forgotten"
        );
        ceilings.clear();
        assert!(
            ceilings.worth_a_look(JobKind::NotifyEmail, 9, soon),
            "the tick looks at all"
        );
        assert_eq!(
            Ceilings::new(8).refill,
            1,
            "a small ceiling still needs one to end"
        );
    }

    #[test]
    fn what_a_pass_dispatches_always_fits_the_room_left_in_redis() {
        for room in 1..=600 {
            let most = jobs_for(room);
            assert!((1..=BATCH).contains(&most));
            let leases: Vec<_> = (0..most)
                .map(|_| convos_core::jobs::Lease {
                    id: uuid::Uuid::new_v4(),
                    attempt: 1,
                    handout: 1,
                })
                .collect();
            let tickets = JobTicket::split(&leases).len() as i64;
            assert!(
                tickets <= room,
                "room {room}: {most} jobs in {tickets} tickets"
            );
        }
    }
}
