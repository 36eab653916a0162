//! The whole platform in one test: PostgreSQL (one database per test), Redis (shared with a
//! key prefix, or a private `redis-server` the test can stop), an SMTP server (mailin, in this
//! process), the API server and the worker.

use convos_server::config::Settings;
use convos_server::startup::Application;
use convos_worker::config::WorkerSettings;
use mailin_embedded::response::{OK, Response};
use mailin_embedded::{Handler, Server};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One email as the SMTP server received it.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: Vec<String>,
    pub raw: String,
}

impl Mail {
    /// The decoded bodies of the text parts, by MIME type.
    pub fn part(&self, mime: &str) -> String {
        let parsed = mailparse::parse_mail(self.raw.as_bytes()).expect("a MIME message");
        parsed
            .subparts
            .iter()
            .chain(std::iter::once(&parsed))
            .find(|p| p.ctype.mimetype == mime)
            .map(|p| p.get_body().expect("decodable").replace("\r\n", "\n"))
            .unwrap_or_default()
    }

    /// A header's value (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// An in-process SMTP server that keeps what it receives.
#[derive(Clone, Default)]
pub struct SmtpSink {
    pub mails: Arc<Mutex<Vec<Mail>>>,
    /// The message being received on this connection (mailin clones the handler per
    /// connection, so this is per connection).
    current: (Vec<String>, Vec<u8>),
    /// Holds each message this long before accepting its body, to make jobs slow.
    delay: Duration,
}

impl Handler for SmtpSink {
    fn rcpt(&mut self, to: &str) -> Response {
        self.current.0.push(to.to_owned());
        OK
    }

