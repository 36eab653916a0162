//! Scenario 5, email: the worker's emails per second into a local SMTP sink, against lettre
//! sending the same way straight to that sink; and a drain of a backlog of 100,000 jobs,
//! comparing the first and last 10% of it, with Redis memory before, during and after, and the
//! queue board's read time while it drains.

use crate::Ctx;
use crate::procs::CpuShare;
use crate::report::{Ratio, Report, Row, Target};
use crate::scenarios::jobs_owed;
use crate::smtp::Sink;
use crate::stats::Measure;
use chrono::{DateTime, Utc};
use convos_core::UserId;
use convos_core::jobs::JobKind;
use lettre::message::MultiPart;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::{Duration, Instant};

const SCENARIO: &str = "5. Email";
const DB: &str = "convos_bench_email";
/// The worker's default concurrency (`CONVOS_WORKER_CONCURRENCY`); the baseline uses the same.
const CONCURRENCY: usize = 64;
const USERS: i32 = 200;

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    ctx.flush_redis().await?;
    let (sink, port) = Sink::serve()?;
    let baseline = smtp_baseline(port, ctx.scale.smtp_baseline).await?;
    let sent_directly = sink.accepted();

    let db = ctx.fresh_database(DB).await?;
    sqlx::query(
        "insert into users (id, username, email, display_name, password_hash, email_verified_at) \
         select gen_random_uuid(), 'mail' || lpad(g::text, 4, '0'), 'mail' || g || '@bench.example', \
                'Mail ' || g, 'x', now() from generate_series(1, $1) g",
    )
    .bind(USERS)
    .execute(&db)
    .await?;
    let users: Vec<UserId> =
        sqlx::query_scalar::<_, uuid::Uuid>("select id from users order by username")
            .fetch_all(&db)
            .await?
            .into_iter()
            .map(UserId::from)
            .collect();
    // The backlog: messages written through the store while no worker runs, each its own
    // thread, so each one owes a delivery job and an email job.
    let messages = ctx.scale.backlog_messages;
    let started = Instant::now();
    convos_testkit::write_backlog(&db, &users, messages, CONCURRENCY).await?;
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&db)
        .await?;
    report.note(
        SCENARIO,
        format!(
            "backlog of {jobs} jobs ({messages} deliveries + {messages} emails) written through \
             the store in {:.0} s with no worker running",
            started.elapsed().as_secs_f64()
        ),
    );

    let mut redis = ctx.redis().await?;
    // The worker starts with its queues paused (as an operator would hold them), so that its
    // own standing state in Redis (registration, scripts) is part of the "before" reading.
    let actor = users[0].as_uuid();
    for kind in [JobKind::Deliver, JobKind::NotifyEmail] {
        convos_store::ops::set_paused(&db, kind, true, actor)
            .await?
            .without_wake();
    }
    let mut worker = ctx.env.worker(
        &ctx.database_url(DB),
        port,
        &[
            ("CONVOS_EMAIL_DAILY_CAP", "1000000000".into()),
            ("CONVOS_EMAIL_DAILY_CAP_PER_SENDER", "1000000000".into()),
        ],
    )?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // What an operator's board costs with the backlog waiting and the queues held (the same
    // statements the server's `GET /api/v1/admin/queues` runs; the median of three reads, the
    // first of which prepares them), then read every few seconds of the drain.
    let mut board_before = Vec::new();
    for _ in 0..3 {
        board_before.push(timed_board(&db).await?);
    }
    let redis_before = used_memory(&mut redis).await?;
    let mut redis_peak = redis_before;
    let mut max_depth = 0i64;
    for kind in [JobKind::Deliver, JobKind::NotifyEmail] {
        convos_store::ops::set_paused(&db, kind, false, actor)
            .await?
            .without_wake();
    }
    let mut board_reads: Vec<Duration> = Vec::new();
    let mut board_next = Instant::now() + BOARD_EVERY;
    let share = CpuShare::start();
    let drain_started = Instant::now();
    let drain_from: DateTime<Utc> = sqlx::query_scalar("select now()").fetch_one(&db).await?;
    // The worker's memory against the jobs finished so far. Progress is counted from what
    // finished since the last look (a range of the `jobs_finished` index; an outcome that
    // commits after a later one was seen is missed, a handful in a million, which only moves
    // the memory samples' x-axis): counting every finished job five times a second read up to
    // a million rows each time, on the cores the drain runs on. The drain's end is two probes
    // of the partial indexes, and its rates come from `finished_at` afterwards.
    let mut worker_mib: Vec<(i64, f64)> = Vec::new();
    let mut finished = 0i64;
    let mut since = DateTime::<Utc>::UNIX_EPOCH;
    let deadline = drain_started + Duration::from_secs(3600);
    loop {
        let (more, last): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "select count(*), max(finished_at) from jobs \
             where kind in ('deliver', 'notify_email') and finished_at > $1",
        )
        .bind(since)
        .fetch_one(&db)
        .await?;
        finished += more;
        since = last.unwrap_or(since);
        // The drain is also a test that the worker never exits under a backlog.
        worker.check_running()?;
        if let Some(mib) = worker.rss_mib() {
            worker_mib.push((finished, mib));
        }
        redis_peak = redis_peak.max(used_memory(&mut redis).await?);
        max_depth = max_depth.max(queue_depth(&mut redis).await?);
        if Instant::now() >= board_next {
            board_reads.push(timed_board(&db).await?);
            board_next = Instant::now() + BOARD_EVERY;
        }
        if !jobs_owed(&db).await? {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the backlog did not drain within an hour"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain_to: DateTime<Utc> = sqlx::query_scalar(
        "select max(finished_at) from jobs where kind in ('deliver', 'notify_email')",
    )
    .fetch_one(&db)
    .await?;
    let drained = (drain_to - drain_from).to_std().unwrap_or_default();
    let drain_cpu = share.finish();
    let peak = worker.peak_mib();
    let emails = sink.accepted() - sent_directly;
    let email_rate = Measure::rate(emails, drained, "emails/s").with_peak(peak);
    report.row(Row {
        scenario: SCENARIO,
        what: "worker emails into the SMTP sink (during the drain)".into(),
        measured: email_rate.clone(),
        baseline: Some((
            format!("lettre straight to the sink, {CONCURRENCY} at a time"),
            baseline.clone(),
        )),
        ratio: Ratio::of("worker/direct", email_rate.rate, baseline.rate),
        target: None,
    });
    // Throughput of the first and the last tenth of each kind's jobs, from their finish times
    // (PostgreSQL's clock, as the drain's start).
    for (kind, name) in [("email", "notify_email"), ("delivery", "deliver")] {
        let (tenth_at, ninth_at, last_at): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) =
            sqlx::query_as(
                "select percentile_disc(0.1) within group (order by finished_at), \
                        percentile_disc(0.9) within group (order by finished_at), \
                        max(finished_at) \
                 from jobs where kind = $1 and finished_at is not null",
            )
            .bind(name)
            .fetch_one(&db)
            .await?;
        let tenth = messages as f64 / 10.0;
        let rate = |from: DateTime<Utc>, to: DateTime<Utc>| Measure {
            rate: Some(tenth / ((to - from).as_seconds_f64()).max(0.2)),
            unit: "jobs/s",
            samples: tenth as u64,
            ..Measure::default()
        };
        let first = rate(drain_from, tenth_at);
        let last = rate(ninth_at, last_at);
        let ratio = Ratio::of("last/first", last.rate, first.rate);
        report.row(Row {
            scenario: SCENARIO,
            what: format!("{kind} jobs of a {jobs}-job backlog, last 10%"),
            measured: last,
            baseline: Some(("same drain, first 10%".into(), first)),
            target: (kind == "email").then(|| Target {
                goal: "no slowdown across the backlog (last 10% at least 90% of the first)".into(),
                met: ratio.as_ref().is_some_and(|r| r.value >= 0.9),
            }),
            ratio,
        });
    }
    // Flat memory: the worker's resident size once 90% of the backlog is done, beside 10%.
    let rss_at = |fraction: f64| {
        let goal = (jobs as f64 * fraction) as i64;
        worker_mib
            .iter()
            .find(|(done, _)| *done >= goal)
            .map(|e| e.1)
    };
    let (early, late) = (rss_at(0.1), rss_at(0.9));
    let mib = |m: Option<f64>| Measure {
        peak_mib: m,
        ..Measure::default()
    };
    report.row(Row {
        scenario: SCENARIO,
        what: format!("worker memory (RSS) at 90% of a {jobs}-job backlog"),
        measured: mib(late),
        baseline: Some(("same, at 10%".into(), mib(early))),
        ratio: Ratio::of("90%/10%", late, early),
        target: Some(Target {
            goal: "flat worker memory across the backlog (within 10%)".into(),
            met: matches!((early, late), (Some(e), Some(l)) if l <= e * 1.1),
        }),
    });
    report.row(Row {
        scenario: SCENARIO,
        what: format!("queue board read during the drain of a {jobs}-job backlog"),
        measured: Measure::of(&board_reads, None, ""),
        baseline: Some((
            "same, the backlog waiting, queues paused".into(),
            Measure::of(&board_before, None, ""),
        )),
        ratio: None,
        target: None,
    });
    report.row(Row {
        scenario: SCENARIO,
        what: format!("backlog drain of {jobs} jobs, whole"),
        measured: Measure::rate(jobs as u64, drained, "jobs/s").with_peak(peak),
        baseline: None,
        ratio: None,
        target: None,
    });
    // The relay vacuums finished tasks out of Redis every 30 s by default; wait for one pass.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let with_streams = used_memory(&mut redis).await?;
    // The event streams are kept on purpose (2 h, at most 1,000 events a user, for reconnecting
    // clients); the scenario is over, so drop them and read what is left exactly (MEMORY USAGE
    // only estimates).
    drop_event_streams(&mut redis).await?;
    let redis_after = used_memory(&mut redis).await?;
    let streams = with_streams - redis_after;
    let mib = |b: i64| b as f64 / 1024.0 / 1024.0;
    report.row(Row {
        scenario: SCENARIO,
        what: "Redis memory after the drain, without the event streams".into(),
        measured: Measure {
            peak_mib: Some(mib(redis_after)),
            ..Measure::default()
        },
        baseline: Some((
            "Redis memory before the drain".into(),
            Measure {
                peak_mib: Some(mib(redis_before)),
                ..Measure::default()
            },
        )),
        ratio: Ratio::of(
            "after/before",
            Some(mib(redis_after)),
            Some(mib(redis_before)),
        ),
        target: Some(Target {
            goal: "Redis memory back to its starting level after the drain".into(),
            met: redis_after <= redis_before + 1024 * 1024,
        }),
    });
    let dead: i64 = sqlx::query_scalar("select count(*) from jobs where state = 'dead'")
        .fetch_one(&db)
        .await?;
    let sent_rows: i64 = sqlx::query_scalar("select count(*) from emails")
        .fetch_one(&db)
        .await?;
    report.note(
        SCENARIO,
        format!(
            "drain took {:.0} s; {emails} emails accepted by the sink for {messages} messages \
             ({sent_rows} recorded, {dead} dead jobs); the Redis queues together never held more than \
             {max_depth} tasks (the relay keeps each under its ceiling of 500); Redis peaked at {:.1} MiB; the event streams (kept 2 h for \
             reconnecting clients, by design, at most 1,000 events a user) held {:.1} MiB after the drain",
            drained.as_secs_f64(),
            mib(redis_peak),
            mib(streams)
        ),
    );
    report.note(SCENARIO, format!("during the drain: {drain_cpu}"));
    worker.stop();
    db.close().await;
    Ok(())
}

