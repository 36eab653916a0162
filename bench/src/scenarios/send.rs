//! Scenario 1, send: `POST /api/v1/messages` and replies, sustained, at 16 and 64 keep-alive
//! connections, against the same store transaction run directly on PostgreSQL at the same
//! concurrency (a sqlx loop in this process, through a pool the size of the server's, naming
//! recipients by username as the API does).

use crate::report::{Ratio, Report, Row, Target};
use crate::scenarios::{LUA_TEXT, Text, issue_to};
use crate::stats::Measure;
use crate::wrk::{self, Load, lua_strings};
use crate::{Ctx, procs::CpuShare};
use convos_core::api::NewContent;
use convos_core::{Body, Subject, ThreadId, UserId, Username};
use convos_store::jobs::NotifySettings;
use convos_store::messages::Recipient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCENARIO: &str = "1. Send";
const DB: &str = "convos_bench_send";
/// Senders and recipients (separate sets, so nobody writes to themselves).
const USERS: usize = 200;
/// The server's default pool size (`CONVOS_DB_MAX_CONNECTIONS`); the baseline uses the same.
const POOL: u32 = 20;

/// What is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    Reply,
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    ctx.flush_redis().await?;
    let db = ctx.fresh_database(DB).await?;
    sqlx::query(
        "insert into users (id, username, email, display_name, password_hash) \
         select gen_random_uuid(), kind || lpad(g::text, 4, '0'), \
                kind || g || '@bench.example', kind || ' ' || g, 'x' \
         from generate_series(1, $1) g, unnest(array['sender', 'rcpt']) kind",
    )
    .bind(USERS as i32)
    .execute(&db)
    .await?;
    let senders: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "select id, username from users where username like 'sender%' order by username",
    )
    .fetch_all(&db)
    .await?;
    let recipients: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "select id, username from users where username like 'rcpt%' order by username",
    )
    .fetch_all(&db)
    .await?;
    let tokens = issue_to(&db, senders.clone()).await?;
    // One thread per sender to reply in.
    let notify = NotifySettings::default();
    let mut rng = StdRng::seed_from_u64(1);
    let text = Arc::new(Text::new(&mut rng));
    let mut threads = Vec::new();
    for (i, (sender, _)) in senders.iter().enumerate() {
        let created = convos_store::messages::create_thread(
            &db,
            &notify,
            UserId::from(*sender),
            UserId::from(recipients[i].0),
            &Subject::parse(&text.subject(&mut rng))?,
            &content(&text, &mut rng)?,
            None,
        )
        .await?
        .without_wake();
        let thread: uuid::Uuid = sqlx::query_scalar("select thread_id from messages where id = $1")
            .bind(created.id().as_uuid())
            .fetch_one(&db)
            .await?;
        threads.push(thread);
    }
    let server = ctx.env.server(&ctx.database_url(DB), &[]).await?;
    let direct = sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL)
        .connect(&ctx.database_url(DB))
        .await?;
    let sender_tokens: Vec<String> = senders
        .iter()
        .map(|(_, n)| tokens.of(n).to_owned())
        .collect();
    let recipient_names: Vec<String> = recipients.iter().map(|(_, n)| n.clone()).collect();
    let thread_ids: Vec<String> = threads.iter().map(ToString::to_string).collect();
    let new_script = format!(
        "{LUA_TEXT}\nlocal tokens = {}\nlocal rcpts = {}\n\
         request = function()\n\
           local body = string.format('{{\"recipient\":\"%s\",\"subject\":\"%s\",\"body\":\"%s\"}}', \
             rcpts[math.random(#rcpts)], subject(), body())\n\
           return wrk.format(\"POST\", \"/api/v1/messages\", \
             {{[\"Authorization\"] = \"Bearer \" .. tokens[math.random(#tokens)], \
               [\"Content-Type\"] = \"application/json\"}}, body)\n\
         end\n",
        lua_strings(&sender_tokens),
        lua_strings(&recipient_names)
    );
    let reply_script = format!(
        "{LUA_TEXT}\nlocal tokens = {}\nlocal threads = {}\n\
         request = function()\n\
           local i = math.random(#tokens)\n\
           local body = string.format('{{\"body\":\"%s\"}}', body())\n\
           return wrk.format(\"POST\", \"/api/v1/threads/\" .. threads[i] .. \"/messages\", \
             {{[\"Authorization\"] = \"Bearer \" .. tokens[i], \
               [\"Content-Type\"] = \"application/json\"}}, body)\n\
         end\n",
        lua_strings(&sender_tokens),
        lua_strings(&thread_ids)
    );
    let senders: Arc<Vec<UserId>> =
        Arc::new(senders.iter().map(|(id, _)| UserId::from(*id)).collect());
    // By username, as the API receives them: the store resolves them inside the insert.
    let recipients: Arc<Vec<Username>> = Arc::new(
        recipients
            .iter()
            .map(|(_, name)| Username::parse(name))
            .collect::<Result<_, _>>()?,
    );
    let threads: Arc<Vec<ThreadId>> = Arc::new(threads.into_iter().map(ThreadId::from).collect());
    let duration = Duration::from_secs(ctx.scale.send_secs);
    for (kind, what, script) in [
        (Kind::New, "new thread", &new_script),
        (Kind::Reply, "reply", &reply_script),
    ] {
        for connections in [16u32, 64] {
            let share = CpuShare::start();
            let baseline = direct_loop(
                &direct,
                kind,
                connections as usize,
                duration,
                &text,
                &senders,
                &recipients,
                &threads,
            )
            .await?;
            let baseline_cpu = share.finish();
            server.proc.reset_peak();
            let share = CpuShare::start();
            let run = wrk::run(
                &Load {
                    base: &server.base,
                    script,
                    connections,
                    threads: 2,
                    duration,
                },
                &ctx.env.work_dir,
            )?;
            let api_cpu = share.finish_with(&[("wrk", run.cpu_secs)]);
            let measured = run.measure.with_peak(server.proc.peak_mib());
            let ratio = Ratio::of("API/baseline throughput", measured.rate, baseline.rate);
            let target = (connections == 64).then(|| Target {
                goal: "throughput at least 70% of the direct-PostgreSQL baseline".into(),
                met: ratio.as_ref().is_some_and(|r| r.value >= 0.7),
            });
            report.row(Row {
                scenario: SCENARIO,
                what: format!("{what}, {connections} connections"),
                measured,
                baseline: Some((
                    format!("same transaction via sqlx, {connections} tasks"),
                    baseline,
                )),
                ratio,
                target,
            });
            report.note(
                SCENARIO,
                format!(
                    "{what}, {connections} connections: API run {api_cpu}; baseline run \
                     {baseline_cpu}{}",
                    if run.errors > 0 {
                        format!("; {} requests failed", run.errors)
                    } else {
                        String::new()
                    }
                ),
            );
        }
    }
    let sent: i64 = sqlx::query_scalar("select count(*) from messages")
        .fetch_one(&db)
        .await?;
    report.note(
        SCENARIO,
        format!(
            "{sent} messages written in all; pool of {POOL} connections on both sides; bodies \
             drawn from the corpus's size distribution (0.5% of 4,000-64,000 characters)"
        ),
    );
    server.proc.stop();
    direct.close().await;
    db.close().await;
    Ok(())
}

