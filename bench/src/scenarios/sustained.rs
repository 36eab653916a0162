//! Scenario 8, sustained: the platform as deployed (server, worker, PostgreSQL and Redis on one
//! machine) under sends it has to keep up with. New threads at full speed for a fixed time with
//! the worker running, then the drain: accepted against end-to-end rate, PostgreSQL commits per
//! job and where the CPU went, beside the API's rate with the worker stopped. Then the same paced
//! open-loop at 80% of that rate, with real event streams open for a sample of the recipients:
//! live lag from those streams and from the ledger, beside the same measured idle.

use crate::Ctx;
use crate::procs::{CpuShare, Proc};
use crate::report::{Ratio, Report, Row, Target};
use crate::scenarios::live::{Seen, connect};
use crate::scenarios::{Text, db_now, issue_to, jobs_owed};
use crate::statements::{self, Profile};
use crate::stats::Measure;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;

const SCENARIO: &str = "8. Sustained";
const DB: &str = "convos_bench_sustained";
/// Closed-loop senders at full speed, each on its own keep-alive connection.
const SENDERS: usize = 32;
/// Bench users on each side (senders and recipients are separate sets).
const USERS: usize = 200;
/// Recipients whose event streams are held open.
const WATCHED: usize = 50;
/// One send in this many goes to a watched recipient: the live-lag sample.
const SAMPLE_EVERY: u64 = 5;
/// The longest wait for the ledger to drain after a load.
const DRAIN_CAP: Duration = Duration::from_secs(300);
/// PostgreSQL flushes an idle backend's statistics within 10 s (`PGSTAT_IDLE_INTERVAL`), so
/// `xact_commit` is read this long after the last work, when it holds every commit.
const STATS_SETTLE: Duration = Duration::from_secs(11);
/// The paced phase offers this fraction of the accepted rate at full speed.
const PACE: f64 = 0.8;
/// A paced send issued later than this after its scheduled time is behind schedule.
const LATE: Duration = Duration::from_millis(5);
/// The jobs a message owes, and only those: the drain waits for them.
const OWED: &str = "kind in ('deliver', 'notify_email') \
                    and state in ('pending', 'retry', 'dispatched', 'running')";

