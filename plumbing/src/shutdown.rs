//! Stopping on SIGTERM or Ctrl-C.

use std::future::Future;

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is called, not
/// when it is first awaited: a signal arriving in between must still mean a graceful stop, not
/// the default kill. Call it from within the runtime, before start-up work.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "could not listen for SIGTERM/SIGINT");
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutting down: finishing in-flight work");
    }
}
