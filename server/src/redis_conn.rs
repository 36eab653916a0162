//! A Redis connection that the server can start without, and that stops being asked while
//! Redis does not answer.
//!
//! Redis holds only shared counters and announcements, so an outage must not stop the API: the
//! connection is opened on first use, re-attempted at most once a second while Redis is down,
//! and callers decide what a missing connection means (rate limits fail open, `/readyz` says
//! 503). Once a command finds Redis silent (a timeout, a dropped or refused connection), every
//! caller is answered at once that it is unavailable, instead of waiting out the 5 s timeout
//! request after request, until a `PING` in the background gets an answer again (decision 92).

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long to wait before trying again after a failed connect, and between checks of a
/// Redis that stopped answering.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a background check waits for Redis's answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A lazily connected, shared Redis connection manager.
#[derive(Clone)]
pub struct RedisConn {
    client: redis::Client,
    state: Arc<Mutex<State>>,
    silent: Arc<AtomicBool>,
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
            silent: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The client, for dedicated connections (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The connection, opening it if needed; an error at once while Redis is known not to
    /// answer.
    pub async fn get(&self) -> redis::RedisResult<Conn> {
        if self.silent.load(Ordering::Acquire) {
            return Err(unavailable(
                "redis is not answering (checking again shortly)",
            ));
        }
        let mut state = self.state.lock().await;
        match &*state {
            State::Connected(conn) => return Ok(self.wrap(conn.clone())),
            State::Down { since } if since.elapsed() < RETRY_AFTER => {
                return Err(unavailable("redis is unreachable (retrying shortly)"));
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
                Ok(self.wrap(conn))
            }
            Err(e) => {
                *state = State::Down {
                    since: Instant::now(),
                };
                Err(e)
            }
        }
    }

    fn wrap(&self, inner: ConnectionManager) -> Conn {
        Conn {
            inner,
            silent: self.silent.clone(),
        }
    }
}

fn unavailable(why: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::Io, why))
}

/// The shared connection, as commands use it: a command that finds Redis silent makes every
/// [`RedisConn::get`] fail at once until a background `PING` is answered.
#[derive(Clone)]
pub struct Conn {
    inner: ConnectionManager,
    silent: Arc<AtomicBool>,
}

impl Conn {
    fn noted<T>(&self, result: redis::RedisResult<T>) -> redis::RedisResult<T> {
        if let Err(e) = &result {
            let silent = e.is_timeout()
                || e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal();
            // The first to find it silent starts the checks; the others find them started.
            if silent && !self.silent.swap(true, Ordering::AcqRel) {
                tracing::warn!(error = %e, "redis is not answering; not asking it until it does");
                tokio::spawn(check_until_answered(
                    self.inner.clone(),
                    self.silent.clone(),
                ));
            }
        }
        result
    }
}

/// Pings Redis every [`RETRY_AFTER`] until it answers, then lets commands through again.
async fn check_until_answered(mut conn: ConnectionManager, silent: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(RETRY_AFTER).await;
        let ping = redis::cmd("PING");
        let answer = tokio::time::timeout(CHECK_TIMEOUT, ping.query_async::<String>(&mut conn));
        if let Ok(Ok(_)) = answer.await {
            silent.store(false, Ordering::Release);
            tracing::info!("redis answers again");
            return;
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.inner.req_packed_command(cmd).await;
            self.noted(result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self
                .inner
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.noted(result)
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
