//! Process plumbing shared by `convos-server` and `convos-worker`, so both load their
//! configuration the same way, refuse the same unsafe production settings, and stop on the same
//! signals.

pub mod settings;
pub mod shutdown;

pub use settings::{ConfigError, DEV_PUBLIC_URL, DEV_SECRET_KEY, Environment};
pub use shutdown::shutdown_signal;