/// Runs the scenario on a fresh database of its own and adds its rows and notes to `report`.
pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    ctx.flush_redis().await?;
    // Mail goes to a folder, as in the issue's measurement: an SMTP server in this process
    // accepts only ~360 emails/s on this machine (the email scenario's direct baseline), which
    // would measure the sink, not the job pipeline. The email scenario measures SMTP.
    let mail = MailFolder::new(&ctx.env.work_dir)?;
    let mail_dir = &mail.0;
    let db = ctx.fresh_database(DB).await?;
    // Verified addresses, so every message's email job really sends.
    sqlx::query(
        "insert into users (id, username, email, display_name, password_hash, email_verified_at) \
         select gen_random_uuid(), kind || lpad(g::text, 4, '0'), \
                kind || g || '@bench.example', kind || ' ' || g, 'x', now() \
         from generate_series(1, $1) g, unnest(array['sender', 'rcpt']) kind",
    )
    .bind(USERS as i32)
    .execute(&db)
    .await?;
    let users: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "select id, username from users \
         where username like 'sender%' or (username like 'rcpt%' and username <= $1) \
         order by username",
    )
    .bind(format!("rcpt{WATCHED:04}"))
    .fetch_all(&db)
    .await?;
    let tokens = issue_to(&db, users.clone()).await?;
    let names = |prefix: &str| -> Vec<String> {
        users
            .iter()
            .filter(|(_, n)| n.starts_with(prefix))
            .map(|(_, n)| n.clone())
            .collect()
    };
    let watched = names("rcpt");
    let mut rng = StdRng::seed_from_u64(8);
    let server = ctx
        .env
        .server(
            &ctx.database_url(DB),
            // No notification delay: every message owes a delivery and an email at once.
            &[("CONVOS_NOTIFY_DELAY_SECS", "0".into())],
        )
        .await?;
    let fleet = Arc::new(Fleet {
        base: server.base.clone(),
        tokens: names("sender")
            .iter()
            .map(|n| tokens.of(n).to_owned())
            .collect(),
        others: (WATCHED + 1..=USERS)
            .map(|g| format!("rcpt{g:04}"))
            .collect(),
        watched: watched.clone(),
        text: Text::new(&mut rng),
    });
    report.note(
        SCENARIO,
        format!(
            "{USERS} senders and {USERS} recipients writing new threads (bodies from the corpus's \
             size distribution); notification delay 0, so every message owes a delivery job and \
             an email job, and emails are written to a folder (lettre's file transport), in \
             memory where the machine has /dev/shm (decision 48); {WATCHED} recipients hold an \
             event stream open and one send in {SAMPLE_EVERY} goes to one of them; peak MiB is \
             the server's on the accepted rows and the worker's on the end-to-end rows"
        ),
    );

    // The API alone: the same closed loop with no worker running.
    let share = CpuShare::start();
    let alone = saturate(
        &fleet,
        Duration::from_secs(ctx.scale.sustained_baseline_secs),
    )
    .await?;
    let alone_cpu = share.finish();
    anyhow::ensure!(alone.accepted > 0, "no send was accepted: {alone}");
    let alone_measure = Measure::of(&alone.latencies, Some(alone.window), "msg/s");

    let mut worker = ctx.env.worker(
        &ctx.database_url(DB),
        0,
        &[
            ("CONVOS_EMAIL_DAILY_CAP", "1000000000".into()),
            ("CONVOS_EMAIL_DAILY_CAP_PER_SENDER", "1000000000".into()),
            ("CONVOS_SMTP_URL", format!("file://{}", mail_dir.display())),
        ],
    )?;
    let started = Instant::now();
    let drained = drain(&db, &mut worker).await?;
    report.note(
        SCENARIO,
        format!(
            "worker stopped: {alone} in {:.1} s ({alone_cpu}); the backlog they left {}",
            alone.window.as_secs_f64(),
            drained.map_or_else(
                || format!(
                    "had not drained {} s after the worker started",
                    DRAIN_CAP.as_secs()
                ),
                |at| format!(
                    "drained {:.1} s after the worker started",
                    (at - started).as_secs_f64()
                ),
            )
        ),
    );

    // Idle: streams open, one send at a time.
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    for name in &watched {
        connect(&server.base, tokens.of(name), tx.clone()).await?;
    }
    drop(tx);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_from = db_now(&db).await?;
    let idle_lags = idle(
        &fleet,
        &mut seen,
        ctx.scale.sustained_idle_samples,
        &mut rng,
    )
    .await?;
    let idle_to = db_now(&db).await?;
    drain(&db, &mut worker).await?;
    let idle_ledger = ledger_lag(&db, idle_from, idle_to).await?;
    let idle_live = Measure::of(&idle_lags, None, "");

    tokio::time::sleep(STATS_SETTLE).await;
    let commits = commits(&db).await?;
    let mut arrivals = HashMap::new();
    let secs = Duration::from_secs(ctx.scale.sustained_secs);
    server.proc.reset_peak();
    worker.reset_peak();
    let full = Phase::run(
        &db,
        &mut worker,
        &mut seen,
        &mut arrivals,
        commits,
        Load::Saturate(&fleet, secs),
    )
    .await?;
    let server_peak = server.proc.peak_mib();
    let worker_peak = worker.peak_mib();
    let full_accepted =
        Measure::of(&full.sends.latencies, Some(full.sends.window), "msg/s").with_peak(server_peak);
    report.row(Row {
        scenario: SCENARIO,
        what: format!("accepted sends at full speed, {SENDERS} senders, worker running"),
        baseline: Some((
            "same, worker stopped".into(),
            alone_measure.clone().with_peak(None),
        )),
        ratio: Ratio::of(
            "with/without worker",
            full_accepted.rate,
            alone_measure.rate,
        ),
        measured: full_accepted.clone(),
        target: None,
    });
    full.report(report, "full speed", full_accepted.rate, worker_peak, true);
    full.report_lag(report, "full speed", &idle_live, &idle_ledger, false);

    let offered = full_accepted.rate.unwrap_or(0.0) * PACE;
    anyhow::ensure!(offered > 0.0, "no accepted rate to pace from");
    server.proc.reset_peak();
    worker.reset_peak();
    let paced = Phase::run(
        &db,
        &mut worker,
        &mut seen,
        &mut arrivals,
        full.commits_after,
        Load::Pace(&fleet, offered, secs),
    )
    .await?;
    let paced_accepted = Measure::of(&paced.sends.latencies, Some(paced.sends.window), "msg/s")
        .with_peak(server.proc.peak_mib());
    report.row(Row {
        scenario: SCENARIO,
        what: format!(
            "accepted sends paced at {:.0}% of full speed, open loop",
            PACE * 100.0
        ),
        baseline: Some((
            "offered rate".into(),
            Measure {
                rate: Some(offered),
                unit: "msg/s",
                ..Measure::default()
            },
        )),
        ratio: Ratio::of("accepted/offered", paced_accepted.rate, Some(offered)),
        measured: paced_accepted.clone(),
        target: None,
    });
    let pace_name = format!("{:.0}%", PACE * 100.0);
    paced.report(
        report,
        &pace_name,
        paced_accepted.rate,
        worker.peak_mib(),
        false,
    );
    paced.report_lag(report, &pace_name, &idle_live, &idle_ledger, true);
    report.note(
        SCENARIO,
        format!(
            "paced: {offered:.0} msg/s offered for {} s, each send in its own task on a fixed \
             schedule; {} of {} sends issued more than {} ms behind it (worst {:.1} ms); their \
             latency counts from the scheduled time",
            secs.as_secs(),
            paced.sends.late,
            paced.sends.accepted + paced.sends.failed,
            LATE.as_millis(),
            paced.sends.worst_late.as_secs_f64() * 1e3
        ),
    );
    report.note(
        SCENARIO,
        format!(
            "live lag idle: {} sequential sends with 10-60 ms gaps; ledger lag is a deliver job's \
             finished_at - created_at (PostgreSQL clock), the stream's lag is the POST's 201 \
             returning -> the recipient's message.created event (this process's clock); {} \
             emails were written in all",
            idle_lags.len(),
            std::fs::read_dir(mail_dir)?.count()
        ),
    );
    report.note(
        SCENARIO,
        format!("emails were written to {}", mail_dir.display()),
    );
    worker.stop();
    server.proc.stop();
    db.close().await;
    Ok(())
}

