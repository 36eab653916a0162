//! Tickets that carry several jobs (decision 33): a backlog shares tickets and still runs each
//! job once, and a ticket written by an older worker (one `job_id`) still runs after an upgrade.

use crate::stack::start_api;
use convos_core::events::{Event, stream_key};
use convos_core::jobs::DeliverJob;
use convos_core::jobs::{JobKind, JobTicket};
use convos_core::{MessageId, ThreadId};
use convos_store::jobs;
use convos_testkit::{
    InProcessWorker, OwnRedis, SmtpSink, StackConfig, all_jobs_finished, database_url, eventually,
    store_users,
};
use sqlx::PgPool;
use std::collections::HashSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_backlog_shares_tickets_and_runs_each_job_once(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    // Written while no worker runs: the first relay pass finds all of them due at once.
    let mut sent = HashSet::new();
    for i in 0..120 {
        let message = api.send(&alice, &bob, &format!("Backlog {i}"), "x").await;
        sent.insert(format!("<{}@convos.test>", message["id"].as_str().unwrap()));
    }
    let url = database_url(&db).await;
    let mut settings = config.worker_settings(&url);
    settings.email_daily_cap = 1000;
    settings.email_daily_cap_per_sender = 1000;
    let worker = InProcessWorker::start(settings);
    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;
    worker.stop().await;

    let runs: Vec<i64> = sqlx::query_scalar(
        "select count(*) from job_history a join jobs j on j.id = a.job_id \
         where j.kind in ('deliver', 'notify_email') group by a.job_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(runs.len(), 240, "a delivery and an email for each message");
    assert!(runs.iter().all(|n| *n == 1), "every job ran exactly once");
    let mails: HashSet<String> = smtp
        .mails()
        .iter()
        .filter_map(|m| m.header("Message-ID"))
        .collect();
    assert_eq!(smtp.mails().len(), sent.len(), "no email twice");
    assert_eq!(mails, sent, "every message's email, under its Message-ID");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_ticket_from_an_older_relay_still_runs_its_job(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    api.send(&alice, &bob, "Before the upgrade", "x").await;
    // What an older relay did: dispatch the email job without counting an attempt, and push a
    // ticket naming it alone.
    let leases = convos_store::jobs::dispatch_due(
        &db,
        JobKind::NotifyEmail,
        10,
        500,
        Duration::from_secs(600),
    )
    .await
    .unwrap()
    .leases;
    let ids: Vec<_> = leases.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), 1);
    sqlx::query("update jobs set attempts = attempts - 1 where id = $1")
        .bind(ids[0])
        .execute(&db)
        .await
        .unwrap();
    let old = JobTicket {
        job_id: Some(ids[0]),
        ..JobTicket::default()
    };
    assert_eq!(
        serde_json::to_value(&old).unwrap(),
        serde_json::json!({ "job_id": ids[0] }),
        "the older form, as it sits in Redis"
    );
    let redis = convos_worker::queue::connect(&config.redis_url)
        .await
        .unwrap();
    let mut queue = convos_worker::queue::storage(redis, &config.prefix, JobKind::NotifyEmail, 10);
    convos_worker::queue::push_all(&mut queue, vec![old])
        .await
        .unwrap();

    let url = database_url(&db).await;
    let worker = InProcessWorker::start(config.worker_settings(&url));
    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;
    worker.stop().await;
    let (state, attempts): (String, i32) =
        sqlx::query_as("select state, attempts from jobs where id = $1")
            .bind(ids[0])
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), attempts),
        ("done", 1),
        "run once, from the old ticket"
    );
    assert_eq!(smtp.mails().len(), 1);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_tickets_deliveries_go_to_redis_together_and_a_bad_payload_fails_alone(db: PgPool) {
    // A Redis of its own, where the append script is not loaded yet: the first pipeline of
    // appends meets NOSCRIPT and must load it.
    let redis = OwnRedis::start();
    let mut config = StackConfig::new();
    config.redis_url = redis.url();
    let users = store_users(&db, "deliv", 40).await;
    // Written at once, so the relay's first pass shares them out in tickets of several jobs.
    let mut tx = db.begin().await.unwrap();
    for (i, user) in users.iter().enumerate() {
        let payload = if i == 7 {
            serde_json::json!({"event": "not an event", "users": [user]})
        } else {
            serde_json::to_value(DeliverJob {
                event: Event::MessageCreated {
                    message_id: MessageId::generate(),
                    thread_id: ThreadId::generate(),
                },
                users: vec![*user],
            })
            .unwrap()
        };
        let key = format!("deliver:together:{i:02}");
        jobs::enqueue(
            &mut tx,
            JobKind::Deliver,
            &key,
            None,
            payload,
            Duration::ZERO,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;
    worker.stop().await;

    let ended: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "select key, state, outcome, last_error from jobs where kind = 'deliver' order by key",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(ended.len(), 40);
    for (i, (key, state, outcome, error)) in ended.iter().enumerate() {
        if i == 7 {
            assert_eq!(state, "dead", "{key}");
            assert!(
                error
                    .as_deref()
                    .unwrap_or_default()
                    .contains("malformed payload"),
                "{error:?}"
            );
        } else {
            assert_eq!(state, "done", "{key}: {error:?}");
            assert_eq!(outcome.as_deref(), Some("message.created to 1 stream(s)"));
        }
    }
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for (i, user) in users.iter().enumerate() {
        let events: i64 = redis::cmd("XLEN")
            .arg(stream_key(&config.prefix, *user))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            events,
            i64::from(i != 7),
            "user {i}: each event appended once"
        );
    }
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_users_stream_keeps_no_more_events_than_a_replay_can_use(db: PgPool) {
    // Every flag a user flips appends an event to their stream, kept two hours: at the 300
    // actions a minute allowed, one account kept 36,000 events (about 10 MB of Redis), of
    // which a reconnecting client can be replayed 1,000 at most.
    let mut config = StackConfig::new();
    let redis = OwnRedis::start();
    config.redis_url = redis.url();
    let users = store_users(&db, "flips", 1).await;
    const APPENDED: usize = 1_500;
    let mut tx = db.begin().await.unwrap();
    for i in 0..APPENDED {
        let event = Event::ThreadUpdated {
            thread_id: ThreadId::generate(),
        };
        jobs::enqueue_event(&mut tx, &format!("deliver:flip:{i}"), event, users.clone())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;
    worker.stop().await;

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let kept: usize = redis::cmd("XLEN")
        .arg(stream_key(&config.prefix, users[0]))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (convos_core::events::STREAM_KEEPS..APPENDED).contains(&kept),
        "{kept} of {APPENDED} events kept"
    );
    assert!(
        kept <= convos_core::events::STREAM_KEEPS + 100,
        "at most one stream node past the limit: {kept}"
    );
}
