//! The API contract checked against the real server: Schemathesis generates requests from the
//! served OpenAPI document and fails on any 5xx and on any status, header, content type or body
//! that the document does not declare (decision 19).
//!
//! The server runs on its own fresh database and Redis prefix, as an admin user whose token
//! Schemathesis sends. Schemathesis lives in a virtualenv under `target/conformance/`, installed
//! from PyPI once and reused while the pinned version stays the same.

use crate::dev::{Children, cargo, http, wait_ready};
use crate::run::{self, on_path, step};
use crate::services::{Services, install, postgres_tool};
use anyhow::{Context, bail};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The Schemathesis release used: its CLI and its checks change between releases.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// What every response is checked for.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// Generated requests per operation and phase: enough to meet every documented status of every
/// operation, few enough for the run to take a couple of minutes.
const MAX_EXAMPLES: u32 = 40;

/// A fixed seed, so a failure found once is found again.
const SEED: u32 = 20_261_202;

/// The whole run is stopped (and fails) after this long.
const DEADLINE: Duration = Duration::from_secs(6 * 60);

/// Operations left out (by operation id), with why; the integration tests cover them.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "stream_events",
        "an event stream never ends, so no request to it finishes",
    ),
    (
        "delete_session",
        "logging out revokes the token the whole run authenticates with",
    ),
];

const DATABASE: &str = "convos_conformance";
const USERNAME: &str = "conformance";
const PASSWORD: &str = "conformance-run-password";

/// Options of `cargo xtask conformance`.
#[derive(clap::Args, Default)]
pub struct ConformanceArgs {
    /// Extra arguments for `st run` (after `--`), e.g. `--include-operation-id create_message`
    /// to reproduce one finding.
    #[arg(last = true)]
    st_args: Vec<String>,
}

/// Runs the conformance check against a server booted on `services`.
pub fn run(services: &Services, args: &ConformanceArgs) -> anyhow::Result<()> {
    let st = schemathesis()?;
    let database_url = fresh_database(&services.database_url)?;

    step("building convos-server");
    run::run(Command::new(cargo()).current_dir(run::root()).args([
        "build",
        "--quiet",
        "-p",
        "convos-server",
    ]))?;
    let server = target_dir().join("debug").join("convos-server");
    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let env = |cmd: &mut Command| {
        cmd.env("DATABASE_URL", &database_url)
            .env("REDIS_URL", &services.redis_url)
            .env(
                "CONVOS_REDIS_PREFIX",
                format!("conformance:{}:", addr.port()),
            )
            .env("CONVOS_ADDR", addr.to_string())
            .env("CONVOS_PUBLIC_URL", format!("http://{addr}"))
            .env("CONVOS_METRICS_ADDR", "127.0.0.1:0")
            .env("CONVOS_CONFORMANCE_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn");
    };
    let mut create = Command::new(&server);
    env(&mut create);
    run::run(create.args([
        "admin",
        "create-user",
        "--username",
        USERNAME,
        "--email",
        "conformance@example.com",
        "--password-env",
        "CONVOS_CONFORMANCE_PASSWORD",
        "--admin",
    ]))?;

    let mut children = Children::default();
    let mut serve = Command::new(&server);
    env(&mut serve);
    children
        .0
        .push(serve.spawn().context("could not start convos-server")?);
    wait_ready(addr, &mut children)?;
    let token = log_in(addr)?;

    step(&format!(
        "checking the API against its OpenAPI document with {SCHEMATHESIS} \
         ({MAX_EXAMPLES} examples per operation, seed {SEED})"
    ));
    let mut cmd = Command::new(st);
    cmd.current_dir(conformance_dir())
        .arg("run")
        .arg(format!("http://{addr}/api/v1/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--seed", &SEED.to_string()])
        .args(["--generation-database", "none"])
        .args(["--workers", "2"])
        .args(["--request-timeout", "20"])
        .args(["--header", &format!("Authorization: Bearer {token}")]);
    for (operation, _) in EXCLUDED {
        cmd.args(["--exclude-operation-id", operation]);
    }
    cmd.args(&args.st_args);
    run_with_deadline(&mut cmd, DEADLINE, &token)?;
    step("the API answered only what its OpenAPI document declares");
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| run::root().join("target"), PathBuf::from)
}

