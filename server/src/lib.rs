//! The Convos HTTP API server.
//!
//! `main.rs` only parses the command line; everything else is here so tests can boot the real
//! application on a free port with [`startup::Application`].

pub mod auth;
pub mod client_addr;
pub mod config;
pub mod costly;
pub mod error;
pub mod events;
pub mod extract;
pub mod fair_share;
pub mod hashing;
pub mod in_flight;
pub mod listener;
pub mod login_limits;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod parse_errors;
pub mod rate_limit;
pub mod redis_conn;
pub mod routes;
pub mod seed;
pub mod startup;
pub mod state;
pub mod streams;
pub mod strict_json;
pub mod wake;
pub mod write_deadline;

pub use convos_store::MIGRATOR;