/// Where the scenario's emails are written: a folder in memory (`/dev/shm`) where the machine
/// has one, else in the work directory.
///
/// On this machine's ext4 disk, creating a file soon after many were deleted costs 280-500 µs
/// of kernel time against 38 µs on a disk that deleted nothing and 18 µs in memory (20,000
/// files each; ext4 looks for free inodes past the recently deleted ones). A run deleting the
/// last run's 20,000 emails before writing its own spent 41% of the worker's CPU samples there
/// (`perf`): a cost of the sink, which a deployment sending by SMTP does not have. The folder
/// is removed when the scenario ends, however it ends (in memory, it holds the machine's RAM).
struct MailFolder(std::path::PathBuf);

impl MailFolder {
    /// A new, empty folder: in memory if it can be made there, else in `work_dir`.
    fn new(work_dir: &std::path::Path) -> std::io::Result<Self> {
        let fresh = |path: std::path::PathBuf| {
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).map(|()| Self(path))
        };
        let memory = std::path::Path::new("/dev/shm");
        let name = format!("convos-bench-sustained-mail-{}", std::process::id());
        match memory.is_dir().then(|| fresh(memory.join(name))) {
            Some(Ok(folder)) => Ok(folder),
            _ => fresh(work_dir.join("sustained-mail")),
        }
    }
}

impl Drop for MailFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Who sends to whom, and the text they send.
struct Fleet {
    base: String,
    /// The senders' tokens.
    tokens: Vec<String>,
    /// Recipients with an event stream open.
    watched: Vec<String>,
    /// The other recipients.
    others: Vec<String>,
    text: Text,
}

