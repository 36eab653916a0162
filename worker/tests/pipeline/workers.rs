//! Several workers at once: each job runs once, and the periodic purge once per period.

use crate::stack::{WORKER_BIN, start_api};
use convos_testkit::{
    InProcessWorker, SmtpSink, StackConfig, WorkerProcess, all_jobs_finished, database_url,
    eventually, free_port, parse_metrics,
};
use serde_json::json;
use sqlx::PgPool;
use std::collections::HashSet;
use std::time::Duration;

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn two_workers_run_each_job_once(db: PgPool) {
    let config = StackConfig::new();
    // Each email takes 50 ms and each worker runs two at a time, so one worker cannot drain the
    // queue before the other polls it: both must take jobs for "each once" to mean anything.
    let smtp = SmtpSink::serve(config.smtp_port, Duration::from_millis(50));
    let api = start_api(db.clone(), &config).await;
    let url = database_url(&db).await;
    let mut settings = config.worker_settings(&url);
    settings.email_daily_cap = 1000;
    settings.email_daily_cap_per_sender = 1000;
    settings.worker_concurrency = 2;
    let one = InProcessWorker::start(settings.clone());
    let two = InProcessWorker::start(settings);
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let mut sent = Vec::new();
    for i in 0..40 {
        sent.push(
            api.send(&alice, &bob, &format!("Parallel {i}"), "x").await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    eventually(Duration::from_secs(60), "every job", || {
        all_jobs_finished(&db)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs: Vec<(i64,)> = sqlx::query_as("select count(*) from job_history group by job_id")
        .fetch_all(&db)
        .await
        .unwrap();
    let repeated: Vec<(String, i32, Option<String>, String)> = sqlx::query_as(
        "select j.kind, a.attempt, a.error, a.worker from job_history a join jobs j on j.id = a.job_id \
         where a.job_id in (select job_id from job_history group by job_id having count(*) > 1)",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        runs.iter().all(|(n,)| *n == 1),
        "every job ran exactly once: {repeated:?}"
    );
    let workers: i64 = sqlx::query_scalar("select count(distinct worker) from job_history")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(workers, 2, "both workers took jobs");
    let mails = smtp.mails();
    assert_eq!(mails.len(), sent.len());
    let ids: HashSet<String> = mails
        .iter()
        .filter_map(|m| m.header("Message-ID"))
        .collect();
    assert_eq!(ids.len(), sent.len(), "no email twice");
    one.stop().await;
    two.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_purge_runs_once_per_period_across_workers_and_erases_expired_bodies(db: PgPool) {
    let mut config = StackConfig::new();
    config.purge_every_secs = 1;
    let _smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let keep = api.send(&alice, &bob, "Mixed", "stays").await;
    let thread = keep["thread_id"].as_str().unwrap().to_owned();
    let gone = api
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &alice,
            json!({"body": "secret", "expires_in": 10}),
        )
        .await
        .body;
    let once = api
        .post(
            "/api/v1/messages",
            &alice,
            json!({"recipient": "bob", "subject": "Once", "body": "read me once", "read_once": true}),
        )
        .await
        .body;
    let once_id = once["id"].as_str().unwrap();
    api.get(&format!("/api/v1/messages/{once_id}"), &bob).await;
    sqlx::query("update messages set expires_at = now() - interval '1 second' where id = $1::uuid")
        .bind(gone["id"].as_str().unwrap())
        .execute(&db)
        .await
        .unwrap();

    // History past its retention: an old finished job.
    sqlx::query(
        "insert into jobs (id, kind, key, payload, state, max_attempts, finished_at) \
         values (gen_random_uuid(), 'deliver', 'ancient', '{}', 'done', 3, now() - interval '30 days')",
    )
    .execute(&db)
    .await
    .unwrap();
    let url = database_url(&db).await;
    let one = InProcessWorker::start(config.worker_settings(&url));
    let two = InProcessWorker::start(config.worker_settings(&url));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    one.stop().await;
    two.stop().await;

    let periods: Vec<(String, String, i32)> = sqlx::query_as(
        "select key, state, attempts from jobs where kind = 'purge_expired' order by key",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let keys: HashSet<&String> = periods.iter().map(|(k, _, _)| k).collect();
    assert_eq!(keys.len(), periods.len(), "one purge job per period");
    assert!(
        (3..=5).contains(&periods.len()),
        "about one per second over 3.5 s: {periods:?}"
    );
    let runs: i64 = sqlx::query_scalar(
        "select count(*) from job_history a join jobs j on j.id = a.job_id where j.kind = 'purge_expired'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let finished = periods.iter().filter(|(_, s, _)| s == "done").count() as i64;
    assert_eq!(runs, finished, "each period's purge ran once");

    let bodies: Vec<(String, Option<String>, bool)> = sqlx::query_as(
        "select id::text, body, purged_at is not null from messages order by created_at",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let find = |id: &str| bodies.iter().find(|(i, _, _)| i == id).unwrap().clone();
    assert_eq!(
        find(keep["id"].as_str().unwrap()).1.as_deref(),
        Some("stays")
    );
    assert_eq!(
        find(gone["id"].as_str().unwrap()),
        (gone["id"].as_str().unwrap().to_owned(), None, true)
    );
    assert_eq!(find(once_id), (once_id.to_owned(), None, true));
    // The counters were settled: what is stored now equals what the listing showed.
    let (received, unread): (i32, i32) = sqlx::query_as(
        "select received_count, unread_count from thread_participants where thread_id = $1::uuid and user_id = $2::uuid",
    )
    .bind(&thread)
    .bind(&bob.id)
    .fetch_one(&db)
    .await
    .unwrap();
    let ancient: i64 = sqlx::query_scalar("select count(*) from jobs where key = 'ancient'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(ancient, 0, "finished jobs past their retention are deleted");
    assert_eq!((received, unread), (1, 1));
    let t = api
        .get(&format!("/api/v1/threads/{thread}"), &bob)
        .await
        .body;
    assert_eq!(t["message_count"], 1);
    assert_eq!(t["unread_count"], 1);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_paused_queue_starts_nothing_in_two_worker_processes_and_drains_on_resume(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let url = database_url(&db).await;
    // Two worker processes of their own, sharing only PostgreSQL and Redis.
    let one = WorkerProcess::spawn(WORKER_BIN, &config, &url, &[]);
    let two = WorkerProcess::spawn(WORKER_BIN, &config, &url, &[]);
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let root: uuid::Uuid = alice.id.parse().unwrap();
    let paused =
        convos_store::ops::set_paused(&db, convos_core::jobs::JobKind::NotifyEmail, true, root)
            .await
            .unwrap();
    assert!(!paused.wrote_jobs(), "pausing makes no job due");
    assert!(paused.without_wake(), "the queue was running");
    for i in 0..6 {
        api.send(&alice, &bob, &format!("Held {i}"), "x").await;
    }
    // Live events still flow; emails wait.
    eventually(Duration::from_secs(20), "deliver jobs", || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from jobs where kind = 'deliver' and state = 'done'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
            == 6
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started: i64 = sqlx::query_scalar(
        "select count(*) from job_history a join jobs j on j.id = a.job_id where j.kind = 'notify_email'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(started, 0, "no worker started a paused job");
    assert!(smtp.mails().is_empty());
    let board = convos_store::ops::board(&db).await.unwrap();
    let notify = email_queue(&board);
    assert!(notify.paused);
    assert_eq!(notify.pending, 6, "they keep waiting, counted as pending");
    assert_eq!(board.workers.len(), 2, "both workers report heartbeats");

    let resumed =
        convos_store::ops::set_paused(&db, convos_core::jobs::JobKind::NotifyEmail, false, root)
            .await
            .unwrap();
    assert!(resumed.wrote_jobs(), "resuming makes the waiting jobs due");
    assert!(resumed.without_wake(), "the queue was paused");
    eventually(Duration::from_secs(30), "the queue to drain", || {
        all_jobs_finished(&db)
    })
    .await;
    eventually(Duration::from_secs(10), "the emails", || async {
        smtp.mails().len() == 6
    })
    .await;
    let board = convos_store::ops::board(&db).await.unwrap();
    let notify = email_queue(&board);
    assert_eq!(
        (notify.succeeded_1h, notify.failed_1h),
        (6, 0),
        "the board counts what the two workers recorded: {notify:?}"
    );
    one.stop();
    two.stop();
}

/// The email queue's line of `board`.
fn email_queue(board: &convos_store::ops::Board) -> &convos_store::ops::QueueStats {
    board
        .queues
        .iter()
        .find(|q| q.name == "notify_email")
        .unwrap()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn worker_metrics_count_jobs_and_emails_and_match_the_board(db: PgPool) {
    let config = StackConfig::new();
    let _smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let port = free_port();
    let mut settings = config.worker_settings(&database_url(&db).await);
    settings.worker_metrics_addr = Some(([127, 0, 0, 1], port).into());
    let worker = InProcessWorker::start(settings);
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    api.send(&alice, &bob, "Counted", "x").await;
    eventually(Duration::from_secs(20), "jobs", || all_jobs_finished(&db)).await;
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = parse_metrics(&text);
    assert_eq!(
        metrics.get(r#"convos_jobs_started_total{queue="deliver"}"#),
        Some(&1.0),
        "{text}"
    );
    assert_eq!(
        metrics.get(r#"convos_jobs_finished_total{outcome="done",queue="notify_email"}"#),
        Some(&1.0)
    );
    assert_eq!(
        metrics.get(r#"convos_emails_total{outcome="sent",reason=""}"#),
        Some(&1.0)
    );
    assert!(metrics.contains_key(r#"convos_job_duration_seconds_count{queue="deliver"}"#));
    let board = convos_store::ops::board(&db).await.unwrap();
    for q in &board.queues {
        let dead = metrics[&format!("convos_queue_jobs{{queue=\"{}\",state=\"dead\"}}", q.name)];
        assert_eq!(dead, q.dead as f64);
        let ok = metrics[&format!(
            "convos_queue_succeeded{{queue=\"{}\",window=\"1h\"}}",
            q.name
        )];
        assert_eq!(ok, q.succeeded_1h as f64, "{}", q.name);
    }
    assert_eq!(metrics["convos_workers_seen"], 1.0);
    worker.stop().await;
}
