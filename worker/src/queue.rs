//! apalis on Redis as the transport: one queue per job kind, carrying only ledger ids (a few
//! jobs per ticket, decision 33).

use apalis::prelude::*;
use apalis_core::backend::Vacuum;
use apalis_redis::{Config as QueueConfig, RedisStorage};
use convos_core::jobs::{JobKind, JobTicket};
use futures::{Stream, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_stream::wrappers::{IntervalStream, WatchStream};

/// The apalis storage of one job kind.
pub type Queue = RedisStorage<JobTicket>;

/// The queue's name in Redis (explicit, so renaming a Rust type never orphans a queue).
pub fn queue_name(prefix: &str, kind: JobKind) -> String {
    format!("{prefix}jobs:{}", kind.as_str())
}

/// A Redis connection manager that waits 5 s for answers (redis-rs' 500 ms default turns a
/// Redis stall into a fatal worker error) and reconnects by itself.
pub async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(2)));
    convos_plumbing::redis_client::open(url)?
        .get_connection_manager_with_config(config)
        .await
}

/// The queue configuration of `kind`. The tasks of a crashed worker are recovered after 30 s
/// of missed heartbeats (the ledger's deadline remains the backstop). apalis' task events (a
/// `PUBLISH` per push, lock and result, to channels nobody reads here) are off: the ledger is
/// where job progress is recorded and watched.
///
/// The heartbeat is every [`HEARTBEAT`] because, measured, it bounds how long a busy queue's
/// deliveries stall in apalis 1.0 (decisions 25 and 33): at 30 s, deliveries under load
/// stalled up to 22 s; at 5 s, 6 s; at 1 s, under 1 s (live p99 613–855 ms); at 100 ms, live p99
/// 98–218 ms in most runs (one had a 4.5 s stall, BENCHMARKS.md). Why the heartbeat timer is
/// what ends a stall is not established (the first
/// explanation, a full task-event channel, cannot happen with [`tickets_in_flight`] at most
/// twice [`fetch_batch`]). A heartbeat is three small Redis calls.
pub fn config(prefix: &str, kind: JobKind) -> QueueConfig {
    QueueConfig::default()
        .queue(queue_name(prefix, kind))
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .emit_events(false)
}

/// How often a queue worker reports itself alive (and is polled, see [`config`]).
pub const HEARTBEAT: Duration = Duration::from_millis(100);

/// Heartbeats missed before a worker's tasks are presumed orphaned: 30 s.
const MISSED_HEARTBEATS: usize = 300;

/// Tickets a queue worker of `kind` takes per poll, for `concurrency` jobs at once: a quarter of
/// them (tickets of a backlog carry several jobs each, decision 33). Small because apalis 1.0
/// sends no heartbeat while a fetched batch is being handed out, which waits for tickets in
/// flight to end, and a heartbeat missed for 30 s gets the worker's tasks taken from it.
///
/// Twice this is the worker's window: the tickets it holds at once, their jobs running, waiting
/// for a slot, or waiting for their outcome's commit (which holds no slot). The tickets of one
/// window overlap their takes, runs and outcome writes; a drain of `deliver` jobs, each a Redis
/// round trip, is bound by how many overlap, not by the slots: at concurrency 16, 8 tickets
/// drained 17,300–21,800 jobs a second, 16 tickets 24,100–27,900 (decision 63). So a `deliver`
/// worker takes half its concurrency per poll, up to [`DELIVER_POLL_MOST`], where that is
/// more. Its jobs end in milliseconds, so handing out a batch waits that long; a slow kind's
/// (an email to a slow server) could wait out the heartbeat, and keeps a quarter.
pub fn fetch_batch(kind: JobKind, concurrency: usize) -> usize {
    let quarter = concurrency / 4;
    let batch = match kind {
        JobKind::Deliver => (concurrency / 2).min(DELIVER_POLL_MOST).max(quarter),
        _ => quarter,
    };
    batch.max(1)
}

/// The most tickets a `deliver` poll takes by the half-the-concurrency rule of [`fetch_batch`]
/// (from 36 jobs at once, a quarter of them is more).
const DELIVER_POLL_MOST: usize = 8;

