//! `cargo xtask bench`: release builds, the benchmark stores, wrk, then `convos-bench`.
//!
//! This file only prepares the machine; the scenarios, the generated corpus and the report
//! live in the `bench/` crate so that `cargo xtask` itself stays quick to build.

use crate::run::{self, step};
use crate::services::{self, Profile, Services};
use std::process::Command;
use std::time::Instant;

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// A smaller corpus and shorter runs: every scenario in about three minutes.
    #[arg(long)]
    quick: bool,
    /// Extra arguments for `convos-bench` (after `--`), e.g. `--only inbox,live`.
    #[arg(last = true)]
    bench_args: Vec<String>,
}

/// Runs `cargo xtask bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = run::root();
    if run::on_path("wrk").is_none() {
        services::install(&["wrk"], "wrk (the HTTP load generator)")?;
    }
    step("building release binaries (server, worker, client, bench)");
    let started = Instant::now();
    run::run(Command::new(&cargo).current_dir(&root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "convos-server",
        "-p",
        "convos-worker",
        "-p",
        "convos-tui",
        "-p",
        "convos-bench",
    ]))?;
    let build_secs = started.elapsed().as_secs();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from)
        .join("release");
    // One benchmark at a time on this checkout: they share the stores, and two loads on two
    // cores would measure each other.
    let lock_dir = root.join("target").join("convos-services");
    std::fs::create_dir_all(&lock_dir)?;
    let lock = std::fs::File::create(lock_dir.join("bench.lock"))?;
    if lock.try_lock().is_err() {
        step("another benchmark is running on this checkout; waiting for it to finish");
        lock.lock()?;
    }
    let services = Services::start(Profile::Bench)?;
    let mut bench = Command::new(target.join("convos-bench"));
    bench.current_dir(&root);
    // `-- --bin-dir DIR` measures other builds of the programs (a baseline commit's, say)
    // with this checkout's scenarios.
    let own_bin_dir = args
        .bench_args
        .iter()
        .any(|a| a == "--bin-dir" || a.starts_with("--bin-dir="));
    if !own_bin_dir {
        bench.arg("--bin-dir").arg(&target);
    }
    bench
        .arg("--work-dir")
        .arg(services.dir.join("run"))
        .arg("--build-secs")
        .arg(build_secs.to_string())
        .env("DATABASE_URL", &services.database_url)
        .env("REDIS_URL", &services.redis_url);
    if args.quick {
        bench.arg("--quick");
    }
    bench.args(&args.bench_args);
    run::run(&mut bench)
}
