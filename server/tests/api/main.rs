//! End-to-end tests of the HTTP API: the real server on a free port, each test with its own
//! PostgreSQL database (`#[sqlx::test]`) and its own Redis key prefix.

mod accounts;
mod admin;
mod deliveries;
mod ephemeral;
mod errors;
mod idempotency;
mod limits;
mod logins;
mod messages;
mod openapi;
mod operations;
mod resources;
mod search;
mod sessions;
mod threads;
mod verification;
