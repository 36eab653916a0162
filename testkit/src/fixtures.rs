//! Rows written straight through the store (users who never log in, a backlog of messages),
//! and waiting on the job ledger.

use convos_core::api::NewContent;
use convos_core::{Body, DisplayName, EmailAddress, Subject, UserId, Username};
use convos_store::jobs::NotifySettings;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `count` accounts named `{prefix}{n:02}` (`@example.com`) written straight into the store;
/// they never log in.
pub async fn store_users(db: &PgPool, prefix: &str, count: usize) -> Vec<UserId> {
    let mut users = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("{prefix}{i:02}");
        let user = convos_store::users::insert(
            db,
            &Username::parse(&name).expect("a valid username"),
            &EmailAddress::parse(&format!("{name}@example.com")).expect("a valid address"),
            &DisplayName::parse(&name).expect("a valid display name"),
            "not-a-real-hash",
            false,
        )
        .await
        .expect("the user is stored");
        users.push(user.id);
    }
    users
}

/// Writes `messages` messages through the store, each its own thread (`Backlog {n}`) between
/// two of `users` in rotation, from `writers` tasks at once. Every message owes a delivery job
/// and (with no notification delay) an email job; the relays are not woken, so the jobs wait
/// for a worker's first pass.
pub async fn write_backlog(
    db: &PgPool,
    users: &[UserId],
    messages: usize,
    writers: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(users.len() >= 2, "a backlog needs two users at least");
    let notify = NotifySettings {
        notify_delay: Duration::ZERO,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers.max(1) {
        let (db, users) = (db.clone(), users.to_vec());
        tasks.spawn(async move {
            for n in (writer..messages).step_by(writers.max(1)) {
                let from = users[n % users.len()];
                let to = users[(n + 1 + n / users.len()) % users.len()];
                let to = if to == from {
                    users[(n + 2) % users.len()]
                } else {
                    to
                };
                let content = NewContent {
                    body: Body::parse(&format!("Backlog message {n}: the parcel is on its way."))?,
                    expires_in: None,
                    read_once: false,
                };
                convos_store::messages::create_thread(
                    &db,
                    &notify,
                    from,
                    to,
                    &Subject::parse(&format!("Backlog {n}"))?,
                    &content,
                    None,
                )
                .await?
                .without_wake();
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Job counts by state.
pub async fn job_states(db: &PgPool) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("select state, count(*) from jobs group by state")
            .fetch_all(db)
            .await
            .expect("jobs are counted");
    rows.into_iter().collect()
}

/// Whether every job has finished (done, skipped or dead).
pub async fn all_jobs_finished(db: &PgPool) -> bool {
    let open: i64 = sqlx::query_scalar(
        "select count(*) from jobs where state not in ('done', 'skipped', 'dead')",
    )
    .fetch_one(db)
    .await
    .expect("open jobs are counted");
    open == 0
}

/// Waits until `check` holds, polling every 50 ms; panics naming `what` after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a statement in `db`'s database waits for a lock (a request under test has
/// reached a row the test's own transaction holds), or `over()` says the request ended
/// without, for 5 s at most: how a test stages a race at the moment it happens.
pub async fn until_a_lock_is_awaited(db: &PgPool, over: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !over() {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock' \
             and datname = current_database()",
        )
        .fetch_one(db)
        .await
        .expect("the waits are read");
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
