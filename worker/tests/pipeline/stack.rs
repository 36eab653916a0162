//! The pipeline tests' API server: the test kit's, over the test's stack, with verification
//! emails held back until a test lets them go.

use convos_testkit::{StackConfig, TestServer};
use sqlx::PgPool;

/// The worker binary, for tests that run it as a process of its own.
pub const WORKER_BIN: &str = env!("CARGO_BIN_EXE_convos-worker");

/// Starts the API with the `verify_email` queue paused: the users of these tests confirm their
/// address at once (see [`convos_testkit::Client::user`]), which skips their waiting
/// verification emails, so no verification email races the confirmation into the SMTP sink.
/// Tests of the verification email itself call [`send_verification_emails`].
pub async fn start_api(db: PgPool, config: &StackConfig) -> TestServer {
    sqlx::query("insert into queue_controls (kind, paused) values ('verify_email', true)")
        .execute(&db)
        .await
        .expect("verification emails paused");
    TestServer::start(db, config.server_settings()).await
}

/// Lets the worker send verification emails (paused by [`start_api`]).
pub async fn send_verification_emails(db: &PgPool) {
    sqlx::query("delete from queue_controls where kind = 'verify_email'")
        .execute(db)
        .await
        .expect("verification emails resumed");
}

/// Whether every email notification job has finished (verification emails stay paused, see
/// [`start_api`]).
pub async fn notifications_finished(db: &PgPool) -> bool {
    let open: i64 = sqlx::query_scalar(
        "select count(*) from jobs where kind = 'notify_email' \
           and state not in ('done', 'skipped', 'dead', 'discarded')",
    )
    .fetch_one(db)
    .await
    .unwrap();
    open == 0
}
