//! Scenario 9, engine: Convos' job engine (ledger, relay, Redis, worker) beside graphile-worker
//! on the same PostgreSQL in the same run: jobs per second of a backlog drained at concurrency
//! 16 and 64, and enqueue → start latency of single jobs handed to an idle worker.
//!
//! graphile-worker runs through `bench/graphile/engine.mjs` (our script; the npm package is
//! installed by `cargo xtask bench` under `target/convos-bench/graphile/`). Without Node.js the
//! Convos figures are still measured and the report says the baseline was skipped.

use crate::Ctx;
use crate::procs::{CpuShare, Proc};
use crate::report::{Ratio, Report, Row, Target};
use crate::scenarios::db_now;
use crate::statements::{self, Profile};
use crate::stats::Measure;
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use convos_core::events::Event;
use convos_core::jobs::{DeliverJob, JobKind, wake_channel};
use convos_core::{MessageId, ThreadId, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const SCENARIO: &str = "9. Job engine";
const DB: &str = "convos_bench_engine";
const GRAPHILE_DB: &str = "convos_bench_graphile";
/// PostgreSQL connections each engine may open: enough that the pool is not the limit.
const POOL: u32 = 20;
/// The concurrencies compared.
const CONCURRENCIES: [usize; 2] = [16, 64];
/// The concurrency of the latency runs and of graphile-worker's default-mode baseline.
const IDLE_CONCURRENCY: usize = 16;
/// Recipients of the Convos `deliver` jobs (one each).
const USERS: i32 = 200;
/// The Redis key prefix the worker runs with (its default).
const PREFIX: &str = "convos:";
/// The longest wait for a drain, or for a graphile-worker run.
const CAP: Duration = Duration::from_secs(900);
/// Lines of a failed Node.js run's standard error shown in the error.
const STDERR_LINES: usize = 40;

/// graphile-worker, when this machine can run it.
pub enum Graphile {
    /// `engine.mjs` and the `node_modules` folder holding graphile-worker.
    Installed {
        /// bench/graphile/engine.mjs.
        script: PathBuf,
        /// The folder named `node_modules` the package was installed into.
        modules: PathBuf,
    },
    /// Why not, e.g. "Node.js not found".
    Skipped(String),
}

/// Runs the scenario and adds its rows and notes to `report`.
pub async fn run(ctx: &Ctx, graphile: &Graphile, report: &mut Report) -> anyhow::Result<()> {
    let jobs = ctx.scale.engine_jobs;
    let samples = ctx.scale.engine_latency_samples;
    let node = match graphile {
        Graphile::Installed { script, modules } => {
            let node = Node::find(ctx, script, modules)?;
            report.note(SCENARIO, node.describe());
            Some(node)
        }
        Graphile::Skipped(why) => {
            report.note(SCENARIO, format!("graphile-worker: skipped: {why}"));
            None
        }
    };
    report.note(
        SCENARIO,
        format!(
            "drains: {jobs} jobs each, on a database of their own per engine and run. Convos: \
             `deliver` jobs of one `message.created` event to one of {USERS} users each (the \
             Redis Lua append and PUBLISH really run), and the same jobs addressed to nobody \
             (no-op jobs: relay, ticket, take and outcome run, no append), written through \
             `jobs::enqueue` with the deliver queue paused; timed from the resume (and a wake-up on the relay's channel) \
             to the last `finished_at`, both on PostgreSQL's clock; the worker runs with \
             CONVOS_WORKER_CONCURRENCY = 16 or 64 and CONVOS_DB_MAX_CONNECTIONS = {POOL} in \
             both, so its pool is not the limit"
        ),
    );
    if node.is_some() {
        report.note(
            SCENARIO,
            format!(
                "graphile-worker drains (it has no pause): no-op tasks added in one `addJobs` \
                 call in front of an idle runner, timed from that commit to the last completion \
                 committed; maxPoolSize {POOL}; batched = `localQueue: {{ size: 500 }}`, \
                 `completeJobBatchDelay: 0`, `failJobBatchDelay: 0`; default = as shipped. Both \
                 engines log one line per job to a file, as they ship: Convos' JSON `job \
                 finished` (worker.log), graphile-worker's `Completed task` (graphile.log, \
                 through a file logger in bench/graphile/engine.mjs)"
            ),
        );
    }

    let rounds = ctx.scale.engine_rounds.max(1);
    let mut drains = Vec::new();
    let mut engine_alone = Vec::new();
    let mut spread = Vec::new();
    for concurrency in CONCURRENCIES {
        let (mut convos, mut no_op, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            println!("   Convos, concurrency {concurrency}, round {round} of {rounds}");
            convos.push(
                convos_drain(ctx, concurrency, jobs, Work::Deliver)
                    .await
                    .with_context(|| format!("Convos drain at concurrency {concurrency}"))?,
            );
            println!("   Convos no-op jobs, concurrency {concurrency}, round {round} of {rounds}");
            no_op.push(
                convos_drain(ctx, concurrency, jobs, Work::Nothing)
                    .await
                    .with_context(|| format!("Convos no-op drain at concurrency {concurrency}"))?,
            );
            if let Some(node) = &node {
                println!(
                    "   graphile-worker batched, concurrency {concurrency}, round {round} of {rounds}"
                );
                baseline.push(node.drain(ctx, "batched", concurrency, jobs).await?);
            }
        }
        spread.push(format!(
            "concurrency {concurrency}, jobs/s round by round: Convos `deliver` {}; no-op {}{}",
            rates(&convos),
            rates(&no_op),
            if baseline.is_empty() {
                String::new()
            } else {
                format!("; graphile-worker batched {}", rates(&baseline))
            }
        ));
        let convos = median(convos).context("no Convos drain ran")?;
        let no_op = median(no_op).context("no Convos no-op drain ran")?;
        drains.push((concurrency, convos, median(baseline)));
        engine_alone.push((concurrency, no_op));
    }
    if rounds > 1 {
        report.note(
            SCENARIO,
            format!(
                "each drain ran {rounds} times, the engines taking turns (Convos, its no-op \
                 jobs, graphile-worker, then again), and each figure is its series' median run \
                 (one drain each moved the ratio 0.54–0.94 across runs of one build: the \
                 machine's speed moves by the minute); {}",
                spread.join("; ")
            ),
        );
    }
    let default_mode = match &node {
        Some(node) => {
            println!("   graphile-worker default, concurrency {IDLE_CONCURRENCY}");
            Some(node.drain(ctx, "default", IDLE_CONCURRENCY, jobs).await?)
        }
        None => None,
    };
    for (concurrency, convos, baseline) in &drains {
        let ratio = baseline
            .as_ref()
            .and_then(|b| Ratio::of("Convos/graphile", convos.rate.rate, b.rate.rate));
        report.row(Row {
            scenario: SCENARIO,
            what: format!("deliver jobs drained, concurrency {concurrency}"),
            measured: convos.rate.clone(),
            baseline: batched(*concurrency, baseline.as_ref()),
            target: ratio.as_ref().map(|r| Target {
                goal: format!(
                    "at concurrency {concurrency}, at least graphile-worker's batched mode \
                     (same PostgreSQL, same run)"
                ),
                met: r.value >= 1.0,
            }),
            ratio,
        });
    }
    // Like for like: both engines running jobs that do nothing, so what remains is the engine.
    // No target here: the issue holds the deliver jobs to it (above).
    for ((concurrency, no_op), (_, _, baseline)) in engine_alone.iter().zip(&drains) {
        report.row(Row {
            scenario: SCENARIO,
            what: format!("no-op jobs drained (deliver to nobody), concurrency {concurrency}"),
            measured: no_op.rate.clone(),
            baseline: batched(*concurrency, baseline.as_ref()),
            ratio: baseline
                .as_ref()
                .and_then(|b| Ratio::of("Convos/graphile", no_op.rate.rate, b.rate.rate)),
            target: None,
        });
    }
    if let (Some(default_mode), Some((_, convos, _))) = (&default_mode, drains.first()) {
        report.row(Row {
            scenario: SCENARIO,
            what: format!("deliver jobs drained, concurrency {IDLE_CONCURRENCY}"),
            measured: convos.rate.clone(),
            baseline: Some((
                format!("graphile-worker default mode, concurrency {IDLE_CONCURRENCY}, no-op jobs"),
                default_mode.rate.clone(),
            )),
            ratio: Ratio::of("Convos/graphile", convos.rate.rate, default_mode.rate.rate),
            target: None,
        });
    }

    println!("   enqueue → start, Convos");
    let convos_lag = convos_latency(ctx, samples)
        .await
        .context("Convos enqueue → start latency")?;
    let mut lag_baselines = Vec::new();
    if let Some(node) = &node {
        for mode in ["batched", "default"] {
            println!("   enqueue → start, graphile-worker {mode}");
            lag_baselines.push((mode, node.latency(ctx, mode, samples).await?));
        }
    }
    let convos_lag = Measure::of(&convos_lag, None, "");
    if lag_baselines.is_empty() {
        report.row(latency_row(&convos_lag, None));
    }
    for (mode, lags) in &lag_baselines {
        report.row(latency_row(
            &convos_lag,
            Some((mode, Measure::of(lags, None, ""))),
        ));
    }
    report.note(
        SCENARIO,
        format!(
            "enqueue → start: {samples} single jobs, one at a time 10-30 ms apart, each to an \
             idle worker at concurrency {IDLE_CONCURRENCY}. Convos: `jobs.created_at` (the \
             insert's start) to the attempt's `started_at` (the statement marking it running), \
             both PostgreSQL's clock, with a PUBLISH on the relay's wake channel after each \
             commit as the server does{}",
            if node.is_some() {
                ". graphile-worker: `performance.now()` just before each `addJob` call, carried \
                 in the payload, to `performance.now()` as the task starts, in the one Node.js \
                 process that adds and runs the jobs"
            } else {
                ""
            }
        ),
    );
    for ((concurrency, convos, baseline), (_, no_op)) in drains.iter().zip(&engine_alone) {
        report.note(
            SCENARIO,
            format!("Convos drain, concurrency {concurrency}: {}", convos.cpu),
        );
        report.note(
            SCENARIO,
            format!(
                "Convos no-op drain, concurrency {concurrency}: {}",
                no_op.cpu
            ),
        );
        if let Some(profile) = &convos.statements {
            report.note(
                SCENARIO,
                format!("Convos drain, concurrency {concurrency}, PostgreSQL's time: {profile}"),
            );
        }
        if let Some(b) = baseline {
            report.note(
                SCENARIO,
                format!(
                    "graphile-worker batched drain, concurrency {concurrency}: {}",
                    b.cpu
                ),
            );
        }
    }
    if let Some(d) = &default_mode {
        report.note(
            SCENARIO,
            format!(
                "graphile-worker default-mode drain, concurrency {IDLE_CONCURRENCY}: {}",
                d.cpu
            ),
        );
    }
    Ok(())
}

/// graphile-worker's batched drain at `concurrency`, as the baseline of a drain row.
fn batched(concurrency: usize, drain: Option<&Drained>) -> Option<(String, Measure)> {
    drain.map(|b| {
        (
            format!("graphile-worker batched, concurrency {concurrency}, no-op jobs"),
            b.rate.clone(),
        )
    })
}

/// The latency row, against graphile-worker in `mode` when it ran. Only the batched mode is
/// held to the target, as in the issue.
fn latency_row(convos: &Measure, baseline: Option<(&str, Measure)>) -> Row {
    let ratio = baseline
        .as_ref()
        .and_then(|(_, b)| Ratio::of("p99 Convos/graphile", convos.p99_ms, b.p99_ms));
    let targeted = baseline
        .as_ref()
        .is_some_and(|(mode, _)| *mode == "batched");
    Row {
        scenario: SCENARIO,
        what: format!("enqueue → start, idle worker, concurrency {IDLE_CONCURRENCY}"),
        measured: convos.clone(),
        target: ratio.as_ref().filter(|_| targeted).map(|r| Target {
            goal: "enqueue → start p99 no worse than graphile-worker's batched mode".into(),
            met: r.value <= 1.0,
        }),
        baseline: baseline.map(|(mode, b)| {
            let mode = if mode == "batched" {
                "batched"
            } else {
                "default mode"
            };
            (format!("graphile-worker {mode}, no-op jobs"), b)
        }),
        ratio,
    }
}

/// The median of `drains` by rate (the faster of the middle two of an even number); `None`
/// if there are none.
fn median(mut drains: Vec<Drained>) -> Option<Drained> {
    drains.sort_by(|a, b| {
        let rate = |d: &Drained| d.rate.rate.unwrap_or(0.0);
        rate(a).total_cmp(&rate(b))
    });
    let middle = drains.len() / 2;
    drains.into_iter().nth(middle)
}

/// The rates of `drains` in jobs/s, in the order they ran: "14215 / 16538 / 15100".
fn rates(drains: &[Drained]) -> String {
    drains
        .iter()
        .map(|d| format!("{:.0}", d.rate.rate.unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// One timed drain: jobs per second (with the worker's peak memory) and where the CPU went.
struct Drained {
    rate: Measure,
    cpu: String,
    /// Where PostgreSQL's time went (Convos' drains only).
    statements: Option<Profile>,
}

/// A fresh database with the schema and [`USERS`] users; returns it and the users' ids.
async fn convos_database(ctx: &Ctx) -> anyhow::Result<(PgPool, Vec<UserId>)> {
    ctx.flush_redis().await?;
    let db = ctx.fresh_database(DB).await?;
    sqlx::query(
        "insert into users (id, username, email, display_name, password_hash, email_verified_at) \
         select gen_random_uuid(), 'engine' || lpad(g::text, 4, '0'), \
                'engine' || g || '@bench.example', 'Engine ' || g, 'x', now() \
         from generate_series(1, $1) g",
    )
    .bind(USERS)
    .execute(&db)
    .await?;
    let users = sqlx::query_scalar::<_, uuid::Uuid>("select id from users order by username")
        .fetch_all(&db)
        .await?
        .into_iter()
        .map(UserId::from)
        .collect();
    Ok((db, users))
}

/// The release worker at `concurrency`, with [`POOL`] connections, once its relay has made a
/// pass (its heartbeat is in the fresh database).
async fn convos_worker(ctx: &Ctx, db: &PgPool, concurrency: usize) -> anyhow::Result<Proc> {
    let mut worker = ctx.env.worker(
        &ctx.database_url(DB),
        0,
        &[
            ("CONVOS_WORKER_CONCURRENCY", concurrency.to_string()),
            ("CONVOS_DB_MAX_CONNECTIONS", POOL.to_string()),
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        worker.check_running()?;
        let beat: bool = sqlx::query_scalar("select exists (select 1 from worker_heartbeats)")
            .fetch_one(db)
            .await?;
        if beat {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the worker made no relay pass within 60 s; see worker.log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its job workers start polling Redis beside the relay; give them a moment to be idle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(worker)
}

/// What the drained jobs do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// Append one event to one user's stream and announce it (a `deliver` job as sent).
    Deliver,
    /// Nothing: a `deliver` job addressed to nobody, which goes through the whole engine
    /// (dispatch, ticket, take, outcome) and appends nothing.
    Nothing,
}

/// The `deliver` job payload of one new message to `user`, or to nobody.
fn deliver_payload(user: UserId, work: Work) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(DeliverJob {
        event: Event::MessageCreated {
            message_id: MessageId::generate(),
            thread_id: ThreadId::generate(),
        },
        users: match work {
            Work::Deliver => vec![user],
            Work::Nothing => Vec::new(),
        },
    })?)
}

/// Tells the relays that jobs were committed, as the server does.
async fn wake(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<()> {
    redis::cmd("PUBLISH")
        .arg(wake_channel(PREFIX))
        .arg("bench")
        .query_async::<i64>(redis)
        .await
        .context("could not publish the wake-up")?;
    Ok(())
}

/// Waits until no `deliver` job is waiting or in flight (two probes of the partial indexes,
/// not a count over the ledger, which would cost PostgreSQL time that is being measured).
async fn until_drained(db: &PgPool, worker: &mut Proc) -> anyhow::Result<()> {
    let deadline = Instant::now() + CAP;
    loop {
        let owed: bool = sqlx::query_scalar(
            "select exists (select 1 from jobs where kind = 'deliver' \
                              and state in ('pending', 'retry')) \
                 or exists (select 1 from jobs where state in ('dispatched', 'running') \
                              and kind = 'deliver')",
        )
        .fetch_one(db)
        .await?;
        if !owed {
            return Ok(());
        }
        worker.check_running()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "deliver jobs were still owed after {} s",
            CAP.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fails unless exactly `expected` `deliver` jobs exist and all are done.
async fn all_done(db: &PgPool, expected: usize) -> anyhow::Result<()> {
    let states: Vec<(String, i64)> = sqlx::query_as(
        "select state, count(*) from jobs where kind = 'deliver' group by state order by state",
    )
    .fetch_all(db)
    .await?;
    let done = states
        .iter()
        .find(|(s, _)| s == "done")
        .map_or(0, |(_, n)| *n);
    let total: i64 = states.iter().map(|(_, n)| n).sum();
    anyhow::ensure!(
        done == expected as i64 && total == done,
        "expected {expected} deliver jobs done, found {states:?}; see worker.log"
    );
    Ok(())
}

/// `jobs` deliver jobs doing `work`, written with the queue paused, then drained by a worker at
/// `concurrency` from the resume.
async fn convos_drain(
    ctx: &Ctx,
    concurrency: usize,
    jobs: usize,
    work: Work,
) -> anyhow::Result<Drained> {
    let (db, users) = convos_database(ctx).await?;
    let actor = users[0].as_uuid();
    convos_store::ops::set_paused(&db, JobKind::Deliver, true, actor)
        .await?
        .without_wake();
    let mut tx = db.begin().await?;
    for i in 0..jobs {
        convos_store::jobs::enqueue(
            &mut tx,
            JobKind::Deliver,
            &format!("engine:backlog:{i}"),
            None,
            deliver_payload(users[i % users.len()], work)?,
            Duration::ZERO,
        )
        .await?;
    }
    tx.commit().await?;
    let mut worker = convos_worker(ctx, &db, concurrency).await?;
    let mut redis = ctx.redis().await?;
    statements::reset(&db).await?;
    let share = CpuShare::start();
    let from = db_now(&db).await?;
    convos_store::ops::set_paused(&db, JobKind::Deliver, false, actor)
        .await?
        .without_wake();
    wake(&mut redis).await?;
    until_drained(&db, &mut worker).await?;
    let cpu = share.finish();
    let statements = statements::top(&db, 6).await?;
    all_done(&db, jobs).await?;
    let to: DateTime<Utc> =
        sqlx::query_scalar("select max(finished_at) from jobs where kind = 'deliver'")
            .fetch_one(&db)
            .await?;
    let peak = worker.peak_mib();
    worker.stop();
    db.close().await;
    let took = (to - from)
        .to_std()
        .context("the drain ended before it began")?;
    Ok(Drained {
        rate: Measure::rate(jobs as u64, took, "jobs/s").with_peak(peak),
        cpu,
        statements: Some(statements),
    })
}

/// Enqueue → start of `samples` single deliver jobs handed to an idle worker.
async fn convos_latency(ctx: &Ctx, samples: usize) -> anyhow::Result<Vec<Duration>> {
    let (db, users) = convos_database(ctx).await?;
    let mut worker = convos_worker(ctx, &db, IDLE_CONCURRENCY).await?;
    let mut redis = ctx.redis().await?;
    let mut conn = db.acquire().await?;
    let mut rng = StdRng::seed_from_u64(9);
    for i in 0..samples {
        convos_store::jobs::enqueue(
            &mut conn,
            JobKind::Deliver,
            &format!("engine:latency:{i}"),
            None,
            deliver_payload(users[i % users.len()], Work::Deliver)?,
            Duration::ZERO,
        )
        .await?;
        wake(&mut redis).await?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(10..=30))).await;
    }
    drop(conn);
    until_drained(&db, &mut worker).await?;
    all_done(&db, samples).await?;
    let ms: Vec<f64> = sqlx::query_scalar(
        "select (extract(epoch from a.started_at - j.created_at) * 1000)::float8 \
         from jobs j join job_history a on a.job_id = j.id and a.attempt = 1 \
         where j.kind = 'deliver'",
    )
    .fetch_all(&db)
    .await?;
    worker.stop();
    db.close().await;
    anyhow::ensure!(
        ms.len() == samples,
        "{} attempts recorded for {samples} jobs",
        ms.len()
    );
    Ok(ms
        .into_iter()
        .map(|m| Duration::from_secs_f64(m.max(0.0) / 1e3))
        .collect())
}

/// Node.js with graphile-worker installed: runs `engine.mjs` once per measurement.
struct Node {
    script: PathBuf,
    modules: PathBuf,
    log: PathBuf,
    node_version: String,
    graphile_version: String,
    engines: Option<String>,
}

impl Node {
    /// Checks that the script and the package are there and reads their versions.
    fn find(ctx: &Ctx, script: &Path, modules: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(script.is_file(), "no graphile-worker script at {script:?}");
        let manifest = modules.join("graphile-worker").join("package.json");
        let package: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&manifest)
                .with_context(|| format!("graphile-worker is not installed at {modules:?}"))?,
        )
        .with_context(|| format!("could not read {manifest:?}"))?;
        let out = std::process::Command::new("node")
            .arg("--version")
            .output()
            .context("could not run node --version")?;
        anyhow::ensure!(out.status.success(), "node --version failed");
        Ok(Self {
            script: script.to_owned(),
            modules: modules.to_owned(),
            log: ctx.env.work_dir.join("graphile.log"),
            node_version: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            graphile_version: package["version"].as_str().unwrap_or("?").to_owned(),
            engines: package["engines"]["node"].as_str().map(str::to_owned),
        })
    }

    /// The versions, for a note.
    fn describe(&self) -> String {
        let engines = self
            .engines
            .as_ref()
            .map(|e| format!(" (the package declares Node.js {e})"))
            .unwrap_or_default();
        format!(
            "graphile-worker {} on Node.js {}{engines}, installed by npm from the lockfile in \
             bench/graphile/, on the bench's PostgreSQL in a database of its own",
            self.graphile_version, self.node_version
        )
    }

    /// A drain of `jobs` no-op jobs in `mode` at `concurrency`.
    async fn drain(
        &self,
        ctx: &Ctx,
        mode: &str,
        concurrency: usize,
        jobs: usize,
    ) -> anyhow::Result<Drained> {
        let (answer, cpu) = self
            .run(
                ctx,
                "throughput",
                mode,
                concurrency,
                &["--jobs", &jobs.to_string()],
            )
            .await?;
        let field = |name: &str| answer[name].as_f64();
        let (Some(ran), Some(secs)) = (field("ran"), field("secs")) else {
            bail!("graphile-worker's {mode} drain answered without its figures: {answer}");
        };
        anyhow::ensure!(
            ran as usize == jobs && secs > 0.0,
            "graphile-worker's {mode} drain ran {ran} of {jobs} jobs in {secs} s"
        );
        Ok(Drained {
            rate: Measure::rate(jobs as u64, Duration::from_secs_f64(secs), "jobs/s")
                .with_peak(field("peak_kib").map(|k| k / 1024.0)),
            cpu: cpu.unwrap_or_else(|| "not measured".into()),
            statements: None,
        })
    }

    /// Enqueue → start of `samples` single no-op jobs in `mode`.
    async fn latency(
        &self,
        ctx: &Ctx,
        mode: &str,
        samples: usize,
    ) -> anyhow::Result<Vec<Duration>> {
        let (answer, _) = self
            .run(
                ctx,
                "latency",
                mode,
                IDLE_CONCURRENCY,
                &["--samples", &samples.to_string()],
            )
            .await?;
        let ms: Vec<f64> = answer["samples"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        anyhow::ensure!(
            ms.len() == samples,
            "graphile-worker's {mode} latency run answered {} of {samples} samples",
            ms.len()
        );
        Ok(ms
            .into_iter()
            .map(|m| Duration::from_secs_f64(m.max(0.0) / 1e3))
            .collect())
    }

    /// Runs `engine.mjs what` on a fresh database; returns its result line and the CPU share of
    /// its timed window (from its `started` line to its result). Fails with the script's
    /// standard error when it exits unsuccessfully or answers no result.
    async fn run(
        &self,
        ctx: &Ctx,
        what: &str,
        mode: &str,
        concurrency: usize,
        extra: &[&str],
    ) -> anyhow::Result<(serde_json::Value, Option<String>)> {
        // Empty: graphile-worker installs its own schema.
        ctx.empty_database(GRAPHILE_DB).await?;
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(&self.script)
            .arg(what)
            .arg("--database-url")
            .arg(ctx.database_url(GRAPHILE_DB))
            .arg("--modules")
            .arg(&self.modules)
            .arg("--log")
            .arg(&self.log)
            .args(["--mode", mode])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--pool", &POOL.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("could not start node")?;
        let mut stderr = child.stderr.take().context("no stderr pipe")?;
        let errors = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut share = None;
        let mut cpu = None;
        let mut result = None;
        let mut other = Vec::new();
        let read = async {
            while let Some(line) = lines.next_line().await? {
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) if v["event"] == "started" => share = Some(CpuShare::start()),
                    Ok(v) if v["event"] == "result" => {
                        cpu = share.take().map(|s: CpuShare| s.finish());
                        result = Some(v);
                    }
                    _ => other.push(line),
                }
            }
            anyhow::Ok(())
        };
        let read = tokio::time::timeout(CAP, read).await;
        if read.is_err() {
            let _ = child.start_kill();
        }
        let status = child.wait().await?;
        let errors = errors.await.unwrap_or_default();
        let failure = match (read, &result) {
            (Err(_), _) => Some(format!("did not finish within {} s", CAP.as_secs())),
            (Ok(Err(e)), _) => Some(format!("could not be read: {e}")),
            _ if !status.success() => Some(format!("failed with {status}")),
            (_, None) => Some("answered no result".into()),
            _ => None,
        };
        if let Some(failure) = failure {
            let tail: Vec<&str> = errors.lines().collect();
            let tail = tail[tail.len().saturating_sub(STDERR_LINES)..].join("\n");
            bail!(
                "graphile-worker's {what} run ({mode}, concurrency {concurrency}) {failure}; \
                 its standard error:\n{tail}\n{}(graphile-worker's log: {})",
                if other.is_empty() {
                    String::new()
                } else {
                    format!("its other output:\n{}\n", other.join("\n"))
                },
                self.log.display()
            );
        }
        Ok((result.unwrap_or_default(), cpu))
    }
}
