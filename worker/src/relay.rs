//! The relay: moves due jobs from the PostgreSQL ledger to the Redis queues, in bounded
//! batches, only while each queue is shallower than its ceiling, so a backlog of any size waits
//! in PostgreSQL (where it costs nothing) and Redis never holds more than a working set.
//!
//! Each pass also makes lost jobs due again, schedules the periodic purge (once per period
//! across every worker: the ledger's unique key decides) and vacuums finished tasks out of
//! Redis. Several relays (one per worker process) cooperate through `FOR UPDATE SKIP LOCKED`.

use crate::Ctx;
use crate::queue::{self, Queue};
use apalis_core::backend::Vacuum;
use convos_core::jobs::{JobKind, JobTicket};
use convos_store::jobs;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Tickets pushed per queue per pass at most.
const BATCH: i64 = 200;

/// Runs relay passes until `cancel` fires.
pub async fn run(ctx: Arc<Ctx>, mut queues: HashMap<JobKind, Queue>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(ctx.settings.relay_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_vacuum = Instant::now();
    let mut failing = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        match pass(&ctx, &mut queues).await {
            Ok(moved) => {
                if failing {
                    tracing::info!("relay recovered");
                    failing = false;
                }
                // A full batch means more is waiting: go again without waiting for the tick.
                if moved >= BATCH as usize {
                    tick.reset_immediately();
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "relay pass failed; jobs wait in the ledger");
                }
                failing = true;
            }
        }
        if last_vacuum.elapsed() >= Duration::from_secs(ctx.settings.vacuum_every_secs) {
            last_vacuum = Instant::now();
            for (kind, queue) in &mut queues {
                match queue.vacuum().await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(kind = kind.as_str(), removed = n, "vacuumed")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "vacuum failed"),
                }
            }
        }
    }
}

/// One relay pass; returns how many tickets it pushed.
async fn pass(ctx: &Ctx, queues: &mut HashMap<JobKind, Queue>) -> anyhow::Result<usize> {
    let lost = jobs::requeue_lost(&ctx.db).await?;
    if lost > 0 {
        tracing::warn!(
            jobs = lost,
            "jobs without an outcome past their deadline are due again"
        );
    }
    jobs::schedule_purge(&ctx.db, Duration::from_secs(ctx.settings.purge_every_secs)).await?;
    if ctx.heartbeat_due() {
        let pid = std::process::id() as i32;
        convos_store::ops::heartbeat(&ctx.db, &ctx.name, &ctx.host, pid, ctx.started).await?;
    }
    let paused = convos_store::ops::paused(&ctx.db).await?;
    let mut pushed = 0;
    let mut redis = ctx.redis.clone();
    for kind in JobKind::ALL.into_iter().filter(|k| !paused.contains(k)) {
        let Some(queue) = queues.get_mut(&kind) else {
            continue;
        };
        let depth = queue::depth(&mut redis, &ctx.settings.redis_prefix, kind).await?;
        let room = (ctx.settings.queue_ceiling - depth).min(BATCH);
        if room <= 0 {
            continue;
        }
        let mut tx = ctx.db.begin().await?;
        let ids = jobs::claim_due(&mut tx, kind, room).await?;
        if ids.is_empty() {
            continue;
        }
        // Dispatched is committed before any ticket exists, so a worker that takes a ticket at
        // once always finds its row dispatched. Tickets that cannot be pushed are made due
        // again right away (or, if even that fails, by their deadline).
        jobs::mark_dispatched(&mut tx, &ids, ctx.settings.deadline()).await?;
        tx.commit().await?;
        for (i, id) in ids.iter().enumerate() {
            if let Err(e) = queue::push(queue, JobTicket { job_id: *id }).await {
                jobs::undispatch(&ctx.db, &ids[i..]).await?;
                return Err(anyhow::anyhow!("could not push to redis: {e}"));
            }
            pushed += 1;
        }
    }
    Ok(pushed)
}
