//! A Redis connection that the server can start without.
//!
//! Redis holds only shared counters for now, so an outage must not stop the API: the
//! connection is opened on first use, re-attempted at most once a second while Redis is down,
//! and callers decide what a missing connection means (rate limits fail open, `/readyz` says
//! 503).

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long to wait before trying again after a failed connect.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A lazily connected, shared Redis connection manager.
#[derive(Clone)]
pub struct RedisConn {
    client: redis::Client,
    state: Arc<Mutex<State>>,
}

enum State {
    Connected(ConnectionManager),
    Down { since: Instant },
    Unknown,
}

impl RedisConn {
    /// Prepares a connection to `url`; fails only if the URL itself is invalid.
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        Ok(Self {
            client: convos_plumbing::redis_client::open(url)?,
            state: Arc::new(Mutex::new(State::Unknown)),
        })
    }

    /// The client, for dedicated connections (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The connection, opening it if needed.
    pub async fn get(&self) -> redis::RedisResult<ConnectionManager> {
        let mut state = self.state.lock().await;
        match &*state {
            State::Connected(conn) => return Ok(conn.clone()),
            State::Down { since } if since.elapsed() < RETRY_AFTER => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "redis is unreachable (retrying shortly)",
                )));
            }
            _ => {}
        }
        // The manager reconnects by itself once established; it answers slow commands for up
        // to 5 s before giving up, instead of redis-rs's 500 ms default.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        match self.client.get_connection_manager_with_config(config).await {
            Ok(conn) => {
                *state = State::Connected(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                *state = State::Down {
                    since: Instant::now(),
                };
                Err(e)
            }
        }
    }
}
