//! `convos-server`: parses the command line and hands over to the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use convos_core::api::CreateUserRequest;
use convos_plumbing::shutdown_signal;
use convos_server::config::Settings;
use convos_server::startup::Application;
use convos_server::{operator, seed};
use secrecy::ExposeSecret;

/// The Convos API server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Administrative tasks that need no SQL.
    Admin {
        #[command(subcommand)]
        command: Admin,
    },
}

#[derive(Subcommand)]
enum Admin {
    /// Create an account (optionally an admin).
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// The password; prefer `--password-env` so it stays out of shell history.
        #[arg(long, required_unless_present = "password_env")]
        password: Option<String>,
        /// Read the password from this environment variable instead.
        #[arg(long)]
        password_env: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        admin: bool,
    },
    /// Create the demo accounts (alice, bob, carol) and a few threads, unless present.
    SeedDemo {
        #[arg(long, env = "CONVOS_DEMO_PASSWORD")]
        password: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    convos_plumbing::telemetry::init(settings.log_format());
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Migrate => {
            migrated(&settings).await?;
            println!("migrations applied");
        }
        Command::Admin { command } => {
            let db = migrated(&settings).await?;
            match command {
                Admin::CreateUser {
                    username,
                    email,
                    password,
                    password_env,
                    display_name,
                    admin,
                } => {
                    let password = match password_env {
                        Some(var) => std::env::var(&var)
                            .with_context(|| format!("environment variable {var} is not set"))?,
                        None => password.unwrap_or_default(),
                    };
                    let request = CreateUserRequest {
                        username: Some(username),
                        email: Some(email),
                        password: Some(password),
                        display_name,
                    };
                    let user = operator::create_verified_user(&db, &request, admin).await?;
                    println!(
                        "created {}user {} ({})",
                        if admin { "admin " } else { "" },
                        user.username,
                        user.id
                    );
                }
                Admin::SeedDemo { password } => {
                    if seed::seed_demo(&db, &password).await? {
                        println!("demo data created");
                    } else {
                        println!("demo data already present");
                    }
                }
            }
        }
    }
    Ok(())
}

/// A small pool over a database with every migration applied. Migrations and admin commands
/// are not requests: no statement limit.
async fn migrated(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    let limits = convos_store::StatementLimits::NONE;
    let db = convos_store::connect(settings.database_url.expose_secret(), 2, limits).await?;
    convos_server::MIGRATOR
        .run(&db)
        .await
        .context("could not apply migrations")?;
    Ok(db)
}
