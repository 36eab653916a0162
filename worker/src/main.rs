//! `convos-worker`: runs the background worker until SIGTERM or Ctrl-C, prints the queue
//! board (`convos-worker queues [--json]`) for scripts and SSH sessions, or sends email to the
//! reply domain by hand (`reply`, `send-eml`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use convos_worker::config::WorkerSettings;
use secrecy::ExposeSecret;
use std::io::Write;

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
    /// Answer a notification email (an .eml file, e.g. from the development mail folder) as its
    /// recipient, through the SMTP listener of the reply domain.
    Reply {
        /// The notification.
        file: std::path::PathBuf,
        /// What to answer.
        text: String,
        /// The listener (default: `CONVOS_INBOUND_SMTP_ADDR`).
        #[arg(long)]
        smtp: Option<std::net::SocketAddr>,
    },
    /// Hand a raw message (.eml) to the SMTP listener of the reply domain, as its MX would.
    SendEml {
        /// The message.
        file: std::path::PathBuf,
        /// The envelope recipient (e.g. `reply+…@<domain>` or `bounce+…@<domain>`).
        #[arg(long)]
        to: String,
        /// The envelope sender; empty for a bounce's null sender.
        #[arg(long, default_value = "")]
        from: String,
        /// The listener (default: `CONVOS_INBOUND_SMTP_ADDR`).
        #[arg(long)]
        smtp: Option<std::net::SocketAddr>,
    },
}

fn listener(
    given: Option<std::net::SocketAddr>,
    settings: &WorkerSettings,
) -> anyhow::Result<std::net::SocketAddr> {
    given
        .or(settings.inbound_smtp_addr)
        .context("no SMTP listener: pass --smtp or set CONVOS_INBOUND_SMTP_ADDR")
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
            let db =
                convos_store::connect(settings.database_url.expose_secret(), 1, limits).await?;
            let board = convos_store::ops::board(&db).await?;
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&board)?)
            } else {
                convos_worker::board::table(&board)
            };
            // A reader that stops early (`| head`) is no error: `print!` panicked on the
            // broken pipe.
            match std::io::stdout().lock().write_all(text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Command::Reply { file, text, smtp } => {
            let raw = std::fs::read(&file)
                .with_context(|| format!("could not read {}", file.display()))?;
            let (from, to, answer) = convos_worker::by_hand::answer(&raw, &text)?;
            let smtp = listener(smtp, &settings)?;
            convos_worker::by_hand::send(smtp, &from, &to, &answer).await?;
            println!("sent: from {from} to {to} via {smtp}");
            Ok(())
        }
        Command::SendEml {
            file,
            to,
            from,
            smtp,
        } => {
            let raw = std::fs::read(&file)
                .with_context(|| format!("could not read {}", file.display()))?;
            let smtp = listener(smtp, &settings)?;
            convos_worker::by_hand::send(smtp, &from, &to, &raw).await?;
            println!("sent: {} to {to} via {smtp}", file.display());
            Ok(())
        }
    }
}
