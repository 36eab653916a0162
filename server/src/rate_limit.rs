//! Abuse limits kept in Redis, so they hold across every server process.
//!
//! Each limit is a counter per (kind, subject) that lives for one window from its first hit.
//! If Redis cannot be reached the limit is not enforced (and the failure is logged): an outage
//! of the counter store must not stop people from sending or logging in.

use crate::redis_conn::RedisConn;
use std::time::Duration;

/// The outcome of counting one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Under the limit.
    Allowed,
    /// Over the limit until this much time has passed.
    Limited(Duration),
}

/// Redis-backed counters.
#[derive(Clone)]
pub struct RateLimiter {
    redis: RedisConn,
    prefix: String,
}

impl RateLimiter {
    /// Counters under `prefix` in `redis`.
    pub fn new(redis: RedisConn, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
        }
    }

    fn key(&self, kind: &str, subject: &str) -> String {
        format!("{}rl:{kind}:{subject}", self.prefix)
    }

    /// Counts one attempt and decides whether it may proceed.
    pub async fn hit(&self, kind: &str, subject: &str, limit: u32, window: Duration) -> Decision {
        let key = self.key(kind, subject);
        let result: redis::RedisResult<(u64, i64)> = match self.redis.get().await {
            Err(e) => Err(e),
            Ok(mut conn) => {
                redis::pipe()
                    .atomic()
                    .incr(&key, 1)
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(window.as_millis() as u64)
                    .arg("NX")
                    .ignore()
                    .pttl(&key)
                    .query_async(&mut conn)
                    .await
            }
        };
        match result {
            Ok((count, ttl_ms)) if count > u64::from(limit) => {
                Decision::Limited(Duration::from_millis(ttl_ms.max(1000) as u64))
            }
            Ok(_) => Decision::Allowed,
            Err(e) => {
                tracing::warn!(error = %e, kind, "rate limit not enforced: redis unavailable");
                Decision::Allowed
            }
        }
    }

    /// Takes back one counted attempt (a login that succeeded).
    pub async fn forget_one(&self, kind: &str, subject: &str) {
        let key = self.key(kind, subject);
        if let Ok(mut conn) = self.redis.get().await {
            let _: redis::RedisResult<i64> =
                redis::cmd("DECR").arg(&key).query_async(&mut conn).await;
        }
    }
}