/// Tickets a queue worker of `kind` runs at once: twice [`fetch_batch`], never more. apalis
/// 1.0 keeps each task's events (a lock, an acknowledgement) in a channel of four fetch
/// batches, drained only between batches; at most twice a batch in flight, they always fit, so
/// no task waits on a full channel while the worker waits on its tasks.
pub fn tickets_in_flight(kind: JobKind, concurrency: usize) -> usize {
    2 * fetch_batch(kind, concurrency)
}

/// The storage of `kind`'s queue over `conn`, taking up to `batch` tickets per poll (apalis'
/// default is 10: with one poll per `poll_ms`, that capped how fast a queue could be taken).
pub fn storage(conn: ConnectionManager, prefix: &str, kind: JobKind, batch: usize) -> Queue {
    RedisStorage::new(conn).with_config(config(prefix, kind).batch_size(batch.max(1)))
}

/// Wakes this process's apalis workers of a kind as soon as its relay has pushed tickets for it,
/// instead of at their next poll. They still poll every `poll_ms`, which finds tickets other
/// processes' relays pushed.
#[derive(Clone)]
pub struct Wakers(Arc<HashMap<JobKind, watch::Sender<u64>>>);

impl Wakers {
    /// One channel per job kind.
    pub fn new() -> Self {
        Self(Arc::new(
            JobKind::ALL
                .into_iter()
                .map(|kind| (kind, watch::channel(0).0))
                .collect(),
        ))
    }

    /// Tickets of `kind` were pushed: wake its workers.
    pub fn pushed(&self, kind: JobKind) {
        if let Some(tx) = self.0.get(&kind) {
            tx.send_modify(|pushes| *pushes = pushes.wrapping_add(1));
        }
    }

    /// When a worker of `kind` polls: after each push from this process's relay, and every
    /// `every` besides. It never ends while these `Wakers` live, which the worker's context
    /// guarantees (an ended stream would make apalis poll without pause).
    pub fn polls(
        &self,
        kind: JobKind,
        every: Duration,
    ) -> impl Stream<Item = ()> + Unpin + Send + Sync + 'static {
        // Every kind has a channel (`new`).
        let pushed = WatchStream::from_changes(self.0[&kind].subscribe()).map(|_| ());
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ticks = IntervalStream::new(tick).map(|_| ());
        futures::stream::select(pushed, ticks)
    }
}

impl Default for Wakers {
    fn default() -> Self {
        Self::new()
    }
}

/// Task records (any state) the queue keeps in Redis: what vacuuming bounds.
pub async fn stored(
    conn: &mut ConnectionManager,
    prefix: &str,
    kind: JobKind,
) -> redis::RedisResult<i64> {
    redis::cmd("HLEN")
        .arg(config(prefix, kind).job_data_hash())
        .query_async(conn)
        .await
}

/// Removes finished tasks from the queue's Redis keys; returns how many records it removed.
///
/// apalis' own [`Vacuum::vacuum`] deletes a finished task's payload (`{q}:data`) and metadata
/// hash (`{q}:meta:{id}`, which also holds its result), but not its id in the `{q}:done` or
/// `{q}:dead` set that `handle_results.lua` adds it to, and nothing else ever removes those: they
/// grew by one member per task forever (about 75 bytes each). The second step drops the ids whose
/// payload is gone, i.e. tasks the first step vacuumed. The ledger is the record of what ran.
///
/// Nothing a queued or running task needs is touched: apalis only vacuums tasks in a final
/// state (`Done`, `Failed`, `Killed`), and a set member whose payload still exists stays for a
/// later pass.
pub async fn vacuum(
    queue: &mut Queue,
    conn: &mut ConnectionManager,
    prefix: &str,
    kind: JobKind,
) -> anyhow::Result<usize> {
    let vacuumed = queue.vacuum().await?;
    let config = config(prefix, kind);
    let forgotten: usize = FORGET_FINISHED
        .key(config.job_data_hash())
        .key(config.done_jobs_set())
        .key(config.dead_jobs_set())
        .invoke_async(conn)
        .await?;
    Ok(vacuumed + forgotten)
}

/// Removes from the sets `KEYS[2..]` (done, dead) the task ids without a payload in the data
/// hash `KEYS[1]`. Atomic, so a task is never checked and removed across a concurrent change.
static FORGET_FINISHED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local removed = 0
        for k = 2, #KEYS do
          for _, id in ipairs(redis.call('SMEMBERS', KEYS[k])) do
            if redis.call('HEXISTS', KEYS[1], id) == 0 then
              removed = removed + redis.call('SREM', KEYS[k], id)
            end
          end
        end
        return removed
        ",
    )
});

