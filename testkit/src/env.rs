//! The test's environment: where PostgreSQL and Redis are, a fresh Redis key prefix, free
//! ports, and a Redis server of the test's own.

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared Redis (`REDIS_URL`, which `cargo xtask test` sets).
#[track_caller]
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL names a Redis to test against (cargo xtask test)")
}

/// A Redis key prefix no other test uses, so tests can share one Redis.
pub fn fresh_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4().simple())
}

/// The URL of the database `db` is connected to: `DATABASE_URL` with its database name
/// replaced, so another process or pool (the worker, a CLI) can reach a `#[sqlx::test]`
/// database.
pub async fn database_url(db: &PgPool) -> String {
    let name: String = sqlx::query_scalar("select current_database()")
        .fetch_one(db)
        .await
        .expect("the database answers");
    with_database(&name)
}

/// The URL of the database `opts` names (a `#[sqlx::test(migrations = false)]` test's
/// connect options): `DATABASE_URL` with its database name replaced.
pub fn database_url_of(opts: &PgConnectOptions) -> String {
    with_database(opts.get_database().unwrap_or("postgres"))
}

/// `DATABASE_URL`, pointed at database `name`.
fn with_database(name: &str) -> String {
    let base = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL names a PostgreSQL to test against (cargo xtask test)");
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL ends in a database name");
    format!("{server}/{name}")
}

/// A free loopback port (bound, then let go).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A `redis-server` this test owns, so it can stop and restart it; killed when dropped.
pub struct OwnRedis {
    /// The port it listens on (the same across restarts).
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts `redis-server` on a free port, without persistence, and waits until it accepts
    /// connections.
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
        };
        redis.restart();
        redis
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after [`OwnRedis::stop`]), empty.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (cargo xtask test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes it (`SIGSTOP`): connections stay open and nothing is answered, as a stalled
    /// Redis does.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets it run again after [`OwnRedis::pause`]: it answers what it was sent meanwhile.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("redis-server runs").id();
        let sent = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// Kills it, as an outage would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
