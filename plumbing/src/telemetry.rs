//! Logging: `tracing` with an env filter (`RUST_LOG`), pretty in development and JSON in
//! production, the same for every process.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured.
    Pretty,
    /// One JSON object a line.
    Json,
}

impl LogFormat {
    /// The format `env` defaults to.
    pub fn of(env: crate::Environment) -> Self {
        match env {
            crate::Environment::Development => LogFormat::Pretty,
            crate::Environment::Production => LogFormat::Json,
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides the default filter. A second call (tests
/// booting several apps in one process) keeps the first subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    drop(result);
}