impl Fleet {
    /// Sends new thread number `n` from a random sender, to a watched recipient when `n` is
    /// sampled (then with its message id) and to a random other recipient otherwise; the
    /// instant is when the 201 returned.
    async fn send(
        &self,
        http: &reqwest::Client,
        n: u64,
        rng: &mut StdRng,
    ) -> anyhow::Result<(Option<String>, Instant)> {
        let sampled = n.is_multiple_of(SAMPLE_EVERY);
        let to = if sampled {
            &self.watched[(n / SAMPLE_EVERY) as usize % self.watched.len()]
        } else {
            &self.others[rng.random_range(0..self.others.len())]
        };
        let token = &self.tokens[rng.random_range(0..self.tokens.len())];
        let response = http
            .post(format!("{}/api/v1/messages", self.base))
            .bearer_auth(token)
            .json(&serde_json::json!({
                "recipient": to,
                "subject": self.text.subject(rng),
                "body": self.text.body(rng),
            }))
            .send()
            .await?;
        let returned = Instant::now();
        anyhow::ensure!(
            response.status() == reqwest::StatusCode::CREATED,
            "send answered {}",
            response.status()
        );
        // The body is read either way, so the connection goes back to the pool.
        let body: serde_json::Value = response.json().await?;
        let id = sampled.then(|| body["id"].as_str().unwrap_or_default().to_owned());
        Ok((id, returned))
    }
}

/// What a load sent.
#[derive(Default)]
struct Sends {
    accepted: u64,
    failed: u64,
    first_error: Option<String>,
    /// Of accepted sends.
    latencies: Vec<Duration>,
    /// Sampled accepted sends: message id and when its 201 returned.
    sampled: Vec<(String, Instant)>,
    /// From the first send to the last answer.
    window: Duration,
    /// Paced loads: sends issued more than [`LATE`] behind schedule, and the worst delay.
    late: u64,
    worst_late: Duration,
}

impl Sends {
    fn record(&mut self, sent: anyhow::Result<(Option<String>, Instant)>, since: Instant) {
        match sent {
            Ok((id, returned)) => {
                self.accepted += 1;
                self.latencies
                    .push(returned.saturating_duration_since(since));
                if let Some(id) = id {
                    self.sampled.push((id, returned));
                }
            }
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    fn merge(&mut self, other: Self) {
        self.accepted += other.accepted;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.extend(other.latencies);
        self.sampled.extend(other.sampled);
    }
}

impl std::fmt::Display for Sends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} messages accepted", self.accepted)?;
        if self.failed > 0 {
            write!(
                f,
                ", {} sends failed (first: {})",
                self.failed,
                self.first_error.as_deref().unwrap_or("?")
            )?;
        }
        Ok(())
    }
}

/// Closed loop: [`SENDERS`] tasks, each sending as soon as its previous send returned.
async fn saturate(fleet: &Arc<Fleet>, duration: Duration) -> anyhow::Result<Sends> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut set = JoinSet::new();
    for task in 0..SENDERS {
        let fleet = fleet.clone();
        set.spawn(async move {
            let http = reqwest::Client::new();
            let mut rng = StdRng::seed_from_u64(800 + task as u64);
            let mut sends = Sends::default();
            // Numbered across tasks, so one send in SAMPLE_EVERY is sampled overall.
            let mut n = task as u64;
            while Instant::now() < deadline {
                let since = Instant::now();
                sends.record(fleet.send(&http, n, &mut rng).await, since);
                n += SENDERS as u64;
            }
            sends
        });
    }
    let mut all = Sends::default();
    while let Some(done) = set.join_next().await {
        all.merge(done?);
    }
    all.window = started.elapsed();
    Ok(all)
}

