//! `convos-bench`: the benchmark suite behind `cargo xtask bench`.
//!
//! Every scenario measures the platform's release binaries against real PostgreSQL, Redis and
//! SMTP, and reports each figure beside a baseline measured in the same run on the same
//! machine (the machines are shared and noisy, so ratios mean more than absolute times). It
//! never fails on speed: it fails only when something does not work.

mod corpus;
mod machine;
mod platform;
mod procs;
mod report;
mod scenarios;
mod smtp;
mod statements;
mod stats;
mod wrk;

use anyhow::Context;
use clap::Parser;
use report::{Head, Report};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options; `cargo xtask bench` passes the first four.
#[derive(Parser)]
struct Args {
    /// Smaller corpus, shorter runs.
    #[arg(long)]
    quick: bool,
    /// Where the release binaries are.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Logs and scratch files.
    #[arg(long)]
    work_dir: PathBuf,
    /// How long the release build took, for the report.
    #[arg(long, default_value_t = 0)]
    build_secs: u64,
    /// Only these scenarios (comma-separated: send, email, inbox, thread, live, tui, search,
    /// sustained, engine).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Messages in the email scenario's backlog, instead of the scale's (each owes two jobs:
    /// `--backlog-messages 500000` drains a backlog of a million jobs).
    #[arg(long)]
    backlog_messages: Option<usize>,
    /// The report to write; defaults to BENCHMARKS.md (full) or target/convos-bench/ (quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The maintenance database URL (a role that may create databases).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The benchmark's own Redis (flushed between scenarios).
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    /// graphile-worker's runner script for the engine scenario (`bench/graphile/engine.mjs`);
    /// `cargo xtask bench` passes it when Node.js is present.
    #[arg(long, requires = "graphile_modules")]
    graphile_script: Option<PathBuf>,
    /// The `node_modules` folder graphile-worker is installed in.
    #[arg(long, requires = "graphile_script")]
    graphile_modules: Option<PathBuf>,
    /// Why graphile-worker cannot run here; the engine scenario reports its baseline skipped.
    #[arg(long, conflicts_with = "graphile_script")]
    graphile_skipped: Option<String>,
}

/// How big and how long: the full run and `--quick`.
#[derive(Clone, Debug)]
pub struct Scale {
    /// `full` or `quick`.
    pub mode: &'static str,
    /// The generated corpus.
    pub corpus: corpus::Shape,
    /// Seconds per measured HTTP load.
    pub http_secs: u64,
    /// Seconds per send load (API and baseline each).
    pub send_secs: u64,
    /// Idle event streams held open.
    pub live_clients: usize,
    /// Delivery latency samples, per configuration.
    pub live_samples: usize,
    /// Emails sent directly for the SMTP baseline.
    pub smtp_baseline: usize,
    /// Messages in the email backlog (each adds a delivery and an email job).
    pub backlog_messages: usize,
    /// Client starts per mailbox.
    pub tui_runs: usize,
    /// Frames rendered per figure.
    pub frames: usize,
    /// Seconds of each sustained load (full speed, then paced at 80% of it).
    pub sustained_secs: u64,
    /// Seconds of the sustained scenario's API-alone baseline (worker stopped).
    pub sustained_baseline_secs: u64,
    /// Idle live-lag samples of the sustained scenario.
    pub sustained_idle_samples: usize,
    /// Jobs per drain of the engine scenario (each engine, each concurrency).
    pub engine_jobs: usize,
    /// Drains of each engine per concurrency, taking turns; the report takes the medians.
    pub engine_rounds: usize,
    /// Single jobs timed from enqueue to start, per engine and mode.
    pub engine_latency_samples: usize,
}

impl Scale {
    fn full() -> Self {
        Self {
            mode: "full",
            corpus: corpus::Shape {
                filler_users: 2000,
                filler_threads: 195_000,
                mailboxes: vec![10, 1_000, 10_000, 100_000],
                long_thread: 10_000,
            },
            http_secs: 10,
            send_secs: 15,
            live_clients: 1000,
            live_samples: 300,
            smtp_baseline: 5_000,
            backlog_messages: 50_000,
            tui_runs: 7,
            frames: 500,
            sustained_secs: 20,
            sustained_baseline_secs: 6,
            sustained_idle_samples: 200,
            engine_jobs: 20_000,
            engine_rounds: 3,
            engine_latency_samples: 600,
        }
    }