fn conformance_dir() -> PathBuf {
    target_dir().join("conformance")
}

/// The `st` program of a virtualenv holding the pinned Schemathesis, made on first use.
fn schemathesis() -> anyhow::Result<PathBuf> {
    let venv = conformance_dir().join("venv");
    let st = venv.join("bin").join("st");
    let marker = venv.join(format!(".installed-{SCHEMATHESIS}"));
    if st.is_file() && marker.is_file() {
        return Ok(st);
    }
    if on_path("python3").is_none() {
        install(&["python3", "python3-venv"], "Python 3")?;
    }
    step(&format!(
        "installing {SCHEMATHESIS} into {}",
        venv.display()
    ));
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("could not clear {venv:?}"))?;
    }
    std::fs::create_dir_all(conformance_dir())?;
    if make_venv(&venv).is_err() {
        // Debian ships `venv` without `ensurepip` unless python3-venv is installed.
        install(&["python3-venv"], "Python's venv module")?;
        std::fs::remove_dir_all(&venv).ok();
        make_venv(&venv)?;
    }
    run::run(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(SCHEMATHESIS),
    )?;
    std::fs::write(&marker, "")?;
    Ok(st)
}

fn make_venv(venv: &Path) -> anyhow::Result<()> {
    run::run(Command::new("python3").args(["-m", "venv"]).arg(venv))
}

/// Drops and recreates the run's own database next to the one `url` names, and returns its URL.
fn fresh_database(url: &str) -> anyhow::Result<String> {
    let psql = match postgres_tool("psql") {
        Some(psql) => psql,
        None => {
            install(&["postgresql-client"], "psql")?;
            postgres_tool("psql").context("psql was installed but is not found")?
        }
    };
    step(&format!("creating a fresh database {DATABASE}"));
    run::run(
        Command::new(psql)
            .arg(url)
            .args(["--quiet", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-c",
                &format!("drop database if exists {DATABASE} with (force)"),
            ])
            .args(["-c", &format!("create database {DATABASE}")]),
    )?;
    with_database(url, DATABASE)
}

/// `url` naming the database `name` instead, its query string kept.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url.split_once("://").context("DATABASE_URL is not a URL")?;
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let authority = location.split('/').next().unwrap_or(location);
    Ok(match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    })
}

/// Logs the run's admin in and returns the bearer token.
fn log_in(addr: SocketAddr) -> anyhow::Result<String> {
    let login = format!(r#"{{"username":"{USERNAME}","password":"{PASSWORD}"}}"#);
    let (status, body) = http(addr, "POST", "/api/v1/sessions", Some(&login))?;
    if status != 201 {
        bail!("logging in as {USERNAME} answered {status}: {body}");
    }
    body.split("\"token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .context("no token in the login answer")
}

/// Runs `cmd`, failing if it fails or is still running after `limit` (then it is killed).
/// `secret` is hidden where the command is shown.
fn run_with_deadline(cmd: &mut Command, limit: Duration, secret: &str) -> anyhow::Result<()> {
    eprintln!(
        "\x1b[2m$ {}\x1b[0m",
        run::display(cmd).replace(secret, "***")
    );
    let mut child = cmd.spawn().context("could not start schemathesis")?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!(
                    "the API answered something its OpenAPI document does not declare \
                     (schemathesis exited with {status}); see the failures above"
                );
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the conformance run took longer than {} s and was stopped",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_run_gets_its_own_database_on_the_same_server() {
        assert_eq!(
            with_database("postgres://convos@127.0.0.1:5432/convos", "x").unwrap(),
            "postgres://convos@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432/app?sslmode=require", "x").unwrap(),
            "postgres://u:p@db:5432/x?sslmode=require"
        );
        assert_eq!(
            with_database("postgres://u@db", "x").unwrap(),
            "postgres://u@db/x"
        );
    }
}
