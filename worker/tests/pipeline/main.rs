//! End-to-end tests of the job pipeline: the API writes messages and their jobs to PostgreSQL,
//! the worker relays them through Redis and runs them against a real SMTP server, and clients
//! receive events over SSE. Real PostgreSQL, Redis and SMTP throughout.

mod bounces;
mod digests;
mod email;
mod email_links;
mod events;
mod ledger;
mod replies;
mod resilience;
mod sse;
mod stack;
mod tickets;
mod vacuum;
mod verification;
mod workers;
