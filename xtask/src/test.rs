//! `cargo xtask test`: formatting, lints and every test, against real PostgreSQL and Redis.

use crate::run::{self, step};
use crate::services::{Profile, Services};
use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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
    /// Skip the API conformance run (Schemathesis against the OpenAPI document).
    #[arg(long)]
    no_conformance: bool,
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
    if run::on_path("tmux").is_none() {
        // The terminal client's end-to-end test drives the real binary in tmux.
        crate::services::install(&["tmux"], "tmux")?;
    }
    let services = Services::start(Profile::Test)?;
    step("running the test suite");
    let totals = run_counting(
        Command::new(&cargo)
            .current_dir(&root)
            .args(["test", "--workspace", "--no-fail-fast"])
            .args(&args.cargo_args)
            .env("DATABASE_URL", &services.database_url)
            .env("REDIS_URL", &services.redis_url),
    )?;
    if !args.no_conformance && args.cargo_args.is_empty() {
        step("checking the API against its OpenAPI document");
        crate::conformance::run(&services, &Default::default())?;
    }
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
    // One closing line for the whole suite (cargo prints one per test binary).
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    Ok(())
}

/// Tests counted over every `test result:` line of a `cargo test` run.
#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
}

/// Runs `cargo test`, echoing its output, and adds up its per-binary summaries.
fn run_counting(cmd: &mut Command) -> anyhow::Result<Totals> {
    eprintln!("\x1b[2m$ {}\x1b[0m", run::display(cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start cargo test")?;
    let stdout = child.stdout.take().context("cargo test has no stdout")?;
    let mut totals = Totals::default();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(summary) = line.strip_prefix("test result: ") {
            totals.passed += count(summary, "passed");
            totals.failed += count(summary, "failed");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!(
            "tests: {} passed, {} failed",
            totals.passed,
            totals.failed.max(1)
        );
        bail!("`{}` failed with {status}", run::display(cmd));
    }
    Ok(totals)
}

/// The number before `word` in a summary like `ok. 3 passed; 0 failed; ...`.
fn count(summary: &str, word: &str) -> u64 {
    let words: Vec<&str> = summary.split([' ', ';']).collect();
    words
        .windows(2)
        .find(|w| w[1] == word)
        .and_then(|w| w[0].parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn summaries_are_added_up() {
        let line =
            "ok. 45 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 5.97s";
        assert_eq!(count(line, "passed"), 45);
        assert_eq!(count(line, "failed"), 2);
    }
}
