//! `convos-worker`: runs the background worker until SIGTERM or Ctrl-C, or prints the queue
//! board (`convos-worker queues [--json]`) for scripts and SSH sessions.

use anyhow::Context;
use clap::{Parser, Subcommand};
use convos_worker::config::WorkerSettings;
use secrecy::ExposeSecret;

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
    let settings = WorkerSettings::load()?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            convos_plumbing::telemetry::init(convos_plumbing::LogFormat::of(settings.env));
            convos_worker::run(settings, convos_plumbing::shutdown_signal()).await
        }
        Command::Queues { json } => {
            let limits = convos_store::StatementLimits::NONE;
            let db = convos_store::connect(settings.database_url.expose_secret(), 1, limits)
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