    fn data_start(&mut self, _: &str, _: &str, _: bool, _: &[String]) -> Response {
        std::thread::sleep(self.delay);
        self.current.1.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.1.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let to = std::mem::take(&mut self.current.0);
        let raw = String::from_utf8_lossy(&std::mem::take(&mut self.current.1)).into_owned();
        self.mails.lock().unwrap().push(Mail { to, raw });
        OK
    }
}

impl SmtpSink {
    /// Starts serving on `port` (in a thread that lives as long as the test process).
    pub fn serve(port: u16, delay: Duration) -> Self {
        let sink = SmtpSink {
            delay,
            ..Self::default()
        };
        let mut server = Server::new(sink.clone());
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("smtp port is free");
        server
            .with_name("sink.test")
            .with_num_threads(64)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        sink
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` this test owns, so it can stop and restart it.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

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

/// Settings shared by server and worker in a test.
#[derive(Clone)]
pub struct StackConfig {
    pub redis_url: String,
    pub prefix: String,
    pub smtp_port: u16,
    pub notify_delay_secs: u64,
    pub job_deadline_secs: u64,
    pub retry_base_ms: u64,
    pub purge_every_secs: u64,
}

impl StackConfig {
    pub fn new() -> Self {
        Self {
            redis_url: std::env::var("REDIS_URL").expect("REDIS_URL (run via cargo xtask test)"),
            prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
            smtp_port: free_port(),
            notify_delay_secs: 0,
            job_deadline_secs: 5,
            retry_base_ms: 200,
            purge_every_secs: 3600,
        }
    }

    pub fn worker_settings(&self, db_url: &str) -> WorkerSettings {
        WorkerSettings {
            database_url: SecretString::from(db_url.to_owned()),
            redis_url: SecretString::from(self.redis_url.clone()),
            redis_prefix: self.prefix.clone(),
            smtp_url: SecretString::from(format!("smtp://127.0.0.1:{}", self.smtp_port)),
            mail_from: "Convos <notify@convos.test>".into(),
            public_url: "https://convos.test".into(),
            job_deadline_secs: self.job_deadline_secs,
            retry_base_ms: self.retry_base_ms,
            retry_max_secs: 2,
            relay_interval_ms: 50,
            poll_ms: 50,
            purge_every_secs: self.purge_every_secs,
            worker_metrics_addr: None,
            ..WorkerSettings::default()
        }
    }
}

/// A worker running in this process.
pub struct InProcessWorker {
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcessWorker {
    pub fn start(settings: WorkerSettings) -> Self {
        if std::env::var("TEST_LOG").is_ok() {
            convos_plumbing::telemetry::init(convos_plumbing::LogFormat::Pretty);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(convos_worker::run(settings, async move {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            done,
        }
    }

    /// Whether the worker is still running (it must never exit on its own).
    pub fn is_running(&self) -> bool {
        !self.done.is_finished()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.done
            .await
            .expect("worker task")
            .expect("worker ran cleanly");
    }
}

/// A `convos-worker` process of its own, stopped with SIGTERM when dropped.
pub struct WorkerProcess(pub Child);

impl WorkerProcess {
    /// Starts the worker binary against this test's stores, with extra environment.
    pub fn spawn(config: &StackConfig, db_url: &str, extra: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_convos-worker"));
        cmd.env("DATABASE_URL", db_url)
            .env("REDIS_URL", &config.redis_url)
            .env("CONVOS_REDIS_PREFIX", &config.prefix)
            .env(
                "CONVOS_SMTP_URL",
                format!("smtp://127.0.0.1:{}", config.smtp_port),
            )
            .env("CONVOS_MAIL_FROM", "Convos <notify@convos.test>")
            .env(
                "CONVOS_JOB_DEADLINE_SECS",
                config.job_deadline_secs.to_string(),
            )
            .env("CONVOS_RELAY_INTERVAL_MS", "50")
            .env("CONVOS_POLL_MS", "50")
            .env(
                "CONVOS_WORKER_METRICS_ADDR",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (key, value) in extra {
            cmd.env(key, value);
        }
        Self(cmd.spawn().expect("worker starts"))
    }

    /// Stops it with SIGTERM and waits; it must exit cleanly.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let status = self.0.wait().expect("worker exits");
        assert!(status.success(), "worker exited with {status}");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The API server running in this process.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub db: PgPool,
}

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub username: String,
    pub token: String,
}

impl Api {
    /// Starts the API with the `verify_email` queue paused: the users of these tests confirm
    /// their address at once (see [`Api::user`]), which skips their waiting verification emails,
    /// so no verification email races the confirmation into the SMTP sink. Tests of the
    /// verification email itself call [`Api::send_verification_emails`].
    pub async fn start(db: PgPool, config: &StackConfig) -> Self {
        sqlx::query("insert into queue_controls (kind, paused) values ('verify_email', true)")
            .execute(&db)
            .await
            .expect("verification emails paused");
        let settings = Settings {
            addr: "127.0.0.1:0".parse().unwrap(),
            redis_url: SecretString::from(config.redis_url.clone()),
            redis_prefix: config.prefix.clone(),
            notify_delay_secs: config.notify_delay_secs,
            send_rate_per_min: 100_000,
            migrate_on_start: false,
            db_max_connections: 10,
            sse_heartbeat_secs: 1,
            server_metrics_addr: None,
            max_connections_per_addr: 100_000,
            signups_per_hour_per_addr: 100_000,
            login_failures_per_min_per_addr: 100_000,
            ..Settings::default()
        };
        let app = Application::with_pool(settings, db.clone())
            .await
            .expect("api starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        Self {
            base,
            http: reqwest::Client::new(),
            db,
        }
    }

    /// Lets the worker send verification emails (paused by [`Api::start`]).
    pub async fn send_verification_emails(&self) {
        sqlx::query("delete from queue_controls where kind = 'verify_email'")
            .execute(&self.db)
            .await
            .expect("verification emails resumed");
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Signs up `username` (`<username>@example.com`), confirms the address as following the
    /// emailed link does (the store function behind `POST /verify/{token}`), and logs in.
    pub async fn user(&self, username: &str) -> User {
        let user = self.unverified_user(username).await;
        let id: convos_core::UserId = user.id.parse().expect("a user id");
        let confirmed = convos_store::verification::confirm(
            &self.db,
            id,
            &format!("{username}@example.com"),
            chrono::Utc::now(),
        )
        .await
        .expect("confirmed");
        assert_eq!(confirmed, convos_store::verification::Confirmed::Verified);
        user
    }

    /// Signs up `username` (`<username>@example.com`) and logs in, leaving the address
    /// unverified.
    pub async fn unverified_user(&self, username: &str) -> User {
        let password = format!("password-{username}");
        let (status, _) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/users",
                None,
                Some(json!({"username": username, "email": format!("{username}@example.com"), "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, session) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/sessions",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        User {
            id: session["user"]["id"].as_str().unwrap().to_owned(),
            username: username.to_owned(),
            token: session["token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn send(&self, from: &User, to: &User, subject: &str, body: &str) -> Value {
        let (status, message) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/messages",
                Some(&from.token),
                Some(json!({"recipient": to.username, "subject": subject, "body": body})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        message
    }

    pub async fn reply(&self, from: &User, thread: &str, body: &str) -> Value {
        let (status, message) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/threads/{thread}/messages"),
                Some(&from.token),
                Some(json!({"body": body})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        message
    }
}

/// The database URL of a `#[sqlx::test]` database, for the worker's own pool.
pub async fn database_url(db: &PgPool) -> String {
    let name: String = sqlx::query_scalar("select current_database()")
        .fetch_one(db)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

/// Parses Prometheus text format into `name{labels}` → value, failing on any malformed line.
pub fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("malformed: {line}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            let name_ok = series.split('{').next().is_some_and(|n| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            assert!(name_ok, "bad metric name: {line}");
            (series.to_owned(), value)
        })
        .collect()
}

/// Job counts by state.
pub async fn job_states(db: &PgPool) -> std::collections::BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("select state, count(*) from jobs group by state")
            .fetch_all(db)
            .await
            .unwrap();
    rows.into_iter().collect()
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether every job has finished (done or skipped).
pub async fn all_jobs_finished(db: &PgPool) -> bool {
    let open: i64 = sqlx::query_scalar(
        "select count(*) from jobs where state not in ('done', 'skipped', 'dead')",
    )
    .fetch_one(db)
    .await
    .unwrap();
    open == 0
}

/// `count` accounts named `{prefix}{n}` written straight into the store (they never log in),
/// for tests that write messages through the store rather than the API.
pub async fn store_users(db: &PgPool, prefix: &str, count: usize) -> Vec<convos_core::UserId> {
    let mut users = Vec::new();
    for i in 0..count {
        let name = format!("{prefix}{i:02}");
        let user = convos_store::users::insert(
            db,
            &convos_core::Username::parse(&name).unwrap(),
            &convos_core::EmailAddress::parse(&format!("{name}@example.com")).unwrap(),
            &convos_core::DisplayName::parse(&name).unwrap(),
            "not-a-real-hash",
            false,
        )
        .await
        .unwrap();
        users.push(user.id);
    }
    users
}
