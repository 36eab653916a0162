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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long to wait before trying again after a failed connect, and between checks of a
/// Redis that stopped answering.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a background check waits for Redis's answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Checks on the connection in use that may go unanswered before the checks open a new one
/// (the old one may lead nowhere: a half-open socket, an address that moved).
const CHECKS_BEFORE_RECONNECTING: u32 = 3;

/// A lazily connected, shared Redis connection manager (cheap to clone).
#[derive(Clone)]
pub struct RedisConn(Arc<Shared>);

struct Shared {
    client: redis::Client,
    state: Mutex<State>,
    silent: AtomicBool,
    /// Counts the times Redis answered again: a command sent before it went silent, failing
    /// after it answered again, says nothing of now.
    generation: AtomicU64,
}

enum State {
    Connected(ConnectionManager),
    Down { since: Instant },
    Unknown,
}

impl RedisConn {
    /// Prepares a connection to `url`; fails only if the URL itself is invalid.
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        Ok(Self(Arc::new(Shared {
            client: convos_plumbing::redis_client::open(url)?,
            state: Mutex::new(State::Unknown),
            silent: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        })))
    }

    /// The client, for dedicated connections (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.0.client
    }

    /// The connection, opening it if needed; an error at once while Redis is known not to
    /// answer.
    pub async fn get(&self) -> redis::RedisResult<Conn> {
        if self.0.silent.load(Ordering::Acquire) {
            return Err(unavailable(
                "redis is not answering (checking again shortly)",
            ));
        }
        let mut state = self.0.state.lock().await;
        match &*state {
            State::Connected(conn) => return Ok(self.wrap(conn.clone())),
            State::Down { since } if since.elapsed() < RETRY_AFTER => {
                return Err(unavailable("redis is unreachable (retrying shortly)"));
            }
            _ => {}
        }
        match self.connect().await {
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

    /// A new connection manager. It reconnects by itself once established; it answers slow
    /// commands for up to 5 s before giving up, instead of redis-rs's 500 ms default.
    async fn connect(&self) -> redis::RedisResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        self.0
            .client
            .get_connection_manager_with_config(config)
            .await
    }

    fn wrap(&self, inner: ConnectionManager) -> Conn {
        Conn {
            inner,
            redis: self.clone(),
            generation: self.0.generation.load(Ordering::Acquire),
        }
    }

    /// Pings Redis every [`RETRY_AFTER`] until it answers (any reply, an error too: it is
    /// there), on a new connection once the one in use has left a few checks unanswered; then
    /// lets commands through again.
    async fn check_until_answered(self, mut conn: ConnectionManager) {
        let mut unanswered = 0;
        loop {
            tokio::time::sleep(RETRY_AFTER).await;
            if unanswered >= CHECKS_BEFORE_RECONNECTING {
                match tokio::time::timeout(CHECK_TIMEOUT, self.connect()).await {
                    Ok(Ok(fresh)) => conn = fresh,
                    _ => continue,
                }
            }
            let ping = redis::cmd("PING");
            let answer = tokio::time::timeout(CHECK_TIMEOUT, ping.query_async::<String>(&mut conn));
            match answer.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.code().is_some() => {}
                _ => {
                    unanswered += 1;
                    continue;
                }
            }
            *self.0.state.lock().await = State::Connected(conn);
            self.0.generation.fetch_add(1, Ordering::AcqRel);
            self.0.silent.store(false, Ordering::Release);
            tracing::info!("redis answers again");
            return;
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
    redis: RedisConn,
    /// [`RedisConn::generation`] when this was handed out.
    generation: u64,
}

impl Conn {
    fn noted<T>(&self, result: redis::RedisResult<T>) -> redis::RedisResult<T> {
        if let Err(e) = &result {
            let silent = e.is_timeout()
                || e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal();
            let current = self.generation == self.redis.0.generation.load(Ordering::Acquire);
            // The first to find it silent starts the checks; the others find them started.
            if silent && current && !self.redis.0.silent.swap(true, Ordering::AcqRel) {
                tracing::warn!(error = %e, "redis is not answering; not asking it until it does");
                let redis = self.redis.clone();
                tokio::spawn(redis.check_until_answered(self.inner.clone()));
            }
        }
        result
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
