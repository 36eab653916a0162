//! `convos-worker`: runs the background worker until SIGTERM or Ctrl-C, or prints the queue
//! board (`convos-worker queues [--json]`) for scripts and SSH sessions.

use anyhow::Context;
use clap::{Parser, Subcommand};
use convos_worker::config::WorkerSettings;
use secrecy::ExposeSecret;
use tracing_subscriber::EnvFilter;

/// The Convos background worker.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker (the default).
    Run,
    /// Print the queue board: counts per state, failures, oldest pending job, workers.
    Queues {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings =
        WorkerSettings::load().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
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
        Command::Queues { json } => {
            let db = convos_store::connect(settings.database_url.expose_secret(), 1)
                .await
                .context("could not connect to postgres")?;
            let board = convos_store::ops::board(&db).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&board)?);
            } else {
                print!("{}", convos_worker::board::table(&board));
            }
            Ok(())
        }
    }
}

/// SIGTERM or Ctrl-C. Installed when called, before the worker starts: a signal that arrives
/// right after start-up still stops it gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
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
    }
}
