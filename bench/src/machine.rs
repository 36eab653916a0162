//! What the run was measured on: CPU, memory, kernel, and the PostgreSQL and Redis serving it.

use sqlx::PgPool;
use std::process::Command;

fn first_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

/// Machine and software facts as label/value pairs.
pub async fn describe(
    db: &PgPool,
    redis: &mut redis::aio::MultiplexedConnection,
) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, m)| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or("unknown".into(), |k| {
            format!("{:.1} GiB", k / 1024.0 / 1024.0)
        });
    let kernel = first_line(Command::new("uname").arg("-r")).unwrap_or_default();
    let pg: String = sqlx::query_scalar("select version()")
        .fetch_one(db)
        .await
        .unwrap_or_default();
    let mut pg_settings = Vec::new();
    for name in [
        "shared_buffers",
        "synchronous_commit",
        "fsync",
        "max_connections",
    ] {
        let v: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("show {name}")))
            .fetch_one(db)
            .await
            .unwrap_or_default();
        pg_settings.push(format!("{name}={v}"));
    }
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(redis)
        .await
        .unwrap_or_default();
    let redis_version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let wrk = first_line(Command::new("wrk").arg("-v")).unwrap_or_default();
    let rustc = first_line(Command::new("rustc").arg("--version")).unwrap_or_default();
    vec![
        ("CPU".into(), format!("{model}, {cores} cores")),
        ("Memory".into(), mem_gib),
        ("Kernel".into(), kernel),
        (
            "PostgreSQL".into(),
            pg.split(" on ").next().unwrap_or(&pg).to_owned(),
        ),
        ("PostgreSQL settings".into(), pg_settings.join(", ")),
        ("Redis".into(), redis_version),
        (
            "Load generator".into(),
            wrk.split(" Copyright").next().unwrap_or(&wrk).to_owned(),
        ),
        ("Rust".into(), rustc),
        ("Build".into(), "release profile, all binaries".into()),
    ]
}