fn content(text: &Text, rng: &mut StdRng) -> anyhow::Result<NewContent> {
    Ok(NewContent {
        body: Body::parse(&text.body(rng))?,
        expires_in: None,
        read_once: false,
    })
}

/// The baseline: `tasks` loops calling the store's own transaction for `duration`.
#[allow(clippy::too_many_arguments)]
async fn direct_loop(
    db: &PgPool,
    kind: Kind,
    tasks: usize,
    duration: Duration,
    text: &Arc<Text>,
    senders: &Arc<Vec<UserId>>,
    recipients: &Arc<Vec<Username>>,
    threads: &Arc<Vec<ThreadId>>,
) -> anyhow::Result<Measure> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let (db, text, senders, recipients, threads) = (
            db.clone(),
            text.clone(),
            senders.clone(),
            recipients.clone(),
            threads.clone(),
        );
        set.spawn(async move {
            let mut rng = StdRng::seed_from_u64(100 + task as u64);
            let notify = NotifySettings::default();
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let i = rng.random_range(0..senders.len());
                let content = content(&text, &mut rng)?;
                let t0 = Instant::now();
                match kind {
                    Kind::New => {
                        let subject = Subject::parse(&text.subject(&mut rng))?;
                        let to = &recipients[rng.random_range(0..recipients.len())];
                        convos_store::messages::create_thread(
                            &db,
                            &notify,
                            senders[i],
                            Recipient::Username(to),
                            &subject,
                            &content,
                            None,
                        )
                        .await?
                        .without_wake();
                    }
                    Kind::Reply => {
                        convos_store::messages::reply(
                            &db, &notify, senders[i], threads[i], &content, None,
                        )
                        .await?
                        .without_wake();
                    }
                }
                samples.push(t0.elapsed());
            }
            anyhow::Ok(samples)
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = set.join_next().await {
        samples.extend(done??);
    }
    let elapsed = started.elapsed();
    Ok(Measure::of(&samples, Some(elapsed), "tx/s"))
}
