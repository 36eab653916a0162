//! The Convos background worker.
//!
//! This release connects to PostgreSQL and Redis, reports readiness and waits for a shutdown
//! signal; the job handlers (delivery, email notification, purge) arrive with the jobs issue.

use anyhow::Context;
use std::time::Duration;

/// Connection settings of the worker, from the environment.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// PostgreSQL URL.
    pub database_url: String,
    /// Redis URL.
    pub redis_url: String,
}

impl WorkerSettings {
    /// Reads `DATABASE_URL` and `REDIS_URL`, with the same defaults as the server.
    pub fn from_env() -> Self {
        Self {
            database_url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://localhost/convos".into()),
            redis_url: std::env::var("REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        }
    }
}

/// Connects to both stores, proving they answer, then runs until `shutdown` resolves.
pub async fn run(
    settings: WorkerSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let db = convos_store::connect(&settings.database_url, 4)
        .await
        .context("could not connect to postgres")?;
    sqlx::query("select 1")
        .execute(&db)
        .await
        .context("postgres did not answer")?;
    let client = redis::Client::open(settings.redis_url.as_str()).context("invalid REDIS_URL")?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    let mut redis = client
        .get_connection_manager_with_config(config)
        .await
        .context("could not connect to redis")?;
    let _: String = redis::cmd("PING")
        .query_async(&mut redis)
        .await
        .context("redis did not answer")?;
    tracing::info!("worker ready (no job kinds registered yet)");
    shutdown.await;
    tracing::info!("worker stopped");
    Ok(())
}
