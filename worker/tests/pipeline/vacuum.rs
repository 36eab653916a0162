//! Redis keeps no trace of finished tasks: after a drain and a vacuum pass, what is left under
//! the prefix is the per-user event streams (kept on purpose) and the live workers'
//! registrations, which go too when the worker stops.

use convos_testkit::{
    InProcessWorker, SmtpSink, StackConfig, all_jobs_finished, database_url, eventually,
    job_states, store_users, write_backlog,
};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;

const MESSAGES: usize = 300;

/// Keys under `prefix`, grouped by shape (ids as `*`), with their count, type and entries;
/// except the event streams and `{q}:signal` (apalis' "tasks may be waiting" flag, which holds
/// no task). With `workers` false, also except the live workers' registrations (`{q}:workers`,
/// `{q}:workers:metadata:{name}`).
async fn leftovers(redis: &mut ConnectionManager, prefix: &str, workers: bool) -> Vec<String> {
    let keys: Vec<String> = redis.keys(format!("{prefix}*")).await.unwrap();
    let mut groups: BTreeMap<(String, String), (usize, i64)> = BTreeMap::new();
    for key in keys {
        let name = &key[prefix.len()..];
        let registration = name.ends_with(":workers") || name.contains(":workers:metadata:");
        if name.starts_with("events:") || name.ends_with(":signal") || (registration && !workers) {
            continue;
        }
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(redis)
            .await
            .unwrap();
        let entries: i64 = match kind.as_str() {
            "hash" => redis.hlen(&key).await.unwrap(),
            "set" => redis.scard(&key).await.unwrap(),
            "zset" => redis.zcard(&key).await.unwrap(),
            "list" => redis.llen(&key).await.unwrap(),
            _ => 1,
        };
        let shape = name
            .split(':')
            .map(|part| if part.len() >= 20 { "*" } else { part })
            .collect::<Vec<_>>()
            .join(":");
        let group = groups.entry((shape, kind)).or_default();
        group.0 += 1;
        group.1 += entries;
    }
    groups
        .into_iter()
        .map(|((shape, kind), (keys, entries))| {
            format!("{shape}: {keys} {kind} key(s), {entries} entries")
        })
        .collect()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_drain_leaves_no_task_data_in_redis_after_a_vacuum(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let users = store_users(&db, "drain", 4).await;
    // Written before the worker starts: a backlog, a deliver and a notify_email job per message.
    write_backlog(&db, &users, MESSAGES, 1).await.unwrap();
    let mut settings = config.worker_settings(&database_url(&db).await);
    settings.email_daily_cap = i64::MAX;
    settings.email_daily_cap_per_sender = i64::MAX;
    settings.vacuum_every_secs = 1;
    let worker = InProcessWorker::start(settings);
    let mut redis = convos_worker::queue::connect(&config.redis_url)
        .await
        .unwrap();
    eventually(Duration::from_secs(120), "the drain", || {
        all_jobs_finished(&db)
    })
    .await;
    let states = job_states(&db).await;
    assert_eq!(states.get("dead"), None, "{states:?}");
    assert_eq!(smtp.mails().len(), MESSAGES, "one email per message");

    // Within a few vacuum passes: no payload (`{q}:data`), metadata or result (`{q}:meta:{id}`),
    // done or dead set member, scheduled, active or in-flight task, nor delivery marker.
    let mut left = Vec::new();
    for _ in 0..100 {
        left = leftovers(&mut redis, &config.prefix, false).await;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left.is_empty(),
        "finished tasks left in Redis after the vacuum: {left:?}"
    );
    // The events themselves stay, for reconnecting clients.
    let streams: Vec<String> = redis
        .keys(format!("{}events:*", config.prefix))
        .await
        .unwrap();
    assert_eq!(streams.len(), users.len(), "{streams:?}");

    // A stopped worker takes its registrations with it.
    worker.stop().await;
    let left = leftovers(&mut redis, &config.prefix, true).await;
    assert!(
        left.is_empty(),
        "the stopped worker left keys in Redis: {left:?}"
    );
}