    fn quick() -> Self {
        Self {
            mode: "quick",
            corpus: corpus::Shape {
                filler_users: 500,
                filler_threads: 18_000,
                mailboxes: vec![10, 1_000, 10_000],
                long_thread: 10_000,
            },
            http_secs: 3,
            send_secs: 4,
            live_clients: 1000,
            live_samples: 60,
            smtp_baseline: 1_000,
            backlog_messages: 5_000,
            tui_runs: 3,
            frames: 100,
            sustained_secs: 6,
            sustained_baseline_secs: 3,
            sustained_idle_samples: 50,
            engine_jobs: 3_000,
            engine_rounds: 1,
            engine_latency_samples: 100,
        }
    }

    fn describe(&self, corpus_messages: Option<i64>) -> Vec<String> {
        let mut lines = vec![];
        if let Some(m) = corpus_messages {
            lines.push(format!(
                "corpus: {m} messages; mailboxes of {:?} inbox threads; one {}-message thread",
                self.corpus.mailboxes, self.corpus.long_thread
            ));
        }
        lines.push(format!(
            "HTTP loads: {} s each (send: {} s each, API and baseline)",
            self.http_secs, self.send_secs
        ));
        lines.push(format!(
            "live delivery: {} idle streams, {} samples per configuration",
            self.live_clients, self.live_samples
        ));
        lines.push(format!(
            "email: {} direct SMTP sends for the baseline; backlog of {} messages ({} jobs)",
            self.smtp_baseline,
            self.backlog_messages,
            self.backlog_messages * 2
        ));
        lines.push(format!(
            "sustained: {} s at full speed, then {} s paced at 80% of it, each until drained \
             (API-alone baseline: {} s; {} idle live samples)",
            self.sustained_secs,
            self.sustained_secs,
            self.sustained_baseline_secs,
            self.sustained_idle_samples
        ));
        lines.push(format!(
            "engine: {} jobs per drain, per engine and concurrency, {} time(s) each; {} single \
             jobs for enqueue → start",
            self.engine_jobs, self.engine_rounds, self.engine_latency_samples
        ));
        lines
    }
}

/// What every scenario gets.
pub struct Ctx {
    /// Binaries, logs, Redis.
    pub env: platform::Env,
    /// Sizes and durations.
    pub scale: Scale,
    /// The maintenance database URL.
    pub admin_url: String,
}

impl Ctx {
    /// The URL of database `name` on the benchmark's PostgreSQL.
    pub fn database_url(&self, name: &str) -> String {
        let (base, _) = self
            .admin_url
            .rsplit_once('/')
            .unwrap_or((&self.admin_url, ""));
        format!("{base}/{name}")
    }

    /// The database holding the generated corpus of this mode (kept between runs).
    pub fn corpus_db(&self) -> String {
        format!("convos_bench_corpus_{}", self.scale.mode)
    }

    /// A pool on database `name`.
    pub async fn pool(&self, name: &str, size: u32) -> anyhow::Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(60))
            .connect(&self.database_url(name))
            .await?)
    }

    /// Drops and recreates database `name`, empty.
    pub async fn empty_database(&self, name: &str) -> anyhow::Result<()> {
        let admin = self.pool_on_admin().await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "drop database if exists {name} with (force)"
            )))
            .await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("create database {name}")))
            .await?;
        admin.close().await;
        Ok(())
    }

    /// Drops and recreates database `name` with the schema applied.
    pub async fn fresh_database(&self, name: &str) -> anyhow::Result<PgPool> {
        self.empty_database(name).await?;
        let db = self.pool(name, 24).await?;
        convos_store::MIGRATOR.run(&db).await?;
        Ok(db)
    }

    async fn pool_on_admin(&self) -> anyhow::Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.admin_url)
            .await?)
    }

    /// Empties the benchmark's Redis, so each scenario starts from the same state.
    pub async fn flush_redis(&self) -> anyhow::Result<()> {
        let mut redis = self.redis().await?;
        redis::cmd("FLUSHALL").query_async::<()>(&mut redis).await?;
        Ok(())
    }

    /// A Redis connection.
    pub async fn redis(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.env.redis_url.as_str())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }
}

