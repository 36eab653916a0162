//! The Convos background worker: relays due jobs from the PostgreSQL ledger to apalis queues on
//! Redis and runs them (live event delivery, email notifications, ephemeral purge).
//!
//! Several worker processes can run at once: the ledger decides who runs what, so each job has
//! one effect however many workers see it.

pub mod board;
pub mod by_hand;
pub mod config;
pub mod digest;
pub mod echoes;
pub mod email;
pub mod jobs;
pub mod ledger;
pub mod mailer;
pub mod metrics;
pub mod queue;
pub mod relay;
pub mod smtp_listener;

use crate::config::WorkerSettings;
use crate::email::EmailSettings;
use crate::mailer::Mailer;
use anyhow::Context;
use apalis::layers::WorkerBuilderExt;
use apalis::prelude::*;
use convos_core::jobs::JobKind;
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What every job can reach.
pub struct Ctx {
    /// This process's name in the ledger's attempt history and heartbeats.
    pub name: String,
    /// The machine it runs on.
    pub host: String,
    /// When it started.
    pub started: chrono::DateTime<chrono::Utc>,
    /// PostgreSQL, for the jobs' own work.
    pub db: PgPool,
    /// PostgreSQL, for the relay and the ledger writer alone (three connections), so that job
    /// work never holds up a dispatch, a start or an outcome.
    pub ledger_db: PgPool,
    /// Job starts and outcomes, batched (see [`ledger`]).
    pub ledger: ledger::Ledger,
    /// Redis (multiplexed), for events and queue depth.
    pub redis: ConnectionManager,
    /// Wake this process's queue workers when its relay pushed tickets.
    pub wakers: queue::Wakers,
    /// Where email goes.
    pub mailer: Mailer,
    /// Email content settings.
    pub email: EmailSettings,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// When this process last reported its heartbeat.
    pub last_heartbeat: std::sync::Mutex<Option<std::time::Instant>>,
    /// Settings in force.
    pub settings: WorkerSettings,
    /// Places for reading a long thread for the author of a reply by email (one): such a read
    /// walks the whole thread under its lock, as marking it read in the app does, which takes
    /// one of the server's few places for such actions (decisions 55 and 82).
    pub long_thread_reads: tokio::sync::Semaphore,
}

impl Ctx {
    /// The value of a committed store write, waking every worker's relay (through the wake
    /// channel, as the server does) if it wrote jobs. Never waits: the publish is a task of its
    /// own, and a lost one costs a relay tick.
    pub fn committed<T>(&self, written: convos_store::Written<T>) -> T {
        written.waking(|| {
            let mut redis = self.redis.clone();
            let channel = convos_core::jobs::wake_channel(&self.settings.redis_prefix);
            tokio::spawn(async move {
                let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg("1")
                    .query_async(&mut redis)
                    .await;
                if let Err(e) = published {
                    tracing::debug!(error = %e, "could not wake the relays; their tick will");
                }
            });
        })
    }

    /// Whether it is time to report a heartbeat (every 5 s; the board counts a minute).
    pub fn heartbeat_due(&self) -> bool {
        let Ok(mut last) = self.last_heartbeat.lock() else {
            return true;
        };
        let due = last.is_none_or(|at| at.elapsed() >= Duration::from_secs(5));
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }
}

/// A unique name per process start: apalis-redis refuses a name it saw recently, and two
/// processes sharing one would hide each other's crashes.
fn unique_name(role: &str) -> String {
    format!("{role}-{}-{}", std::process::id(), ulid::Ulid::generate())
}

