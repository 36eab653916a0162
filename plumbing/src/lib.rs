//! Process plumbing shared by `convos-server` and `convos-worker`, so both load their
//! configuration the same way, refuse the same unsafe production settings, log the same way,
//! expose metrics the same way, and stop on the same signals.

pub mod inbound_caps;
pub mod metrics;
pub mod networks;
pub mod rate_limit;
pub mod redis_client;
pub mod request_rate;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use settings::{ConfigError, DEV_PUBLIC_URL, DEV_SECRET_KEY, Environment};
pub use shutdown::shutdown_signal;
pub use telemetry::LogFormat;
