//! `cargo xtask`: the one front door for running Convos locally and testing it.
//!
//! - `cargo xtask dev`: PostgreSQL and Redis (found, started or installed), migrations, demo
//!   data, then the server and the worker, until Ctrl-C.
//! - `cargo xtask test`: the same bootstrap, then formatting, lints, the whole test suite and
//!   the API conformance run against the OpenAPI document.
//! - `cargo xtask conformance`: that conformance run alone.
//! - `cargo xtask bench`: release builds and the benchmark suite; writes `BENCHMARKS.md`.

mod bench;
mod conformance;
mod dev;
mod run;
mod services;
mod test;

use clap::{Parser, Subcommand};

/// Convos development tasks.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform locally with demo data.
    Dev(dev::DevArgs),
    /// Run the whole test suite against real PostgreSQL and Redis.
    Test(test::TestArgs),
    /// Measure the platform against baselines taken in the same run; writes BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Start PostgreSQL and Redis only and print their URLs, until Ctrl-C.
    Services,
    /// Only the API conformance run of `cargo xtask test` (Schemathesis against the OpenAPI
    /// document).
    Conformance(conformance::ConformanceArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev(args) => dev::run(args),
        Command::Test(args) => test::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Conformance(args) => {
            let services = services::Services::start(services::Profile::Test)?;
            conformance::run(&services, &args)
        }
        Command::Services => {
            let stop = run::stop_on_ctrl_c()?;
            let services = services::Services::start(services::Profile::Dev)?;
            println!("DATABASE_URL={}", services.database_url);
            println!("REDIS_URL={}", services.redis_url);
            println!("Press Ctrl-C to stop.");
            run::wait_for(&stop);
            Ok(())
        }
    }
}
