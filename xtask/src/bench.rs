//! `cargo xtask bench`: release builds, the benchmark stores, wrk, graphile-worker (for the
//! engine scenario, when Node.js is present), then `convos-bench`.
//!
//! This file only prepares the machine; the scenarios, the generated corpus and the report
//! live in the `bench/` crate so that `cargo xtask` itself stays quick to build.

use crate::run::{self, step};
use crate::services::{self, Profile, Services};
use std::path::{Path, PathBuf};
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
    let graphile = if wants_engine(&args.bench_args) {
        Some(graphile(&root))
    } else {
        None
    };
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
    match graphile {
        Some(Ok((script, modules))) => {
            bench
                .arg("--graphile-script")
                .arg(script)
                .arg("--graphile-modules")
                .arg(modules);
        }
        Some(Err(why)) => {
            bench.arg("--graphile-skipped").arg(why);
        }
        None => {}
    }
    bench.args(&args.bench_args);
    run::run(&mut bench)
}

/// Whether the run includes the engine scenario (every scenario runs unless `--only` names
/// some).
fn wants_engine(bench_args: &[String]) -> bool {
    let mut only = Vec::new();
    let mut args = bench_args.iter();
    while let Some(arg) = args.next() {
        if arg == "--only" {
            only.extend(args.next().into_iter().flat_map(|v| v.split(',')));
        } else if let Some(v) = arg.strip_prefix("--only=") {
            only.extend(v.split(','));
        }
    }
    only.is_empty() || only.contains(&"engine")
}

/// graphile-worker for the engine scenario's baseline: `bench/graphile/`'s pinned version
/// installed with `npm ci` under `target/convos-bench/graphile/`, once, and reused while the
/// manifest and lockfile stay the same. Returns the runner script and the `node_modules`
/// folder, or why the baseline cannot run here (the scenario then reports it skipped).
fn graphile(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    if run::on_path("node").is_none() {
        return Err("Node.js not found".into());
    }
    if run::on_path("npm").is_none() {
        return Err("npm not found (Node.js is installed)".into());
    }
    let source = root.join("bench").join("graphile");
    let dir = root.join("target").join("convos-bench").join("graphile");
    let modules = dir.join("node_modules");
    let files = ["package.json", "package-lock.json"];
    let same = |name: &str| match (
        std::fs::read(source.join(name)),
        std::fs::read(dir.join(name)),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let installed = modules
        .join("graphile-worker")
        .join("package.json")
        .is_file();
    if !(installed && files.iter().all(|f| same(f))) {
        step("installing graphile-worker (the engine scenario's baseline) with npm ci");
        let copied = std::fs::create_dir_all(&dir).and_then(|()| {
            files
                .iter()
                .try_for_each(|f| std::fs::copy(source.join(f), dir.join(f)).map(|_| ()))
        });
        if let Err(e) = copied {
            return Err(format!("could not prepare {}: {e}", dir.display()));
        }
        let installed = run::run(Command::new("npm").current_dir(&dir).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]));
        if let Err(e) = installed {
            // A half-made install must not pass for a finished one next time.
            let _ = std::fs::remove_file(dir.join("package.json"));
            step(&format!(
                "graphile-worker could not be installed; the engine scenario skips it: {e:#}"
            ));
            return Err(format!("npm ci failed: {e:#}"));
        }
    }
    Ok((source.join("engine.mjs"), modules))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn the_engine_runs_unless_only_leaves_it_out() {
        assert!(wants_engine(&[]));
        assert!(wants_engine(&args(&["--out", "/tmp/x.md"])));
        assert!(wants_engine(&args(&["--only", "email,engine"])));
        assert!(wants_engine(&args(&["--only=engine"])));
        assert!(wants_engine(&args(&["--only", "send", "--only", "engine"])));
        assert!(!wants_engine(&args(&["--only", "send,email"])));
        assert!(!wants_engine(&args(&["--only=inbox"])));
    }
}
