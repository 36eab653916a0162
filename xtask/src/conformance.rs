//! The API contract checked against the real server: Schemathesis generates requests from the
//! served OpenAPI document and fails on any 5xx and on any status, header, content type or body
//! that the document does not declare (decision 19).
//!
//! The server runs on its own fresh database and Redis prefix, as an admin user whose token
//! Schemathesis sends. A second user and a thread between the two are made first, so that half
//! of the generated ids (of threads, messages, jobs) and recipients are real ones and requests
//! reach past the 404s into each handler. Schemathesis lives in a virtualenv under
//! `target/conformance/`, installed from PyPI once and reused while the pinned version stays the
//! same.

use crate::dev::{Children, cargo, http, http_auth, wait_ready};
use crate::run::{self, on_path, step};
use crate::services::{Services, install, postgres_tool};
use anyhow::{Context, bail};
use serde_json::Value;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The Schemathesis release used: its CLI and its checks change between releases.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// What every response is checked for: no 5xx; status, content type, headers and body as
/// documented; secured operations refuse requests without the token; required headers are
/// required; other methods answer 405 with a correct `Allow`.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,ignored_auth,\
                      missing_required_header,unsupported_method,allow_header_conformance";

/// Generated requests per operation and phase: enough to meet every documented status of every
/// operation, few enough for the run to take a couple of minutes.
const MAX_EXAMPLES: u32 = 100;

/// A fixed seed, so a failure found once is found again.
const SEED: u32 = 20_261_202;

/// The whole run is stopped (and fails) after this long.
const DEADLINE: Duration = Duration::from_secs(6 * 60);

/// Operations left out (by operation id), with why; the integration tests cover them.
const EXCLUDED: &[(&str, &str)] = &[(
    "delete_session",
    "logging out revokes the token the whole run authenticates with",
)];

/// Operations that delete the seeded data for the caller; they run after all the others.
const DELETING: &[&str] = &["delete_thread", "delete_message"];