const SCENARIOS: [&str; 9] = [
    "send",
    "inbox",
    "thread",
    "live",
    "email",
    "tui",
    "search",
    "sustained",
    "engine",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut scale = if args.quick {
        Scale::quick()
    } else {
        Scale::full()
    };
    if let Some(messages) = args.backlog_messages {
        scale.backlog_messages = messages.max(10);
    }
    for name in &args.only {
        anyhow::ensure!(
            SCENARIOS.contains(&name.as_str()),
            "unknown scenario {name:?}; choose from {}",
            SCENARIOS.join(", ")
        );
    }
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    std::fs::create_dir_all(&args.work_dir)?;
    let ctx = Ctx {
        env: platform::Env {
            bin_dir: args.bin_dir.clone(),
            work_dir: args.work_dir.clone(),
            redis_url: args.redis_url.clone(),
        },
        scale: scale.clone(),
        admin_url: args.database_url.clone(),
    };
    let started = Instant::now();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M").to_string();
    let admin = ctx.pool_on_admin().await?;
    let mut redis = ctx.redis().await?;
    let mut machine = machine::describe(&admin, &mut redis).await;
    machine.push((
        "Release build".into(),
        format!("{} s (before measuring)", args.build_secs),
    ));
    let mut report = Report::default();

    let mut corpus_messages = None;
    if ["inbox", "thread", "live", "tui", "search"]
        .iter()
        .any(|s| wanted(s))
    {
        println!("== corpus");
        corpus_messages = Some(ensure_corpus(&ctx).await?);
    }
    if wanted("send") {
        println!("== 1. send");
        scenarios::send::run(&ctx, &mut report)
            .await
            .context("send scenario")?;
    }
    if ["inbox", "thread", "live", "tui", "search"]
        .iter()
        .any(|s| wanted(s))
    {
        ctx.flush_redis().await?;
        let server = ctx
            .env
            .server(&ctx.database_url(&ctx.corpus_db()), &[])
            .await?;
        let db = ctx.pool(&ctx.corpus_db(), 4).await?;
        let tokens = scenarios::Tokens::issue(&db).await?;
        if wanted("inbox") {
            println!("== 2. inbox");
            scenarios::inbox::run(&ctx, &server, &db, &tokens, &mut report)
                .await
                .context("inbox scenario")?;
        }
        if wanted("thread") {
            println!("== 3. thread view");
            scenarios::thread::run(&ctx, &server, &db, &tokens, &mut report)
                .await
                .context("thread scenario")?;
        }
        if wanted("live") {
            println!("== 4. live delivery");
            scenarios::live::run(&ctx, &server, &tokens, &mut report)
                .await
                .context("live scenario")?;
        }
        if wanted("tui") {
            println!("== 6. terminal client");
            scenarios::tui::run(&ctx, &server, &db, &tokens, &mut report)
                .await
                .context("terminal client scenario")?;
        }
        if wanted("search") {
            println!("== 7. search");
            scenarios::search::run(&ctx, &server, &db, &tokens, &mut report)
                .await
                .context("search scenario")?;
        }
        server.proc.stop();
    }
    if wanted("email") {
        println!("== 5. email");
        scenarios::email::run(&ctx, &mut report)
            .await
            .context("email scenario")?;
    }
    if wanted("sustained") {
        println!("== 8. sustained");
        scenarios::sustained::run(&ctx, &mut report)
            .await
            .context("sustained scenario")?;
    }
    if wanted("engine") {
        println!("== 9. job engine");
        let graphile = match (&args.graphile_script, &args.graphile_modules) {
            (Some(script), Some(modules)) => scenarios::engine::Graphile::Installed {
                script: script.clone(),
                modules: modules.clone(),
            },
            _ => {
                scenarios::engine::Graphile::Skipped(args.graphile_skipped.clone().unwrap_or_else(
                    || "graphile-worker not installed (`cargo xtask bench` installs it)".into(),
                ))
            }
        };
        scenarios::engine::run(&ctx, &graphile, &mut report)
            .await
            .context("engine scenario")?;
    }

    let head = Head {
        mode: scale.mode,
        date,
        machine,
        scale: scale.describe(corpus_messages),
        took_secs: started.elapsed().as_secs(),
    };
    let out = args.out.clone().unwrap_or_else(|| {
        if args.quick || !args.only.is_empty() {
            PathBuf::from("target/convos-bench/BENCHMARKS.md")
        } else {
            PathBuf::from("BENCHMARKS.md")
        }
    });
    report::write(&out, &report::markdown(&head, &report))?;
    println!(
        "\nreport written to {} ({} s)",
        out.display(),
        head.took_secs
    );
    Ok(())
}

async fn ensure_corpus(ctx: &Ctx) -> anyhow::Result<i64> {
    let name = ctx.corpus_db();
    let name = name.as_str();
    let admin = ctx.pool_on_admin().await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(name)
            .fetch_one(&admin)
            .await?;
    if exists {
        let db = ctx.pool(name, 2).await?;
        let stale = corpus::is_stale(&db, &ctx.scale.corpus).await?;
        let migrated = convos_store::MIGRATOR.run(&db).await.is_ok();
        db.close().await;
        if !stale && migrated {
            let db = ctx.pool(name, 4).await?;
            return corpus::ensure(&db, &ctx.scale.corpus).await;
        }
    }
    let db = ctx.fresh_database(name).await?;
    corpus::ensure(&db, &ctx.scale.corpus).await
}
