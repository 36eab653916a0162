//! A 20,000-message backlog drains completely, once, without the worker ever stopping and
//! without Redis ever holding more than the relay's ceiling. Its own test binary, so its load
//! does not run beside the latency-sensitive pipeline tests.

use convos_core::jobs::JobKind;
use convos_testkit::{
    InProcessWorker, SmtpSink, StackConfig, all_jobs_finished, database_url, job_states,
    store_users, write_backlog,
};
use sqlx::PgPool;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const MESSAGES: usize = 20_000;

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_20000_message_backlog_drains_once_with_redis_kept_shallow(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    // Senders and recipients: every message is its own thread, so every one gets an email.
    let users = store_users(&db, "user", 20).await;
    let started = Instant::now();
    write_backlog(&db, &users, MESSAGES, 8).await.unwrap();
    eprintln!(
        "backlog of {MESSAGES} messages written in {:?}",
        started.elapsed()
    );
    let pending: i64 = sqlx::query_scalar("select count(*) from jobs where state = 'pending'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        pending,
        2 * MESSAGES as i64,
        "a deliver and a notify job per message, all waiting"
    );

    let mut settings = config.worker_settings(&database_url(&db).await);
    // The daily cap would (rightly) stop most of these emails; lift it for this test.
    settings.email_daily_cap = i64::MAX;
    settings.email_daily_cap_per_sender = i64::MAX;
    settings.queue_ceiling = 500;
    settings.vacuum_every_secs = 2;
    let ceiling = settings.queue_ceiling;
    let worker = InProcessWorker::start(settings);
    let redis = convos_worker::queue::connect(&config.redis_url)
        .await
        .unwrap();
    let started = Instant::now();
    let mut deepest = 0;
    while !all_jobs_finished(&db).await {
        assert!(worker.is_running(), "the worker never exits");
        for kind in JobKind::ALL {
            let depth = convos_worker::queue::depth(&mut redis.clone(), &config.prefix, kind)
                .await
                .unwrap();
            deepest = deepest.max(depth);
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the backlog drains: {:?}",
            job_states(&db).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "drained in {:?}; deepest Redis queue {deepest}",
        started.elapsed()
    );
    assert!(
        deepest <= ceiling,
        "Redis held {deepest} tasks, over the ceiling of {ceiling}"
    );
    let states = job_states(&db).await;
    assert_eq!(states.get("dead"), None, "{states:?}");
    let twice: i64 = sqlx::query_scalar("select count(*) from (select job_id from job_history group by job_id having count(*) > 1) t")
        .fetch_one(&db)
        .await
        .unwrap();
    let why: Vec<(String, i32, Option<String>, i64)> = sqlx::query_as(
        "select j.kind, a.attempt, left(a.error, 60), count(*) from job_history a \
         join jobs j on j.id = a.job_id group by 1, 2, 3 order by 4 desc limit 8",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(twice, 0, "no job ran twice: {why:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = smtp.mails();
    let ids: HashSet<String> = mails
        .iter()
        .filter_map(|m| m.header("Message-ID"))
        .collect();
    assert_eq!(mails.len(), MESSAGES, "one email per message");
    assert_eq!(ids.len(), MESSAGES, "no email twice");
    // Finished tasks do not pile up in Redis: the scheduled vacuum removes them.
    let mut stored = i64::MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stored > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stored = 0;
        for kind in JobKind::ALL {
            stored += convos_worker::queue::stored(&mut redis.clone(), &config.prefix, kind)
                .await
                .unwrap();
        }
    }
    assert_eq!(
        stored, 0,
        "Redis still holds {stored} finished tasks after the drain"
    );
    worker.stop().await;
}
