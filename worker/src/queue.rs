//! apalis on Redis as the transport: one queue per job kind, carrying only ledger ids.

use apalis::prelude::*;
use apalis_redis::{Config as QueueConfig, RedisStorage};
use convos_core::jobs::{JobKind, JobTicket};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

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
    redis::Client::open(url)?
        .get_connection_manager_with_config(config)
        .await
}

/// The queue configuration of `kind`. Heartbeats are frequent so that the tasks of a crashed
/// worker are recovered within a minute (the ledger's deadline remains the backstop).
pub fn config(prefix: &str, kind: JobKind) -> QueueConfig {
    QueueConfig::default()
        .queue(queue_name(prefix, kind))
        .heartbeat_interval(Duration::from_secs(5))
        .missed_heartbeats(6)
}

/// The storage of `kind`'s queue over `conn`.
pub fn storage(conn: ConnectionManager, prefix: &str, kind: JobKind) -> Queue {
    RedisStorage::new(conn).with_config(config(prefix, kind))
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

/// Tasks of the queue waiting in Redis (scheduled plus ready).
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

/// Pushes one ticket under a fresh task id (re-pushing an old id is a silent no-op in
/// apalis-redis).
pub async fn push(queue: &mut Queue, ticket: JobTicket) -> Result<(), BoxDynError> {
    let task = TaskBuilder::new(ticket)
        .task_id(TaskId::from_ulid(ulid::Ulid::generate()))
        .build();
    queue
        .push_task(task)
        .await
        .map_err(|e| Box::new(e) as BoxDynError)
}
