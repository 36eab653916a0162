//! `convos-worker`: runs the background worker until SIGTERM or Ctrl-C.

use convos_worker::config::WorkerSettings;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings =
        WorkerSettings::load().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if std::env::var("CONVOS_ENV").as_deref() == Ok("production") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    convos_worker::run(settings, shutdown_signal()).await
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "could not listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