/// Connects, then runs the relay and one apalis worker per job kind until `shutdown`
/// resolves; in-flight jobs finish first.
pub async fn run(
    settings: WorkerSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // No statement limit: purges must run to the end (decision 17). Lock waits are bounded:
    // a job queued behind a long action on a thread held a connection for as long as it
    // lasted, and a burst of them held the pool (decision 82).
    let limits = convos_store::StatementLimits {
        statement_timeout: None,
        lock_timeout: (settings.job_lock_timeout_ms > 0)
            .then(|| Duration::from_millis(settings.job_lock_timeout_ms)),
    };
    let db = convos_store::connect(
        settings.database_url.expose_secret(),
        settings.db_max_connections,
        limits,
    )
    .await?;
    // The relay, its housekeeping and the ledger writer's two tasks each have a connection of
    // their own: with every pooled connection busy with job work, a start or an outcome waited
    // for one, and every job (live deliveries too) waited behind it.
    // Its statements are short; a bound means a lock wait or a stuck server shows up as an
    // error on the jobs waiting for it, never as jobs (and their queue) waiting for good.
    let ledger_limits = convos_store::StatementLimits::statements(LEDGER_STATEMENT_LIMIT);
    let ledger_db =
        convos_store::connect(settings.database_url.expose_secret(), 4, ledger_limits).await?;
    sqlx::query("select 1")
        .execute(&db)
        .await
        .context("postgres did not answer")?;
    let redis = queue::connect(settings.redis_url.expose_secret())
        .await
        .context("could not connect to redis")?;
    convos_plumbing::redis_client::check_version(&mut redis.clone())
        .await
        .map_err(anyhow::Error::msg)?;
    let mailer = Mailer::from_url(settings.smtp_url.expose_secret())?;
    let from: lettre::message::Mailbox = settings
        .mail_from
        .parse()
        .context("CONVOS_MAIL_FROM is not an email address")?;
    let email = EmailSettings {
        domain: from.email.domain().to_owned(),
        from,
        public_url: settings.public_url.clone(),
        secret_key: settings.secret_key.expose_secret().to_owned(),
        reply_domain: settings.reply_domain.clone(),
    };
    let name = unique_name("convos-worker");
    let metrics = metrics::Metrics::new();
    let ledger = ledger::Ledger::spawn(
        ledger_db.clone(),
        ledger::LedgerSettings {
            worker: name.clone(),
            deadline: settings.deadline(),
            outcome_wait: Duration::from_millis(settings.ledger_outcome_wait_ms),
        },
        metrics.clone(),
    );
    let ctx = Arc::new(Ctx {
        name,
        host: std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into()),
        started: chrono::Utc::now(),
        db,
        ledger_db,
        ledger,
        redis: redis.clone(),
        wakers: queue::Wakers::new(),
        mailer,
        email,
        metrics,
        last_heartbeat: std::sync::Mutex::new(None),
        settings,
        long_thread_reads: tokio::sync::Semaphore::new(1),
    });
    let cancel = CancellationToken::new();
    let queues: HashMap<JobKind, queue::Queue> = JobKind::ALL
        .into_iter()
        .map(|k| {
            (
                k,
                queue::storage(
                    redis.clone(),
                    &ctx.settings.redis_prefix,
                    k,
                    queue::fetch_batch(k, ctx.settings.worker_concurrency),
                ),
            )
        })
        .collect();

    let mut tasks = tokio::task::JoinSet::new();
    if let (Some(addr), Some(domain)) = (
        ctx.settings.inbound_smtp_addr,
        ctx.settings.reply_domain.clone(),
    ) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen for mail on {addr}"))?;
        tracing::info!(%addr, %domain, "receiving mail for the reply domain");
        tasks.spawn(smtp_listener::serve(
            ctx.clone(),
            listener,
            domain,
            cancel.clone(),
        ));
    }
    tasks.spawn(relay::run(ctx.clone(), queues.clone(), cancel.clone()));
    tasks.spawn(relay::vacuum(ctx.clone(), queues.clone(), cancel.clone()));
    if let Some(addr) = ctx.settings.worker_metrics_addr {
        tasks.spawn(metrics::serve(
            addr,
            ctx.metrics.clone(),
            ctx.db.clone(),
            cancel.clone(),
        ));
    }
    for kind in JobKind::ALL {
        tasks.spawn(supervise(
            ctx.clone(),
            queues[&kind].clone(),
            kind,
            cancel.clone(),
        ));
    }
    tracing::info!(worker = %ctx.name, "worker ready");
    shutdown.await;
    tracing::info!("worker stopping: finishing in-flight jobs");
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    tracing::info!("worker stopped");
    Ok(())
}

/// How long one statement of the relay or the ledger writer may run, lock waits included.
pub const LEDGER_STATEMENT_LIMIT: Duration = Duration::from_secs(20);

/// How often the stall watchdog looks at a queue.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Resolves once the queue worker made no progress (took no ticket, ended no job) for longer
/// than any job may run, while tickets waited in its queue: it is stuck, not busy. A busy
/// worker ends a job, or cuts it off, within a job's time limit (80% of the deadline). Seen
/// once under sustained load with apalis 1.0: a queue worker stopped fetching, acknowledging and
/// heartbeating for good while its process ran on (decision 33). Returns how long it stood still.
///
/// Once shutdown begins it stands down: the worker is finishing its jobs, and dropping it
/// would abandon the very jobs the shutdown waits for.
async fn watchdog(
    ctx: &Ctx,
    kind: JobKind,
    slots: &jobs::Slots,
    cancel: &CancellationToken,
) -> Duration {
    // A job's work is cut off at 80% of its deadline, and its claim and outcome are bounded
    // statements: past all of that with tickets waiting, nothing is working.
    let limit = ctx.settings.deadline().mul_f64(0.8) + 2 * LEDGER_STATEMENT_LIMIT;
    let redis = ctx.redis.clone();
    let prefix = ctx.settings.redis_prefix.clone();
    let watch = stalled(
        limit,
        || slots.progress(),
        move || {
            let mut redis = redis.clone();
            let prefix = prefix.clone();
            async move { queue::depth(&mut redis, &prefix, kind).await.ok() }
        },
    );
    tokio::select! {
        stalled = watch => stalled,
        () = cancel.cancelled() => std::future::pending().await,
    }
}