/// Forgets a stopped apalis worker `name` of `kind`'s queue: deletes its metadata hash
/// (`{q}:workers:metadata:{name}`, never removed by apalis) and, when it holds no task, its
/// entry in `{q}:workers`. apalis' own clean-up on close removes the wrong member (the inflight
/// set's key instead of the name), so every worker start otherwise left both behind. A worker
/// that still holds tasks keeps its entry: apalis' orphan recovery needs it to re-enqueue them.
pub async fn release_worker(
    conn: &mut ConnectionManager,
    prefix: &str,
    kind: JobKind,
    name: &str,
) -> redis::RedisResult<()> {
    let config = config(prefix, kind);
    RELEASE_WORKER
        .key(config.workers_set())
        .key(format!("{}:workers:metadata:{name}", config.queue.as_ref()))
        .key(format!("{}:{name}", config.inflight_jobs_set()))
        .arg(name)
        .invoke_async(conn)
        .await
}

/// `KEYS[1]`: the workers set; `KEYS[2]`: the worker's metadata hash; `KEYS[3]`: its inflight
/// set; `ARGV[1]`: its name.
static RELEASE_WORKER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        redis.call('DEL', KEYS[2])
        if redis.call('SCARD', KEYS[3]) == 0 then
          redis.call('ZREM', KEYS[1], ARGV[1])
        end
        return 0
        ",
    )
});

/// Tickets of the queue waiting in Redis (scheduled plus ready); each carries one job or a few.
pub async fn depth(
    conn: &mut ConnectionManager,
    prefix: &str,
    kind: JobKind,
) -> redis::RedisResult<i64> {
    let config = config(prefix, kind);
    let (scheduled, active): (i64, i64) = redis::pipe()
        .zcard(config.scheduled_jobs_set())
        .llen(config.active_jobs_list())
        .query_async(conn)
        .await?;
    Ok(scheduled + active)
}

/// Pushes `tickets`, each under a fresh task id (re-pushing an old id is a silent no-op in
/// apalis-redis), through apalis' buffered sink: a few Redis round trips for the whole batch
/// instead of one per ticket. On an error some tickets may be in Redis and others not.
pub async fn push_all(queue: &mut Queue, tickets: Vec<JobTicket>) -> Result<(), BoxDynError> {
    let tasks: Vec<_> = tickets
        .into_iter()
        .map(|ticket| {
            TaskBuilder::new(ticket)
                .task_id(TaskId::from_ulid(ulid::Ulid::generate()))
                .build()
        })
        .collect();
    queue
        .push_all(futures::stream::iter(tasks))
        .await
        .map_err(|e| Box::new(e) as BoxDynError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deliver_worker_of_few_slots_holds_enough_tickets_to_cover_the_ledgers_round_trips() {
        let deliver = |concurrency| {
            (
                fetch_batch(JobKind::Deliver, concurrency),
                tickets_in_flight(JobKind::Deliver, concurrency),
            )
        };
        // The default keeps a quarter per poll: 16 tickets, 32 at once.
        assert_eq!(deliver(64), (16, 32));
        assert_eq!(deliver(32), (8, 16));
        // Fewer slots still hold 16 tickets, not 8 (half the slots per poll, up to 8).
        assert_eq!(deliver(16), (8, 16));
        assert_eq!(deliver(8), (4, 8));
        assert_eq!(deliver(2), (1, 2));
        assert_eq!(deliver(1), (1, 2));
        for concurrency in 1..=256 {
            let (batch, in_flight) = deliver(concurrency);
            assert!(batch >= 1 && in_flight == 2 * batch, "{concurrency}");
            assert!(in_flight <= concurrency.max(2), "{concurrency}");
        }
    }

    #[test]
    fn a_slow_kinds_worker_takes_a_quarter_of_its_slots_per_poll() {
        // Handing out a fetched batch waits for tickets in flight to end, without a heartbeat:
        // an email worker keeps its batches small whatever its slots.
        for kind in JobKind::ALL.into_iter().filter(|k| *k != JobKind::Deliver) {
            assert_eq!(fetch_batch(kind, 64), 16);
            assert_eq!(fetch_batch(kind, 16), 4);
            assert_eq!(tickets_in_flight(kind, 16), 8);
            assert_eq!(fetch_batch(kind, 2), 1);
        }
    }
}
