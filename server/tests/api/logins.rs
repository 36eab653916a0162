//! Logins under attack: a spray of wrong passwords neither grows the server's memory nor locks
//! the real owner out.

use convos_testkit::{Answer, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real `convos-server` process on a free port, killed when dropped.
struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    async fn start(opts: &PgConnectOptions, extra: &[(&str, &str)]) -> Self {
        let url = format!(
            "postgres://{}@{}:{}/{}",
            opts.get_username(),
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or("postgres")
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_convos-server"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env(
                "REDIS_URL",
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            )
            .env(
                "CONVOS_REDIS_PREFIX",
                format!("test:{}:", uuid::Uuid::new_v4().simple()),
            )
            .env("CONVOS_ADDR", format!("127.0.0.1:{port}"))
            .env("CONVOS_SERVER_METRICS_ADDR", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the server binary starts");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = client.get(format!("{}/readyz", server.base)).send().await
                && res.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// Resident memory of the process, in MiB, from `/proc`.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is running");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status");
        kib / 1024.0
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(client: &reqwest::Client, base: &str, username: &str, password: &str) -> StatusCode {
    client
        .post(format!("{base}/api/v1/sessions"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("request is sent")
        .status()
}

/// A real login's time; a quick "busy" answer is retried as a client would.
async fn timed_login(client: &reqwest::Client, base: &str) -> Duration {
    let started = Instant::now();
    loop {
        match login(client, base, "owner", "password-owner").await {
            StatusCode::CREATED => return started.elapsed(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("the owner's login failed with {other}"),
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[sqlx::test(migrations = false)]
async fn a_login_spray_does_not_grow_memory_or_starve_real_logins(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // Per-address limits off: this measures what the hashing itself costs.
    let server = ServerProcess::start(
        &opts,
        &[("CONVOS_LOGIN_FAILURES_PER_MIN_PER_ADDR", "1000000")],
    )
    .await;
    let client = reqwest::Client::new();
    let signup = client
        .post(format!("{}/api/v1/users", server.base))
        .json(&json!({"username": "owner", "email": "owner@example.com",
                      "password": "password-owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    let mut quiet = Vec::new();
    for _ in 0..5 {
        quiet.push(timed_login(&client, &server.base).await);
    }
    let before = server.rss_mib();

    // 40 parallel failed logins, each naming a different user.
    let spray = (0..40).map(|i| {
        let client = client.clone();
        let base = server.base.clone();
        async move { login(&client, &base, &format!("sprayed{i}"), "wrong password").await }
    });
    let answers = futures::future::join_all(spray).await;
    assert!(
        answers.iter().all(|s| *s == StatusCode::UNAUTHORIZED
            || *s == StatusCode::TOO_MANY_REQUESTS
            || *s == StatusCode::SERVICE_UNAVAILABLE),
        "{answers:?}"
    );
    let after = server.rss_mib();

    // 30 sprayers keep going while the owner logs in.
    let stop = tokio_util::sync::CancellationToken::new();
    let sprayers: Vec<_> = (0..30)
        .map(|i| {
            let (client, base, stop) = (client.clone(), server.base.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.is_cancelled() {
                    login(&client, &base, &format!("spray{i}x{n}"), "wrong password").await;
                    n += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut busy = Vec::new();
    for _ in 0..5 {
        busy.push(timed_login(&client, &server.base).await);
    }
    stop.cancel();
    for s in sprayers {
        s.await.unwrap();
    }
    let peak = server.rss_mib();
    eprintln!(
        "login spray: RSS {before:.1} MiB before, {after:.1} MiB after 40 parallel failures, \
         {peak:.1} MiB after 30 sprayers; a real login took {:?} alone and {:?} during the \
         spray (medians of 5)",
        median(quiet),
        median(busy)
    );
    assert!(
        after - before < 150.0,
        "40 failed logins grew RSS from {before:.1} MiB to {after:.1} MiB"
    );
    assert!(
        peak - before < 150.0,
        "a sustained spray grew RSS from {before:.1} MiB to {peak:.1} MiB"
    );
}

/// A login attempt from `addr`, as a trusted proxy on 127.0.0.1 reports it.
async fn login_from(app: &TestServer, addr: &str, username: &str, password: &str) -> Answer {
    let res = app
        .http
        .post(format!("{}/api/v1/sessions", app.base))
        .header("x-forwarded-for", addr)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("request is sent");
    Answer::from_response(res).await
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_sprayer_from_one_address_cannot_lock_the_owner_out(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.trusted_proxies = vec!["127.0.0.1".into()];
        s.login_failures_per_min = 3;
        s.login_failures_per_min_per_addr = 6;
    })
    .await;
    app.user("alice").await;
    app.user("bob").await;
    let attacker = "203.0.113.9";

    for _ in 0..3 {
        let guess = login_from(&app, attacker, "alice", "a wrong guess").await;
        assert_eq!(guess.status, StatusCode::UNAUTHORIZED);
    }
    let on_alice = login_from(&app, attacker, "alice", "another guess").await;
    assert_eq!(
        on_alice.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{on_alice:?}"
    );
    for name in ["bob", "carol"] {
        let spray = login_from(&app, attacker, name, "a wrong guess").await;
        assert_eq!(spray.status, StatusCode::UNAUTHORIZED);
    }
    let sprayed = login_from(&app, attacker, "dave", "a wrong guess").await;
    assert_eq!(sprayed.status, StatusCode::TOO_MANY_REQUESTS, "{sprayed:?}");
    assert_eq!(sprayed.code(), "rate_limited");
    let wait: u64 = sprayed.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let right = login_from(&app, attacker, "bob", "password-bob").await;
    assert_eq!(
        right.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is limited"
    );

    let owner = login_from(&app, "198.51.100.7", "alice", "password-alice").await;
    assert_eq!(owner.status, StatusCode::CREATED, "{owner:?}");
    let bob = login_from(&app, "2001:db8:7::1", "bob", "password-bob").await;
    assert_eq!(bob.status, StatusCode::CREATED, "{bob:?}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_username_wide_ceiling_spares_addresses_the_owner_used_before(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.trusted_proxies = vec!["127.0.0.1".into()];
        s.login_failures_per_hour_per_username = 4;
    })
    .await;
    app.user("alice").await;
    let home = "198.51.100.7";
    let owner = login_from(&app, home, "alice", "password-alice").await;
    assert_eq!(owner.status, StatusCode::CREATED);

    // Guesses spread over many addresses, one each.
    for i in 1..=4 {
        let guess = login_from(&app, &format!("203.0.113.{i}"), "alice", "wrong guess").await;
        assert_eq!(guess.status, StatusCode::UNAUTHORIZED);
    }
    let fifth = login_from(&app, "203.0.113.5", "alice", "wrong guess").await;
    assert_eq!(fifth.status, StatusCode::TOO_MANY_REQUESTS, "{fifth:?}");
    let elsewhere = login_from(&app, "192.0.2.1", "alice", "password-alice").await;
    assert_eq!(
        elsewhere.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a new address waits like a guesser"
    );

    let home_again = login_from(&app, home, "alice", "password-alice").await;
    assert_eq!(home_again.status, StatusCode::CREATED, "{home_again:?}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn one_account_logging_in_in_a_loop_is_stopped_and_keeps_a_bounded_session_list(db: PgPool) {
    // Default limits: the reproducer got 40 × 201 and left 40 sessions, without end.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let mut logged_in = 1;
    let mut last = alice.token.clone();
    let stopped = loop {
        let answer = login_from(&app, "198.51.100.7", "alice", "password-alice").await;
        if answer.status != StatusCode::CREATED {
            break answer;
        }
        logged_in += 1;
        last = answer.body["token"].as_str().unwrap().to_owned();
        assert!(logged_in <= 200, "200 logins in a row and still going");
    };

    assert_eq!(stopped.status, StatusCode::TOO_MANY_REQUESTS, "{stopped:?}");
    assert_eq!(stopped.code(), "rate_limited");
    assert!(stopped.headers.contains_key("retry-after"));
    assert_eq!(
        logged_in, 60,
        "logins_per_hour_per_user (60) successful logins an hour"
    );
    let listed = app
        .call(reqwest::Method::GET, "/api/v1/sessions", Some(&last), None)
        .await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        50,
        "max_sessions_per_user"
    );
    let rows: i64 = sqlx::query_scalar("select count(*) from api_tokens")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        rows <= 51,
        "ended sessions are cleared at the next login: {rows} rows"
    );
    let first = app
        .call(reqwest::Method::GET, "/api/v1/me", Some(&alice.token), None)
        .await;
    assert_eq!(
        first.status,
        StatusCode::UNAUTHORIZED,
        "the oldest session ended"
    );
    app.user("bob").await;
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    let redis = redis::Client::open(
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    )
    .unwrap();
    redis.get_multiplexed_async_connection().await.unwrap()
}

/// Seconds left until `addr` stops being a known address of `username` (-2: not known).
async fn known_for_secs(app: &TestServer, username: &str, addr: &str) -> i64 {
    let until: Option<f64> = redis::cmd("ZSCORE")
        .arg(format!("{}login-known:{username}", app.redis_prefix))
        .arg(addr)
        .query_async(&mut redis_conn().await)
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    until.map_or(-2, |until| until as i64 - now)
}

async fn forget_known(app: &TestServer, username: &str, addr: &str) {
    let _: i64 = redis::cmd("ZREM")
        .arg(format!("{}login-known:{username}", app.redis_prefix))
        .arg(addr)
        .query_async(&mut redis_conn().await)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_user_has_a_bounded_set_of_known_addresses_the_most_recent(db: PgPool) {
    // A probe used one account's sessions from ever new addresses: each became a key of its
    // own, kept 90 days (72,000 a day per account, with an IPv6 /48 to draw /64s from).
    let app = TestServer::spawn_with(db, |s| {
        s.trusted_proxies = vec!["127.0.0.1".into()];
        s.logins_per_hour_per_user = 1_000;
        s.max_sessions_per_user = 1_000;
    })
    .await;
    app.user("alice").await;
    for n in 0..100 {
        let addr = format!("2001:db8:0:{n:x}::1");
        let login = login_from(&app, &addr, "alice", "password-alice").await;
        assert_eq!(login.status, StatusCode::CREATED, "{login:?}");
    }
    let known: i64 = redis::cmd("ZCARD")
        .arg(format!("{}login-known:alice", app.redis_prefix))
        .query_async(&mut redis_conn().await)
        .await
        .unwrap();
    assert_eq!(known, 64);
    assert!(
        known_for_secs(&app, "alice", "2001:db8:0:63::/64").await > 0,
        "the newest"
    );
    assert_eq!(
        known_for_secs(&app, "alice", "2001:db8:0:0::/64").await,
        -2,
        "the oldest left"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_owners_address_stays_known_while_their_sessions_live_and_are_used_from_it(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.trusted_proxies = vec!["127.0.0.1".into()];
        s.login_failures_per_hour_per_username = 2;
        s.session_idle_days = 30;
        s.session_max_days = 90;
    })
    .await;
    app.user("alice").await;
    let home = "198.51.100.7";
    let owner = login_from(&app, home, "alice", "password-alice").await;
    assert_eq!(owner.status, StatusCode::CREATED);
    let token = owner.body["token"].as_str().unwrap().to_owned();

    let ninety_days = 90 * 24 * 3600;
    let left = known_for_secs(&app, "alice", home).await;
    assert!(
        left > ninety_days - 60,
        "the address must stay known as long as the session lasts; known for {left} s"
    );

    // Time passes: the marker lapses while the session, used from home, lives on.
    forget_known(&app, "alice", home).await;
    let used = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .header("x-forwarded-for", home)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), StatusCode::OK);
    assert!(known_for_secs(&app, "alice", home).await > ninety_days - 60);

    // A distributed guesser reaches the username's ceiling; the owner still gets in from home.
    for i in 1..=2 {
        let guess = login_from(&app, &format!("203.0.113.{i}"), "alice", "wrong guess").await;
        assert_eq!(guess.status, StatusCode::UNAUTHORIZED);
    }
    let third = login_from(&app, "203.0.113.3", "alice", "wrong guess").await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    let home_again = login_from(&app, home, "alice", "password-alice").await;
    assert_eq!(home_again.status, StatusCode::CREATED, "{home_again:?}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn successful_logins_from_one_address_are_limited_over_all_its_users(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.trusted_proxies = vec!["127.0.0.1".into()];
        s.logins_per_hour_per_addr = 4;
    })
    .await;
    for name in ["alice", "bob", "carol"] {
        app.user(name).await;
    }
    let busy = "203.0.113.9";
    for name in ["alice", "alice", "bob", "carol"] {
        let login = login_from(&app, busy, name, &format!("password-{name}")).await;
        assert_eq!(login.status, StatusCode::CREATED, "{login:?}");
    }
    let wrong = login_from(&app, busy, "bob", "a wrong guess").await;
    assert_eq!(
        wrong.status,
        StatusCode::TOO_MANY_REQUESTS,
        "refused before any hash"
    );

    let fifth = login_from(&app, busy, "carol", "password-carol").await;

    assert_eq!(fifth.status, StatusCode::TOO_MANY_REQUESTS, "{fifth:?}");
    let wait: u64 = fifth.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&wait), "an hour's window: {wait}");
    let elsewhere = login_from(&app, "198.51.100.7", "carol", "password-carol").await;
    assert_eq!(elsewhere.status, StatusCode::CREATED, "{elsewhere:?}");
}
