//! What every handler can reach.

use crate::config::Settings;
use crate::rate_limit::RateLimiter;
use crate::redis_conn::RedisConn;
use sqlx::PgPool;
use std::sync::Arc;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// PostgreSQL pool.
    pub db: PgPool,
    /// Redis, connected on demand.
    pub redis: RedisConn,
    /// Abuse limits.
    pub limiter: RateLimiter,
    /// How sends enqueue their jobs.
    pub notify: convos_store::jobs::NotifySettings,
    /// Wakes the workers' relays after a commit that wrote jobs.
    pub wake: crate::wake::WorkerWake,
    /// The live event fan-out of this process.
    pub hub: crate::events::Hub,
    /// The event streams open in this process, capped per user.
    pub streams: crate::streams::Streams,
    /// The requests under way in this process, capped per user.
    pub in_flight: crate::in_flight::InFlight,
    /// Each client network's requests a second in this process (`requests_per_sec_per_addr`).
    pub requests: convos_plumbing::request_rate::RequestRate,
    /// The searches running in this process, all users together (`max_searches`).
    pub searches: crate::costly::Budget,
    /// The actions on whole long threads running in this process, all users together
    /// (`max_long_thread_actions`).
    pub long_thread_actions: crate::costly::Budget,
    /// Fires when shutdown starts, ending long-lived streams so in-flight requests can finish.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Prometheus metrics of this process.
    pub metrics: crate::metrics::Metrics,
    /// The password hashing pool: a few threads with reused memory behind a bounded queue.
    pub hashing: crate::hashing::Hasher,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub proxies: Arc<crate::client_addr::TrustedProxies>,
    /// Settings in force.
    pub settings: Arc<Settings>,
    /// A real argon2 hash of a random password, verified against when a login names an unknown
    /// user, so that unknown and known usernames take the same time to refuse.
    pub dummy_hash: Arc<str>,
}