/// How often the drain reads the queue board, as an operator's screen would.
const BOARD_EVERY: Duration = Duration::from_secs(5);

/// How long the queue board's statements take, as the server runs them for an operator.
async fn timed_board(db: &sqlx::PgPool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    convos_store::ops::board(db).await?;
    Ok(started.elapsed())
}

/// Emails per second lettre gets into the sink with the worker's concurrency and a message of
/// the same shape (text and HTML alternatives).
async fn smtp_baseline(port: u16, count: usize) -> anyhow::Result<Measure> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..CONCURRENCY {
        let transport = transport.clone();
        set.spawn(async move {
            for n in (task..count).step_by(CONCURRENCY) {
                let email = Message::builder()
                    .from("Convos <convos@bench.example>".parse()?)
                    .to(format!("mail{n}@bench.example").parse()?)
                    .subject(format!("Backlog {n}"))
                    .multipart(MultiPart::alternative_plain_html(
                        format!("Backlog message {n}: the parcel is on its way."),
                        format!("<p>Backlog message {n}: the parcel is on its way.</p>"),
                    ))?;
                transport.send(email).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok(Measure::rate(count as u64, started.elapsed(), "emails/s"))
}

/// Bytes Redis holds, without its per-command latency statistics (`CONFIG RESETSTAT` first:
/// they grow with every new command name and are not data).
async fn used_memory(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<i64> {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(redis)
        .await?;
    let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// Tasks waiting or running in the apalis queues (scheduled sets and active lists).
async fn queue_depth(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<i64> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(redis).await?;
    let mut depth = 0;
    for key in keys.iter().filter(|k| !k.starts_with("convos:events")) {
        let kind: String = redis::cmd("TYPE").arg(key).query_async(redis).await?;
        depth += match (kind.as_str(), key) {
            ("zset", k) if k.contains("scheduled") => {
                redis::cmd("ZCARD")
                    .arg(key)
                    .query_async::<i64>(redis)
                    .await?
            }
            ("list", k) if k.contains("active") => {
                redis::cmd("LLEN")
                    .arg(key)
                    .query_async::<i64>(redis)
                    .await?
            }
            _ => 0,
        };
    }
    Ok(depth)
}

/// Deletes the per-user event streams.
async fn drop_event_streams(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<()> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("convos:events:*")
        .query_async(redis)
        .await?;
    for chunk in keys.chunks(500) {
        redis::cmd("DEL")
            .arg(chunk)
            .query_async::<()>(redis)
            .await?;
    }
    Ok(())
}