/// Open loop: one send every `1 / rate` seconds from a ticker, each in its own task, whether or
/// not the previous ones have returned.
async fn pace(fleet: &Arc<Fleet>, rate: f64, duration: Duration) -> anyhow::Result<Sends> {
    let http = reqwest::Client::new();
    let period = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let end = started + duration;
    let mut set = JoinSet::new();
    let (mut late, mut worst_late) = (0, Duration::ZERO);
    for n in 0u64.. {
        let at = started + period.mul_f64(n as f64);
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let behind = at.elapsed();
        if behind > LATE {
            late += 1;
        }
        worst_late = worst_late.max(behind);
        let (fleet, http) = (fleet.clone(), http.clone());
        set.spawn(async move {
            let mut rng = StdRng::seed_from_u64(900_000 + n);
            let mut sends = Sends::default();
            // From the scheduled time, so a send that started late does not hide the delay.
            sends.record(fleet.send(&http, n, &mut rng).await, at);
            sends
        });
    }
    let mut all = Sends::default();
    while let Some(done) = set.join_next().await {
        all.merge(done?);
    }
    all.window = started.elapsed();
    all.late = late;
    all.worst_late = worst_late;
    Ok(all)
}

/// Sends `samples` messages to watched recipients one at a time, with idle gaps, and times
/// each from its 201 to its event.
async fn idle(
    fleet: &Fleet,
    seen: &mut UnboundedReceiver<Seen>,
    samples: usize,
    rng: &mut StdRng,
) -> anyhow::Result<Vec<Duration>> {
    let http = reqwest::Client::new();
    let mut lags = Vec::new();
    for k in 0..samples as u64 {
        let (id, returned) = fleet.send(&http, k * SAMPLE_EVERY, rng).await?;
        let id = id.unwrap_or_default();
        let arrived = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some((got, at)) = seen.recv().await {
                if got == id {
                    return Some(at);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| anyhow::anyhow!("message {id} never reached its recipient's stream"))?;
        lags.push(arrived.saturating_duration_since(returned));
        tokio::time::sleep(Duration::from_millis(rng.random_range(10..60))).await;
    }
    Ok(lags)
}

/// A load of a phase.
enum Load<'a> {
    /// Closed loop at full speed for a time.
    Saturate(&'a Arc<Fleet>, Duration),
    /// Open loop at a rate (messages per second) for a time.
    Pace(&'a Arc<Fleet>, f64, Duration),
}

/// Live lag percentiles of deliver jobs from the ledger: p50, p99 (ms) and how many.
struct LedgerLag(Option<f64>, Option<f64>, i64);

impl LedgerLag {
    fn measure(&self) -> Measure {
        Measure {
            p50_ms: self.0,
            p99_ms: self.1,
            samples: self.2 as u64,
            ..Measure::default()
        }
    }
}

/// What one loaded phase found, from its first send until the ledger drained.
struct Phase {
    sends: Sends,
    /// From the first send to the drain (or to the end of the wait).
    span: Duration,
    drained: bool,
    /// Deliver and email jobs created by the phase's sends, and those still owed.
    jobs: i64,
    owed: i64,
    /// Messages of the phase whose jobs have all finished.
    finished: i64,
    commits: i64,
    commits_after: i64,
    cpu: String,
    ledger: LedgerLag,
    /// Lags of sampled sends, and how many events came before their 201 (counted as 0) or
    /// never came.
    lags: Vec<Duration>,
    early: usize,
    missing: usize,
    /// The statements that took PostgreSQL's time, from the first send to the drain.
    statements: Profile,
}

impl Phase {
    /// Runs `load`, waits for the drain and reads the ledger and the statistics;
    /// `commits_before` is `xact_commit` read after the statistics settled.
    async fn run(
        db: &PgPool,
        worker: &mut Proc,
        seen: &mut UnboundedReceiver<Seen>,
        arrivals: &mut HashMap<String, Instant>,
        commits_before: i64,
        load: Load<'_>,
    ) -> anyhow::Result<Self> {
        statements::reset(db).await?;
        let from = db_now(db).await?;
        let share = CpuShare::start();
        let started = Instant::now();
        let sends = match load {
            Load::Saturate(fleet, secs) => saturate(fleet, secs).await?,
            Load::Pace(fleet, rate, secs) => pace(fleet, rate, secs).await?,
        };
        anyhow::ensure!(sends.accepted > 0, "no send was accepted: {sends}");
        let to = db_now(db).await?;
        let drained_at = drain(db, worker).await?;
        let span = drained_at.unwrap_or_else(Instant::now) - started;
        let cpu = share.finish();
        let statements = statements::top(db, 10).await?;
        if drained_at.is_some() {
            // Events of the last deliveries may still be on their way to the streams.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        while let Ok((id, at)) = seen.try_recv() {
            arrivals.insert(id, at);
        }
        let (jobs, owed, delivered, emailed): (i64, i64, i64, i64) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "select count(*), count(*) filter (where {OWED}), \
                    count(*) filter (where kind = 'deliver' and finished_at is not null), \
                    count(*) filter (where kind = 'notify_email' and finished_at is not null) \
             from jobs where kind in ('deliver', 'notify_email') \
               and created_at >= $1 and created_at <= $2"
            )))
            .bind(from)
            .bind(to)
            .fetch_one(db)
            .await?;
        let ledger = ledger_lag(db, from, to).await?;
        tokio::time::sleep(STATS_SETTLE).await;
        let commits_after = commits(db).await?;
        let (mut lags, mut early, mut missing) = (Vec::new(), 0, 0);
        for (id, returned) in &sends.sampled {
            match arrivals.get(id) {
                Some(at) => {
                    early += usize::from(at < returned);
                    lags.push(at.saturating_duration_since(*returned));
                }
                None => missing += 1,
            }
        }
        anyhow::ensure!(
            drained_at.is_none() || missing == 0,
            "{missing} sampled messages never reached their recipient's stream, though the \
             ledger drained"
        );
        Ok(Self {
            span,
            drained: drained_at.is_some(),
            jobs,
            owed,
            // Each message owes exactly one delivery and one email job.
            finished: delivered.min(emailed),
            commits: commits_after - commits_before,
            commits_after,
            cpu,
            ledger,
            lags,
            early,
            missing,
            sends,
            statements,
        })
    }

    /// The end-to-end row and the phase's notes.
    fn report(
        &self,
        report: &mut Report,
        name: &str,
        accepted: Option<f64>,
        worker_peak: Option<f64>,
        targeted: bool,
    ) {
        let end_to_end =
            Measure::rate(self.finished as u64, self.span, "msg/s").with_peak(worker_peak);
        let ratio = Ratio::of("end-to-end/accepted", end_to_end.rate, accepted);
        report.row(Row {
            scenario: SCENARIO,
            what: format!("end to end at {name}: first send -> all jobs done"),
            baseline: Some((
                format!(
                    "accepted sends, same phase ({} s window)",
                    self.sends.window.as_secs()
                ),
                Measure {
                    rate: accepted,
                    unit: "msg/s",
                    ..Measure::default()
                },
            )),
            target: targeted.then(|| Target {
                goal: "end-to-end rate at least 0.9x the accepted rate, worker running".into(),
                met: self.drained && ratio.as_ref().is_some_and(|r| r.value >= 0.9),
            }),
            ratio,
            measured: end_to_end,
        });
        let drain = if self.drained {
            format!(
                "the ledger drained {:.1} s after the first send",
                self.span.as_secs_f64()
            )
        } else {
            format!(
                "the ledger had NOT drained {:.0} s after the first send ({} of {} jobs still \
                 owed; the end-to-end rate counts only messages whose jobs all finished)",
                self.span.as_secs_f64(),
                self.owed,
                self.jobs
            )
        };
        let per = |n: i64| self.commits as f64 / n.max(1) as f64;
        report.note(
            SCENARIO,
            format!(
                "{name}: {}; {} deliver and email jobs; {drain}; PostgreSQL commits {} = {:.2} per \
                 job, {:.2} per message (every commit in the bench database over send, drain \
                 and {} s settling: the API's own, the worker's and relay's, and this bench's \
                 drain polling every 100 ms)",
                self.sends,
                self.jobs,
                self.commits,
                per(self.jobs),
                per(self.sends.accepted as i64),
                STATS_SETTLE.as_secs()
            ),
        );
        report.note(SCENARIO, format!("{name}, send and drain: {}", self.cpu));
        report.note(
            SCENARIO,
            format!(
                "{name}, PostgreSQL's execution time by statement (pg_stat_statements, top {}; \
                 the bench's drain polling included): {}",
                self.statements.0.len(),
                self.statements
            ),
        );
    }

    /// The live-lag rows: from the streams and from the ledger.
    fn report_lag(
        &self,
        report: &mut Report,
        name: &str,
        idle_live: &Measure,
        idle_ledger: &LedgerLag,
        targeted: bool,
    ) {
        let live = Measure::of(&self.lags, None, "");
        report.row(Row {
            scenario: SCENARIO,
            what: format!("live at {name}: POST returned -> event on the stream"),
            baseline: Some(("same, idle".into(), idle_live.clone())),
            ratio: Ratio::of("p99 vs idle", live.p99_ms, idle_live.p99_ms),
            target: targeted.then(|| Target {
                goal: format!("p99 under 250 ms at {name} of the full-speed rate"),
                met: self.missing == 0 && live.p99_ms.is_some_and(|p| p < 250.0),
            }),
            measured: live,
        });
        let ledger = self.ledger.measure();
        let idle = idle_ledger.measure();
        report.row(Row {
            scenario: SCENARIO,
            what: format!("ledger at {name}: deliver job created -> finished"),
            ratio: Ratio::of("p99 vs idle", ledger.p99_ms, idle.p99_ms),
            baseline: Some(("same, idle".into(), idle)),
            measured: ledger,
            target: None,
        });
        if self.early > 0 || self.missing > 0 {
            report.note(
                SCENARIO,
                format!(
                    "{name}: of {} sampled sends, {} events arrived before the POST returned \
                     (counted as 0) and {} never arrived",
                    self.sends.sampled.len(),
                    self.early,
                    self.missing
                ),
            );
        }
    }
}

