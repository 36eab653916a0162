//! Abuse limits kept in Redis, so they hold across every server process.
//!
//! Each limit is a counter per (kind, subject) that lives for one window from its first hit.
//! If Redis cannot be reached the limit is not enforced (and the failure is logged): an outage
//! of the counter store must not stop people from sending or logging in.

use crate::redis_conn::RedisConn;
use std::time::Duration;

pub use convos_plumbing::rate_limit::Decision;

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
        convos_plumbing::rate_limit::key(&self.prefix, kind, subject)
    }

    /// Counts one attempt and decides whether it may proceed.
    pub async fn hit(&self, kind: &str, subject: &str, limit: u32, window: Duration) -> Decision {
        let key = self.key(kind, subject);
        let result = match self.redis.get().await {
            Err(e) => Err(e),
            Ok(mut conn) => convos_plumbing::rate_limit::hit(&mut conn, &key, limit, window).await,
        };
        match result {
            Ok(decision) => decision,
            Err(e) => {
                tracing::warn!(error = %e, kind, "rate limit not enforced: redis unavailable");
                Decision::Allowed
            }
        }
    }

    /// Counts one of `user`'s `kind` against `per_minute`; `429` with `Retry-After` past it.
    pub async fn per_user_minute(
        &self,
        kind: &str,
        user: convos_core::UserId,
        per_minute: u32,
    ) -> Result<(), crate::error::ApiError> {
        let minute = Duration::from_secs(60);
        match self.hit(kind, &user.to_string(), per_minute, minute).await {
            Decision::Allowed => Ok(()),
            Decision::Limited(wait) => Err(crate::error::ApiError::RateLimited(wait)),
        }
    }

    /// Takes back one counted attempt (a login that succeeded).
    pub async fn forget_one(&self, kind: &str, subject: &str) {
        let key = self.key(kind, subject);
        if let Ok(mut conn) = self.redis.get().await {
            let _ = convos_plumbing::rate_limit::forget_one(&mut conn, &key).await;
        }
    }
}
