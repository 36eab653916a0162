//! Waking the workers' relays when this process commits jobs (decision 12).
//!
//! Every store write that may enqueue jobs returns a [`Written`]; handlers get its value only
//! through [`WorkerWake::committed`], the one place that decides to wake, so no handler can
//! forget. One task per process then PUBLISHes a tiny message on the wake channel, and every
//! worker's relay runs a pass at once instead of at its next tick.
//! The message is only a hint: it is sent after the response path has moved on, never delays
//! or fails a request, and if Redis is down it is dropped (logged at debug) and the relays'
//! ticks find the jobs as before.

use crate::redis_conn::RedisConn;
use convos_store::Written;
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

    /// The value of a committed store write, waking the relays if it enqueued jobs (or made
    /// some due). Never waits.
    pub fn committed<T>(&self, written: Written<T>) -> T {
        written.waking(|| self.jobs_committed())
    }

    fn jobs_committed(&self) {
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