/// Waits until no message owes a job, at most [`DRAIN_CAP`]; when that was, or `None`.
async fn drain(db: &PgPool, worker: &mut Proc) -> anyhow::Result<Option<Instant>> {
    let deadline = Instant::now() + DRAIN_CAP;
    loop {
        if !jobs_owed(db).await? {
            return Ok(Some(Instant::now()));
        }
        worker.check_running()?;
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deliver jobs created in a window: created -> finished p50 and p99 in ms, and how many.
async fn ledger_lag(
    db: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<LedgerLag> {
    let (p50, p99, n): (Option<f64>, Option<f64>, i64) = sqlx::query_as(
        "select percentile_cont(0.5) within group (order by ms), \
                percentile_cont(0.99) within group (order by ms), count(*) \
         from (select (extract(epoch from finished_at - created_at) * 1000)::float8 as ms \
               from jobs where kind = 'deliver' and finished_at is not null \
                 and created_at >= $1 and created_at <= $2) lag",
    )
    .bind(from)
    .bind(to)
    .fetch_one(db)
    .await?;
    Ok(LedgerLag(p50, p99, n))
}

/// Transactions committed in the bench database so far.
async fn commits(db: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "select xact_commit from pg_stat_database where datname = current_database()",
    )
    .fetch_one(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_count_failures_keep_the_first_error_and_only_sampled_ids() {
        let since = Instant::now();
        let returned = since + Duration::from_millis(7);
        let mut one = Sends::default();
        one.record(Ok((Some("m1".into()), returned)), since);
        one.record(Ok((None, returned)), since);
        one.record(Err(anyhow::anyhow!("send answered 500")), since);
        let mut two = Sends::default();
        two.record(Err(anyhow::anyhow!("connection reset")), since);
        one.merge(two);
        assert_eq!((one.accepted, one.failed), (2, 2));
        assert_eq!(one.first_error.as_deref(), Some("send answered 500"));
        assert_eq!(one.latencies, vec![Duration::from_millis(7); 2]);
        assert_eq!(one.sampled, vec![("m1".to_owned(), returned)]);
        assert_eq!(
            one.to_string(),
            "2 messages accepted, 2 sends failed (first: send answered 500)"
        );
    }
}
