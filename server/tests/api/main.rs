//! End-to-end tests of the HTTP API: the real server on a free port, each test with its own
//! PostgreSQL database (`#[sqlx::test]`) and its own Redis key prefix.

mod accounts;
mod admin;
mod blocks;
mod deliveries;
mod ephemeral;
mod errors;
mod idempotency;
mod limits;
mod logins;
mod messages;
mod openapi;
mod operations;
mod reports;
mod resources;
mod search;
mod sessions;
mod threads;
mod verification;

/// Waits until `n` statements of the test database `db` wait on a lock (requests the test holds
/// up, as slow statements would be).
async fn until_statements_wait(db: &sqlx::PgPool, n: i64) {
    convos_testkit::eventually(
        std::time::Duration::from_secs(10),
        &format!("{n} statements waiting"),
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock' \
                 and datname = current_database()",
            )
            .fetch_one(db)
            .await
            .unwrap();
            waiting == n
        },
    )
    .await;
}
