//! The test kit: what the server, worker and client tests (and the benchmarks) need to stand up
//! the real thing and talk to it, written once.
//!
//! Everything here runs against real services: PostgreSQL (one `#[sqlx::test]` database per
//! test, see [`env::database_url`]), Redis (shared, each test under its own key prefix, or a
//! private [`OwnRedis`] a test can stop), an SMTP server in this process ([`SmtpSink`]), the API
//! server ([`TestServer`]) and the worker ([`InProcessWorker`], [`WorkerProcess`]).
//!
//! - [`env`]: the services' URLs, fresh key prefixes, free ports, a private Redis.
//! - [`server`]: the server's test settings and a server running in this process.
//! - [`worker`]: the worker in this process or as its own process.
//! - [`stack`]: the settings one test's server and worker share.
//! - [`client`]: one HTTP client for tests: raw answers, sign-up, login, sending.
//! - [`smtp`]: an SMTP server that keeps what it receives.
//! - [`metrics`]: Prometheus text, parsed strictly.
//! - [`fixtures`]: rows written straight through the store, and waiting on the job ledger.
//!
//! Tests set `TEST_LOG=1` to see the server's and worker's logs.

pub mod client;
pub mod env;
pub mod fixtures;
pub mod metrics;
pub mod server;
pub mod smtp;
pub mod stack;
pub mod worker;

pub use client::{Answer, Client, TestUser, ends_within, id, open_stream};
pub use env::{OwnRedis, database_url, database_url_of, free_port, fresh_prefix, redis_url};
pub use fixtures::{
    all_jobs_finished, eventually, job_states, store_users, until_a_lock_is_awaited, write_backlog,
};
pub use metrics::parse_metrics;
pub use server::{TestServer, server_settings};
pub use smtp::{Mail, SmtpSink};
pub use stack::StackConfig;
pub use worker::{InProcessWorker, WorkerProcess};

/// Turns on the services' logs for this test process when `TEST_LOG` is set (the first call
/// installs the subscriber; later ones keep it).
pub(crate) fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        convos_plumbing::telemetry::init(convos_plumbing::LogFormat::Pretty);
    }
}
