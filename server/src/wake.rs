//! Waking the workers' relays when this process commits jobs (decision 12).
//!
//! After a transaction that wrote `jobs` rows commits, a handler calls
//! [`WorkerWake::jobs_committed`]; one task per process then PUBLISHes a tiny message on the
//! wake channel, and every worker's relay runs a pass at once instead of at its next tick.
//! The message is only a hint: it is sent after the response path has moved on, never delays
//! or fails a request, and if Redis is down it is dropped (logged at debug) and the relays'
//! ticks find the jobs as before.

use crate::redis_conn::RedisConn;
use tokio::sync::mpsc;

/// Tells the workers that jobs were committed; cheap to clone.
#[derive(Clone)]
pub struct WorkerWake {
    pending: mpsc::Sender<()>,
}

impl WorkerWake {
    /// Starts the publishing task of this process; it ends when the last handle is dropped.
    pub fn start(redis: RedisConn, prefix: &str) -> Self {
        // One slot: a wake waiting here has not been published yet, so it will be published
        // after any commit that finds the slot full. Bursts become one PUBLISH per round trip.
        let (pending, mut woken) = mpsc::channel::<()>(1);
        let channel = convos_core::jobs::wake_channel(prefix);
        tokio::spawn(async move {
            while woken.recv().await.is_some() {
                if let Err(e) = publish(&redis, &channel).await {
                    tracing::debug!(error = %e, "could not wake the workers; their tick will");
                }
            }
        });
        Self { pending }
    }

    /// Call after committing a transaction that enqueued jobs (or made some due). Never waits.
    pub fn jobs_committed(&self) {
        // Full means a wake is already waiting to be published: this commit is covered by it.
        let _ = self.pending.try_send(());
    }
}

async fn publish(redis: &RedisConn, channel: &str) -> redis::RedisResult<()> {
    let mut conn = redis.get().await?;
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg("wake")
        .query_async(&mut conn)
        .await
}
