//! The worker binary starts against real PostgreSQL and Redis and stops cleanly on SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_worker_starts_reports_ready_and_stops_on_sigterm() {
    let database_url =
        std::env::var("DATABASE_URL").expect("DATABASE_URL (run via cargo xtask test)");
    let redis_url = convos_testkit::redis_url();
    let mut child = Command::new(env!("CARGO_BIN_EXE_convos-worker"))
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("worker starts");
    let mut stdout = child.stdout.take().unwrap();
    // Read until the ready line, in a thread so a hung worker cannot hang the test.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = tx.send(seen.clone());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("worker printed something");
        if seen.contains("worker ready") {
            break;
        }
        assert!(Instant::now() < deadline, "no ready line: {seen}");
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "worker did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn the_worker_fails_loudly_when_postgres_is_unreachable() {
    let port = convos_testkit::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_convos-worker"))
        .env(
            "DATABASE_URL",
            format!("postgres://nobody@127.0.0.1:{port}/none"),
        )
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not connect to postgres"));
}

#[test]
fn a_refused_database_connection_names_where_and_why_but_not_the_password() {
    let port = convos_testkit::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_convos-worker"))
        .arg("queues")
        .env(
            "DATABASE_URL",
            format!("postgres://nobody:hunter2@127.0.0.1:{port}/none"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "could not connect to postgres at 127.0.0.1:{port}/none"
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "the cause: {err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn the_worker_refuses_to_run_in_production_with_the_development_secret() {
    let run = |secret: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_convos-worker"));
        cmd.env("CONVOS_ENV", "production")
            .env("CONVOS_PUBLIC_URL", "https://convos.example")
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .env("REDIS_URL", "redis://127.0.0.1:1")
            .env_remove("CONVOS_SECRET_KEY");
        if let Some(secret) = secret {
            cmd.env("CONVOS_SECRET_KEY", secret);
        }
        cmd.output().unwrap()
    };

    let default = run(None);
    let short = run(Some("€€€€€€€€€€€€"));
    let real = run(Some("a-real-secret-that-is-long-enough-0123456789"));

    for refused in [default, short] {
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains("CONVOS_SECRET_KEY"), "{err}");
    }
    // With a real secret it gets past the checks and fails only on the missing database.
    assert!(String::from_utf8_lossy(&real.stderr).contains("could not connect to postgres"));
}

#[test]
fn the_worker_refuses_ceilings_under_one() {
    for (name, value) in [
        ("CONVOS_JOBS_IN_FLIGHT", "0"),
        ("CONVOS_QUEUE_CEILING", "-5"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_convos-worker"))
            .env(name, value)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .env("REDIS_URL", "redis://127.0.0.1:1")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name), "{name}={value}: {err}");
        assert!(
            !err.contains("could not connect"),
            "refused before connecting: {err}"
        );
    }
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn queues_prints_the_board_for_scripts_and_people(db: sqlx::PgPool) {
    sqlx::query(
        "insert into jobs (id, kind, key, payload, state, max_attempts, attempts, last_error) \
         values (gen_random_uuid(), 'notify_email', 'k1', '{}', 'dead', 3, 3, 'smtp: refused')",
    )
    .execute(&db)
    .await
    .unwrap();
    let url = convos_testkit::database_url(&db).await;
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_convos-worker"))
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let json = run(&["queues", "--json"]);
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let board: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let notify = board["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "notify_email")
        .unwrap()
        .clone();
    assert_eq!(notify["dead"], 1);
    let table = run(&["queues"]);
    let text = String::from_utf8_lossy(&table.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("notify_email"))
        .expect("a notify_email line");
    assert_eq!(
        line.split_whitespace().nth(9),
        Some("1"),
        "the DEAD column: {line}"
    );
    // A reader that has gone (`| head`, `| true`): it panicked on the broken pipe, exit 101.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = Command::new(env!("CARGO_BIN_EXE_convos-worker"))
        .arg("queues")
        .env("DATABASE_URL", &url)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(
        closed.status.success(),
        "{:?}: {}",
        closed.status,
        String::from_utf8_lossy(&closed.stderr)
    );
}