const DATABASE: &str = "convos_conformance";
const USERNAME: &str = "conformance";
const PEER: &str = "conformance-peer";
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
            .env("CONVOS_SERVER_METRICS_ADDR", "127.0.0.1:0")
            // Every generated request comes from loopback as fast as it can: the run looks for
            // 5xx and undocumented answers, not for the share of one network (its own test).
            .env("CONVOS_REQUESTS_PER_SEC_PER_ADDR", "0")
            .env("CONVOS_CONFORMANCE_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn");
    };
    for (username, admin) in [(USERNAME, true), (PEER, false)] {
        let mut create = Command::new(&server);
        env(&mut create);
        create.args(["admin", "create-user", "--username", username, "--email"]);
        create.arg(format!("{username}@example.com"));
        create.args(["--password-env", "CONVOS_CONFORMANCE_PASSWORD"]);
        if admin {
            create.arg("--admin");
        }
        run::run(&mut create)?;
    }

    let mut children = Children::default();
    let mut serve = Command::new(&server);
    env(&mut serve);
    children
        .0
        .push(serve.spawn().context("could not start convos-server")?);
    wait_ready(addr, &mut children)?;
    let token = log_in(addr, USERNAME)?;
    let known = seed(addr, &token)?;
    let config = conformance_dir().join("schemathesis.toml");
    std::fs::write(&config, config_toml(&known))
        .with_context(|| format!("could not write {}", config.display()))?;

    step(&format!(
        "checking the API against its OpenAPI document with {SCHEMATHESIS} \
         ({MAX_EXAMPLES} examples per operation, seed {SEED})"
    ));
    let deadline = Instant::now() + DEADLINE;
    // Deleting operations run last, in a pass of their own, so that the others still find the
    // seeded thread (Schemathesis also reuses ids it saw in earlier answers).
    for deleting in [false, true] {
        let mut cmd = Command::new(&st);
        cmd.current_dir(conformance_dir())
            .arg("--config-file")
            .arg(&config)
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
        let filter = if deleting {
            "--include-operation-id"
        } else {
            "--exclude-operation-id"
        };
        for operation in DELETING {
            cmd.args([filter, operation]);
        }
        cmd.args(&args.st_args);
        run_until(&mut cmd, deadline, &token)?;
    }
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
    // A cached environment is trusted only while it still runs (its Python may have moved).
    if marker.is_file() && run::output(Command::new(&st).arg("--version")).is_ok() {
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

/// Logs `username` in and returns the bearer token.
fn log_in(addr: SocketAddr, username: &str) -> anyhow::Result<String> {
    let login = format!(r#"{{"username":"{username}","password":"{PASSWORD}"}}"#);
    let (status, body) = http(addr, "POST", "/api/v1/sessions", Some(&login))?;
    if status != 201 {
        bail!("logging in as {username} answered {status}: {body}");
    }
    let session: Value = serde_json::from_str(&body).context("the login answer is not JSON")?;
    session["token"]
        .as_str()
        .map(str::to_owned)
        .context("no token in the login answer")
}

/// Ids of things that exist, offered to Schemathesis beside the ones it makes up.
#[derive(Debug, Default)]
struct Known {
    threads: Vec<String>,
    messages: Vec<String>,
    jobs: Vec<String>,
}

/// A JSON request that must answer `expected`; returns the answer's body.
fn call(
    addr: SocketAddr,
    token: &str,
    (method, path): (&str, &str),
    body: Option<&str>,
    expected: u16,
) -> anyhow::Result<Value> {
    let (status, answer) = http_auth(addr, method, path, body, token)?;
    if status != expected {
        bail!("{method} {path} answered {status}, not {expected}: {answer}");
    }
    serde_json::from_str(&answer).with_context(|| format!("{method} {path} answered no JSON"))
}

fn id_of(value: &Value, key: &str) -> anyhow::Result<String> {
    value[key]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {key} in {value}"))
}

/// A thread between the run's admin and its peer (a message and a reply), and the jobs they
/// queued.
fn seed(addr: SocketAddr, admin: &str) -> anyhow::Result<Known> {
    let peer = log_in(addr, PEER)?;
    let first = format!(r#"{{"recipient":"{PEER}","subject":"Conformance","body":"Offered ids"}}"#);
    let sent = call(addr, admin, ("POST", "/api/v1/messages"), Some(&first), 201)?;
    let thread = id_of(&sent, "thread_id")?;
    let reply = call(
        addr,
        &peer,
        ("POST", &format!("/api/v1/threads/{thread}/messages")),
        Some(r#"{"body":"And a reply"}"#),
        201,
    )?;
    let jobs = call(addr, admin, ("GET", "/api/v1/admin/jobs"), None, 200)?;
    let jobs = jobs["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|j| j["id"].as_str())
                .map(str::to_owned)
        })
        .into_iter()
        .flatten()
        .collect();
    Ok(Known {
        messages: vec![id_of(&sent, "id")?, id_of(&reply, "id")?],
        threads: vec![thread],
        jobs,
    })
}

/// Where real values are offered: a path regex, the parameter and the dictionary.
const BINDINGS: &[(&str, &str, &str)] = &[
    (r"^/api/v1/threads/\\{id\\}", "path.id", "threads"),
    (r"^/api/v1/messages/\\{id\\}", "path.id", "messages"),
    (r"^/api/v1/admin/jobs/\\{id\\}", "path.id", "jobs"),
    (r"^/api/v1/messages$", "body.recipient", "recipients"),
];

/// Schemathesis' configuration: an event stream is read up to its first event, and path ids
/// (and message recipients) are real ones half of the time.
fn config_toml(known: &Known) -> String {
    let list = |values: &[String]| {
        let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut toml = String::from(
        "# Written by `cargo xtask conformance` for one run; see xtask/src/conformance.rs.\n\
         max-stream-events = 1\n\n",
    );
    let dictionaries = [
        ("threads", &known.threads),
        ("messages", &known.messages),
        ("jobs", &known.jobs),
        ("recipients", &vec![PEER.to_owned()]),
    ];
    for (name, values) in &dictionaries {
        if !values.is_empty() {
            let _ = writeln!(toml, "[dictionaries.{name}]\nvalues = {}\n", list(values));
        }
    }
    for (path, parameter, dictionary) in BINDINGS {
        if !dictionaries
            .iter()
            .any(|(n, v)| n == dictionary && !v.is_empty())
        {
            continue;
        }
        let _ = writeln!(toml, "[[operations]]\ninclude-path-regex = \"{path}\"");
        let _ = writeln!(
            toml,
            "parameters = {{ \"{parameter}\" = {{ dictionary = \"{dictionary}\", \
             probability = 0.5 }} }}\n"
        );
    }
    toml
}

/// Runs `cmd`, failing if it fails or is still running at `deadline` (then it is killed).
/// `secret` is hidden where the command is shown.
fn run_until(cmd: &mut Command, deadline: Instant, secret: &str) -> anyhow::Result<()> {
    eprintln!(
        "\x1b[2m$ {}\x1b[0m",
        run::display(cmd).replace(secret, "***")
    );
    let mut child = cmd.spawn().context("could not start schemathesis")?;
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
                DEADLINE.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::{Known, config_toml, with_database};

    #[test]
    fn known_ids_are_offered_half_of_the_time_and_missing_ones_are_not_bound() {
        let known = Known {
            threads: vec!["t1".into()],
            messages: vec!["m1".into(), "m2".into()],
            jobs: Vec::new(),
        };
        let toml = config_toml(&known);
        assert!(toml.contains("max-stream-events = 1"));
        assert!(toml.contains("[dictionaries.messages]\nvalues = [\"m1\", \"m2\"]"));
        assert!(toml.contains(
            "include-path-regex = \"^/api/v1/threads/\\\\{id\\\\}\"\n\
             parameters = { \"path.id\" = { dictionary = \"threads\", probability = 0.5 } }"
        ));
        assert!(!toml.contains("jobs"), "{toml}");
    }

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
