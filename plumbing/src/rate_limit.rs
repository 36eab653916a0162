//! Abuse limits kept in Redis, one counter per (kind, subject) living one window from its first
//! hit: the server's request limits and the worker's limit on replies by email count in the
//! same keys, so one user's sends are one budget however they arrive.

use redis::aio::ConnectionManager;
use std::time::Duration;

/// The outcome of counting one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Under the limit.
    Allowed,
    /// Over the limit until this much time has passed.
    Limited(Duration),
}

/// The counter of `kind` for `subject` under the key prefix `prefix`.
pub fn key(prefix: &str, kind: &str, subject: &str) -> String {
    format!("{prefix}rl:{kind}:{subject}")
}

/// Counts one attempt against counter `key` (at most `limit` per `window`) and decides.
pub async fn hit(
    conn: &mut ConnectionManager,
    key: &str,
    limit: u32,
    window: Duration,
) -> redis::RedisResult<Decision> {
    let (count, ttl_ms): (u64, i64) = redis::pipe()
        .atomic()
        .incr(key, 1)
        .cmd("PEXPIRE")
        .arg(key)
        .arg(window.as_millis() as u64)
        .arg("NX")
        .ignore()
        .pttl(key)
        .query_async(conn)
        .await?;
    Ok(if count > u64::from(limit) {
        Decision::Limited(Duration::from_millis(ttl_ms.max(1000) as u64))
    } else {
        Decision::Allowed
    })
}

/// Takes back one counted attempt (a login that succeeded, a send that was refused).
pub async fn forget_one(conn: &mut ConnectionManager, key: &str) -> redis::RedisResult<()> {
    redis::cmd("DECR").arg(key).query_async::<i64>(conn).await?;
    Ok(())
}