/// The watchdog's rule: resolves once `progress` stood still for `limit` while `waiting` said
/// tickets wait (`None`: unknown, Redis away: nothing to fetch either, so no verdict).
async fn stalled<F>(
    limit: Duration,
    progress: impl Fn() -> u64,
    waiting: impl Fn() -> F,
) -> Duration
where
    F: std::future::Future<Output = Option<i64>>,
{
    let mut seen = progress();
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let now = progress();
        if now != seen {
            (seen, since) = (now, tokio::time::Instant::now());
            continue;
        }
        if since.elapsed() < limit {
            continue;
        }
        match waiting().await {
            Some(tickets) if tickets > 0 => return since.elapsed(),
            // Nothing waits: idle, not stuck.
            Some(_) => since = tokio::time::Instant::now(),
            None => {}
        }
    }
}

/// Runs the apalis worker of one queue, restarting it (under a new name, after a pause) if it
/// stops before shutdown, e.g. while Redis is unreachable.
async fn supervise(ctx: Arc<Ctx>, queue: queue::Queue, kind: JobKind, cancel: CancellationToken) {
    let mut pause = Duration::from_millis(500);
    let slots = jobs::Slots::new(kind, ctx.settings.worker_concurrency);
    loop {
        let name = unique_name(&format!("convos-{}", kind.as_str()));
        let stop = cancel.clone();
        let worker = WorkerBuilder::new(name.as_str())
            .backend(
                queue.clone().poll_with_stream(
                    ctx.wakers
                        .polls(kind, Duration::from_millis(ctx.settings.poll_ms)),
                ),
            )
            .concurrency(queue::tickets_in_flight(
                kind,
                ctx.settings.worker_concurrency,
            ))
            // No timeout per ticket: its jobs may wait for a slot; each job has its own limit
            // from its start (`jobs::handle`).
            .enable_tracing()
            .data(ctx.clone())
            .data(slots.clone())
            .build(jobs::handle);
        let run = worker.run_until(async move {
            stop.cancelled().await;
            Ok::<(), std::io::Error>(())
        });
        let result = tokio::select! {
            result = run => result.map_err(|e| e.to_string()),
            stalled = watchdog(&ctx, kind, &slots, &cancel) => {
                // Dropping the worker abandons its tasks: their jobs come back by their ledger
                // deadline, their tickets by apalis' orphan recovery once its heartbeats stop.
                tracing::error!(queue = kind.as_str(), worker = %name, ?stalled,
                    "queue worker stalled with tickets waiting; abandoning it");
                ctx.metrics.stalls.with_label_values(&[kind.as_str()]).inc();
                Err(format!("stalled for {stalled:?}"))
            }
        };
        // Its registration is of no further use (the next start takes a new name). Bounded, so
        // a Redis outage does not hold up shutdown; one left behind is a few hundred bytes.
        let mut redis = ctx.redis.clone();
        let prefix = &ctx.settings.redis_prefix;
        let release = queue::release_worker(&mut redis, prefix, kind, &name);
        match tokio::time::timeout(Duration::from_secs(1), release).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, worker = %name, "worker not released"),
            Err(_) => tracing::debug!(worker = %name, "worker not released: redis is slow"),
        }
        if cancel.is_cancelled() {
            return;
        }
        tracing::warn!(queue = kind.as_str(), ?result, retry_in = ?pause, "queue worker stopped; restarting");
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    const LIMIT: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_queue_worker_that_stands_still_with_tickets_waiting_is_declared_stalled() {
        let took = stalled(LIMIT, || 7, || async { Some(3) }).await;
        assert!(took >= LIMIT && took < LIMIT + WATCH_EVERY * 2, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_or_idle_queue_worker_is_never_declared_stalled() {
        let ticking = AtomicU64::new(0);
        let busy = stalled(
            LIMIT,
            || ticking.fetch_add(1, Ordering::Relaxed),
            || async { Some(500) },
        );
        let idle = stalled(LIMIT, || 7, || async { Some(0) });
        let redis_away = stalled(LIMIT, || 7, || async { None });
        tokio::select! {
            took = busy => panic!("a busy worker was declared stalled after {took:?}"),
            took = idle => panic!("an idle worker was declared stalled after {took:?}"),
            took = redis_away => panic!("a worker without Redis was declared stalled after {took:?}"),
            () = tokio::time::sleep(LIMIT * 10) => {}
        }
    }
}
