//! The `convos-server` binary: sub-commands, production safety and graceful shutdown.

use convos_testkit::{Client, database_url_of, free_port, open_stream, redis_url};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_convos-server");

fn server(url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .env("REDIS_URL", redis_url())
        .env(
            "CONVOS_REDIS_PREFIX",
            format!("test:cli:{}:", std::process::id()),
        );
    cmd
}

#[sqlx::test(migrations = false)]
async fn admin_create_user_makes_an_admin_without_sql(_: PgPoolOptions, opts: PgConnectOptions) {
    let url = database_url_of(&opts);
    let out = server(&url)
        .args([
            "admin",
            "create-user",
            "--username",
            "Root",
            "--email",
            "root@example.com",
            "--password-env",
            "ROOT_PW",
            "--admin",
        ])
        .env("ROOT_PW", "a strong password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin user root"));
    let db = PgPool::connect(&url).await.unwrap();
    let (username, is_admin): (String, bool) =
        sqlx::query_as("select username, is_admin from users")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((username.as_str(), is_admin), ("root", true));

    let bad = server(&url)
        .args([
            "admin",
            "create-user",
            "--username",
            "x",
            "--email",
            "nope",
            "--password",
            "short",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("username") && err.contains("email") && err.contains("password"),
        "{err}"
    );
}

#[sqlx::test(migrations = false)]
async fn production_refuses_to_start_with_the_default_secret(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let out = server(&database_url_of(&opts))
        .env("CONVOS_ENV", "production")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CONVOS_SECRET_KEY"),
        "names the missing setting: {err}"
    );
}

#[sqlx::test(migrations = false)]
async fn serve_migrates_answers_and_stops_cleanly_on_sigterm(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let port = free_port();
    let url = database_url_of(&opts);
    let mut child = server(&url)
        .env("CONVOS_ADDR", format!("127.0.0.1:{port}"))
        .env("CONVOS_ENV", "production")
        .env("CONVOS_SECRET_KEY", "x".repeat(40))
        .env("CONVOS_PUBLIC_URL", "https://convos.example")
        .env("CONVOS_SERVER_METRICS_ADDR", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && res.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An open event stream must not hold shutdown up.
    let api = Client::new(
        format!("http://127.0.0.1:{port}"),
        PgPool::connect(&url).await.unwrap(),
    );
    let sse = api.unverified_user("sse").await;
    let stream = open_stream(&api, &sse).await;
    let traced = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(traced.status(), 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit}");
    drop(stream);
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut logs).unwrap();
    let first = logs.lines().next().unwrap_or_default();
    assert!(first.starts_with('{'), "production logs are JSON: {first}");
    assert!(logs.contains("shutting down"), "{logs}");
    let line = logs
        .lines()
        .find(|l| l.contains("trace-abc-123"))
        .expect("the request is logged");
    assert!(line.contains("/healthz") && line.contains("200"), "{line}");
}
