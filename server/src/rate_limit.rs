//! Abuse limits kept in Redis, so they hold across every server process.
//!
//! Each limit is a counter per (kind, subject) that lives for one window from its first hit.
//! If Redis cannot be reached the limit is not enforced (and the failure is logged): an outage
//! of the counter store must not stop people from sending or logging in.

use crate::error::ApiError;
use crate::redis_conn::RedisConn;
use convos_core::UserId;
use convos_plumbing::rate_limit::{SendDecision, SendLimits, Unsent};
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
        user: UserId,
        per_minute: u32,
    ) -> Result<(), ApiError> {
        match self
            .hit(kind, &user.to_string(), per_minute, Duration::from_secs(60))
            .await
        {
            Decision::Allowed => Ok(()),
            Decision::Limited(wait) => Err(ApiError::RateLimited(wait)),
        }
    }

    /// Counts one send by `user` of `bytes` (its `message_volume`) against their messages a
    /// minute and volume a day (decision 72), in one round trip: `429` with `Retry-After` past
    /// either. Whether it was counted: not while Redis does not answer (limits fail open).
    pub async fn send(
        &self,
        user: UserId,
        limits: SendLimits,
        bytes: u64,
    ) -> Result<Counted, ApiError> {
        let decided = match self.redis.get().await {
            Err(e) => Err(e),
            Ok(mut conn) => {
                let user = user.to_string();
                convos_plumbing::rate_limit::send(&mut conn, &self.prefix, &user, limits, bytes)
                    .await
            }
        };
        match decided {
            Ok(SendDecision::Allowed) => Ok(Counted(true)),
            Ok(SendDecision::TooFast(wait)) => Err(ApiError::RateLimited(wait)),
            Ok(SendDecision::DaySent(wait)) => Err(ApiError::SendVolume(wait)),
            Err(e) => {
                tracing::warn!(error = %e, "send limits not enforced: redis unavailable");
                Ok(Counted(false))
            }
        }
    }

    /// Takes back what [`Self::send`] counted of a send that then stored nothing, if it
    /// counted anything (given back when it did not, it would take away other sends' counts);
    /// best effort.
    pub async fn give_back_send(&self, user: UserId, bytes: u64, counted: Counted, unsent: Unsent) {
        if !counted.0 {
            return;
        }
        if let Ok(mut conn) = self.redis.get().await {
            let user = user.to_string();
            let _ = convos_plumbing::rate_limit::give_back_send(
                &mut conn,
                &self.prefix,
                &user,
                bytes,
                unsent,
            )
            .await;
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

/// Whether [`RateLimiter::send`] counted a send (not while Redis does not answer).
#[derive(Clone, Copy, Debug)]
pub struct Counted(bool);
