//! Outages and crashes: nothing accepted by the API is lost, and nothing happens twice.

use crate::stack::{WORKER_BIN, start_api};
use convos_core::events::stream_key;
use convos_testkit::{
    InProcessWorker, OwnRedis, SmtpSink, StackConfig, WorkerProcess, all_jobs_finished,
    database_url, eventually, job_states,
};
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// `message.created` events per message id in a user's stream.
async fn created_events(redis_url: &str, prefix: &str, user: &str) -> HashMap<String, usize> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = stream_key(prefix, user.parse().unwrap());
    #[allow(clippy::type_complexity)]
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut counts = HashMap::new();
    for (_, fields) in entries {
        let event: serde_json::Value = serde_json::from_str(&fields[0].1).unwrap();
        if event["type"] == "message.created" {
            *counts
                .entry(event["message_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    counts
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_redis_outage_loses_nothing_and_duplicates_nothing(db: PgPool) {
    let mut redis = OwnRedis::start();
    let mut config = StackConfig::new();
    config.redis_url = redis.url();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    redis.stop();
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(
            api.send(&alice, &bob, &format!("During the outage {i}"), "hello")
                .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        smtp.mails().is_empty(),
        "nothing can go out while Redis is down"
    );
    assert!(worker.is_running(), "the worker survives the outage");
    redis.restart();

    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;
    eventually(WAIT, "every email", || async { smtp.mails().len() >= 5 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 5, "one email per message");
    for message in &sent {
        let id = message["id"].as_str().unwrap();
        let header = format!("<{id}@convos.test>");
        let all: Vec<_> = mails.iter().map(|m| m.header("Message-ID")).collect();
        assert_eq!(
            mails
                .iter()
                .filter(|m| m.header("Message-ID").as_deref() == Some(header.as_str()))
                .count(),
            1,
            "{header} in {all:?}"
        );
        for user in [&bob.id, &alice.id] {
            let events = created_events(&config.redis_url, &config.prefix, user).await;
            assert_eq!(
                events.get(id),
                Some(&1),
                "exactly one event for {id} to {user}"
            );
        }
    }
    assert_eq!(job_states(&db).await.get("dead"), None);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn smtp_down_means_retries_with_backoff_until_it_is_back(db: PgPool) {
    let config = StackConfig::new();
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let sent = api
        .send(&alice, &bob, "Are you there?", "SMTP is down")
        .await;

    let failures = || async {
        sqlx::query_scalar::<_, i32>(
            "select attempts from jobs where kind = 'notify_email' and state = 'retry'",
        )
        .fetch_optional(&db)
        .await
        .unwrap()
        .unwrap_or(0)
    };
    eventually(WAIT, "two failed attempts", || async {
        failures().await >= 2
    })
    .await;
    let (error, delay): (String, f64) = sqlx::query_as(
        "select last_error, extract(epoch from next_run_at - updated_at)::float8 from jobs where kind = 'notify_email'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(error.starts_with("smtp:"), "{error}");
    assert!(delay > 0.0, "the retry waits: {delay}");
    let d = api
        .get(
            &format!(
                "/api/v1/messages/{}/deliveries",
                sent["id"].as_str().unwrap()
            ),
            &alice,
        )
        .await
        .body;
    assert_eq!(d["items"][0]["status"], "pending");
    assert!(
        d["items"][0].get("detail").is_none(),
        "the sender does not see why"
    );
    let d = api
        .get(
            &format!(
                "/api/v1/messages/{}/deliveries",
                sent["id"].as_str().unwrap()
            ),
            &bob,
        )
        .await
        .body;
    assert_eq!(d["items"][0]["detail"]["reason"], "temporary_failure");
    assert!(
        d["items"][0]["detail"]["error"]
            .as_str()
            .unwrap()
            .starts_with("smtp:"),
        "the recipient sees why"
    );

    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    eventually(WAIT, "the email once SMTP is back", || async {
        smtp.mails().len() == 1
    })
    .await;
    eventually(WAIT, "the job to finish", || all_jobs_finished(&db)).await;
    let (state, attempts): (String, i32) =
        sqlx::query_as("select state, attempts from jobs where kind = 'notify_email'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(state, "done");
    assert!(attempts >= 3, "{attempts}");
    let logged: i64 = sqlx::query_scalar(
        "select count(*) from job_history a join jobs j on j.id = a.job_id \
         where j.kind = 'notify_email' and a.error like 'smtp:%'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        logged,
        i64::from(attempts - 1),
        "every failed attempt is in the history"
    );
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn smtp_down_past_the_last_attempt_leaves_a_dead_job_that_can_be_retried(db: PgPool) {
    let config = StackConfig::new();
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let sent = api.send(&alice, &bob, "Doomed", "nobody listens").await;
    let dead = || async {
        sqlx::query_scalar::<_, uuid::Uuid>(
            "select id from jobs where kind = 'notify_email' and state = 'dead'",
        )
        .fetch_optional(&db)
        .await
        .unwrap()
    };
    eventually(WAIT, "the job to die", || async { dead().await.is_some() }).await;
    let (error, attempts): (String, i32) =
        sqlx::query_as("select last_error, attempts from jobs where kind = 'notify_email'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        error.starts_with("smtp:"),
        "the dead job keeps its last error: {error}"
    );
    assert_eq!(
        attempts,
        convos_core::jobs::JobKind::NotifyEmail.max_attempts()
    );
    let d = api
        .get(
            &format!(
                "/api/v1/messages/{}/deliveries",
                sent["id"].as_str().unwrap()
            ),
            &alice,
        )
        .await
        .body;
    assert_eq!(d["items"][0]["status"], "not_sent");

    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let id = dead().await.unwrap();
    // What an operator's retry does (`POST /api/v1/admin/jobs/{id}/retry`).
    let dead_only = convos_store::ops::JobFilter {
        state: Some("dead".into()),
        ..Default::default()
    };
    let retried = convos_store::ops::retry(&db, &dead_only, Some(id), None)
        .await
        .unwrap();
    assert!(retried.wrote_jobs(), "the job is due again");
    assert_eq!(retried.without_wake().affected, 1);
    let jobs_now = || async {
        sqlx::query_as::<_, (String, String, i32, Option<String>)>(
            "select kind, state, attempts, last_error from jobs",
        )
        .fetch_all(&db)
        .await
        .unwrap()
    };
    let deadline = std::time::Instant::now() + WAIT;
    while smtp.mails().len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no retried email: {:?}",
            jobs_now().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(WAIT, "the job to finish", || all_jobs_finished(&db)).await;
    let d = api
        .get(
            &format!(
                "/api/v1/messages/{}/deliveries",
                sent["id"].as_str().unwrap()
            ),
            &alice,
        )
        .await
        .body;
    assert_eq!(d["items"][0]["status"], "sent");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_worker_killed_mid_job_finishes_everything_after_restart_without_duplicates(db: PgPool) {
    let config = StackConfig::new();
    // Slow SMTP, so the kill lands while emails are being sent.
    let smtp = SmtpSink::serve(config.smtp_port, Duration::from_millis(400));
    let api = start_api(db.clone(), &config).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let mut sent = Vec::new();
    for i in 0..12 {
        sent.push(
            api.send(&alice, &bob, &format!("Message {i}"), "hello")
                .await,
        );
    }
    let url = database_url(&db).await;
    let spawn = || {
        let extra = [
            ("CONVOS_JOB_DEADLINE_SECS", "3"),
            ("CONVOS_WORKER_CONCURRENCY", "1"),
        ];
        WorkerProcess::spawn(WORKER_BIN, &config, &url, &extra)
    };
    let mut first = spawn();
    eventually(WAIT, "some emails to be sent", || async {
        smtp.mails().len() >= 2
    })
    .await;
    // Land inside the next email's SMTP exchange (held 400 ms before its body is accepted), not
    // in the instant between an accepted email and its ledger update, where any SMTP sender
    // can duplicate.
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.0.kill().expect("SIGKILL");
    first.0.wait().unwrap();
    let before = smtp.mails().len();
    assert!(
        before < sent.len(),
        "killed mid-way ({before} of {})",
        sent.len()
    );

    let second = spawn();
    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;
    second.stop();
    let mails = smtp.mails();
    for message in &sent {
        let header = format!("<{}@convos.test>", message["id"].as_str().unwrap());
        let copies = mails
            .iter()
            .filter(|m| m.header("Message-ID").as_deref() == Some(header.as_str()))
            .count();
        assert_eq!(copies, 1, "{header} was sent {copies} times");
    }
    assert_eq!(job_states(&db).await.get("dead"), None);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_email_whose_record_waits_past_the_jobs_time_limit_is_sent_once(db: PgPool) {
    let config = StackConfig {
        job_deadline_secs: 16,
        ..StackConfig::new()
    };
    // The mail server takes two seconds to accept the email: time to hold its record back.
    let smtp = SmtpSink::serve(config.smtp_port, Duration::from_secs(2));
    let api = start_api(db.clone(), &config).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let message = api.send(&alice, &bob, "Lunch?", "At noon").await;
    // Once the job has claimed the delivery, another session holds its row: the email goes
    // out, and its record waits.
    macro_rules! delivery {
        () => {
            "select 1 from deliveries where message_id = $1::text::uuid and claimed_by is not null"
        };
    }
    eventually(WAIT, "the job's claim", || async {
        sqlx::query(delivery!())
            .bind(message["id"].as_str().unwrap())
            .fetch_optional(&db)
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let mut hold = db.begin().await.unwrap();
    sqlx::query(concat!(delivery!(), " for update"))
        .bind(message["id"].as_str().unwrap())
        .execute(&mut *hold)
        .await
        .unwrap();
    eventually(WAIT, "the email", || async { smtp.mails().len() == 1 }).await;

    // Midway between the job's time limit (a fifth of the deadline before its lease ends) and
    // the end of its overrun (a twentieth before), 1.2 s from each; let go at once should a
    // second copy go out meanwhile.
    let until_release: f64 = sqlx::query_scalar(
        "select extract(epoch from deadline_at - now())::float8 - $1 * 0.125 from jobs \
         where kind = 'notify_email'",
    )
    .bind(config.job_deadline_secs as f64)
    .fetch_one(&db)
    .await
    .unwrap();
    let release = tokio::time::Instant::now() + Duration::from_secs_f64(until_release.max(0.0));
    while tokio::time::Instant::now() < release && smtp.mails().len() == 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hold.rollback().await.unwrap();

    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;
    worker.stop().await;
    assert_eq!(smtp.mails().len(), 1, "the email went out once");
    let status: String =
        sqlx::query_scalar("select status from deliveries where message_id = $1::text::uuid")
            .bind(message["id"].as_str().unwrap())
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(status, "sent", "and is recorded sent");
    let (state, attempts): (String, i32) =
        sqlx::query_as("select state, attempts from jobs where kind = 'notify_email'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), attempts),
        ("done", 1),
        "by its first run, which went on past its time limit"
    );
    let states = job_states(&db).await;
    assert_eq!(states.get("dead"), None);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_email_cut_off_before_the_mail_server_answers_takes_one_place_in_the_day(db: PgPool) {
    // An email counts against its recipient's day before it goes (decision 91). A run cut off
    // at its time limit, the mail server still silent, gave nothing back, and each retry took
    // another place: a slow relay could spend a recipient's whole day on emails never sent.
    let config = StackConfig::new();
    let _smtp = SmtpSink::serve(config.smtp_port, Duration::from_secs(60));
    let api = start_api(db.clone(), &config).await;
    let (alice, bob) = (api.user("alice").await, api.user("bob").await);
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    api.send(&alice, &bob, "Lunch?", "At noon").await;

    // The third run's start: the first two were cut off, each after reserving.
    eventually(WAIT, "a third attempt", || async {
        let attempts: Option<i32> =
            sqlx::query_scalar("select attempts from jobs where kind = 'notify_email'")
                .fetch_optional(&db)
                .await
                .unwrap();
        attempts.is_some_and(|a| a >= 3)
    })
    .await;
    let counted: i64 = sqlx::query_scalar("select count(*) from emails")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(counted, 1, "one email, however many runs");
    worker.stop().await;
}
