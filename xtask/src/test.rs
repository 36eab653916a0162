//! `cargo xtask test`: formatting, lints and every test, against real PostgreSQL and Redis.

use crate::run::{self, step};
use crate::services::{Profile, Services};
use std::process::Command;
use std::sync::atomic::AtomicBool;

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// Skip `cargo fmt --check` and clippy (faster local iterations).
    #[arg(long)]
    no_lint: bool,
    /// Skip booting the dev platform at the end.
    #[arg(long)]
    no_dev_check: bool,
    /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

/// Runs `cargo xtask test`.
pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = run::root();
    if !args.no_lint {
        step("checking formatting");
        run::run(
            Command::new(&cargo)
                .current_dir(&root)
                .args(["fmt", "--all", "--", "--check"]),
        )?;
        step("running clippy");
        run::run(Command::new(&cargo).current_dir(&root).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    let services = Services::start(Profile::Test)?;
    step("running the test suite");
    run::run(
        Command::new(&cargo)
            .current_dir(&root)
            .args(["test", "--workspace"])
            .args(&args.cargo_args)
            .env("DATABASE_URL", &services.database_url)
            .env("REDIS_URL", &services.redis_url),
    )?;
    if !args.no_dev_check && args.cargo_args.is_empty() {
        step("checking that `cargo xtask dev` boots and serves the demo data");
        crate::dev::boot(
            &services,
            "127.0.0.1:0".parse()?,
            true,
            &AtomicBool::new(false),
        )?;
    }
    step("all checks passed");
    Ok(())
}
