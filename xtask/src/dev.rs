//! `cargo xtask dev`: the whole platform on this machine, with demo data.

use crate::run::{self, step};
use crate::services::{Profile, Services};
use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The password of the demo accounts, printed on screen.
pub const DEMO_PASSWORD: &str = "convos-demo";

/// The reply domain of the development platform: replies to it reach the worker's listener.
const DEV_REPLY_DOMAIN: &str = "reply.convos.localhost";

/// The inbound webhook's secret in development (printed; never for production).
const DEV_WEBHOOK_SECRET: &str = "convos-dev-webhook-secret";

/// Options of `cargo xtask dev`.
#[derive(clap::Args)]
pub struct DevArgs {
    /// Where the API listens; another free port is used if this one is taken.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Boot everything, log in as alice, then stop: proves the command works.
    #[arg(long)]
    check: bool,
}

/// Runs `cargo xtask dev`.
pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let stop = run::stop_on_ctrl_c()?;
    let services = Services::start(Profile::Dev)?;
    boot(&services, args.addr, args.check, &stop)
}

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Builds, migrates, seeds and runs server and worker against `services`.
pub fn boot(
    services: &Services,
    addr: SocketAddr,
    check: bool,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    step("building convos-server and convos-worker");
    run::run(Command::new(cargo()).current_dir(run::root()).args([
        "build",
        "--quiet",
        "-p",
        "convos-server",
        "-p",
        "convos-worker",
    ]))?;
    let bin = |name: &str| -> PathBuf {
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| run::root().join("target"), PathBuf::from);
        dir.join("debug").join(name)
    };
    let addr = if addr.port() != 0 && TcpListener::bind(addr).is_ok() {
        addr
    } else if addr.port() == 0 {
        TcpListener::bind(addr)?.local_addr()?
    } else {
        let free = TcpListener::bind((addr.ip(), 0))?.local_addr()?;
        step(&format!("{addr} is taken; using {free} instead"));
        free
    };
    let mail = services.dir.join("mail");
    let mail_url = format!("file://{}", mail.display());
    // The SMTP listener of the reply domain: 2526 unless taken (or checking, which must not
    // collide with a running dev platform).
    let preferred: SocketAddr = ([127, 0, 0, 1], 2526).into();
    let inbound = if !check && TcpListener::bind(preferred).is_ok() {
        preferred
    } else {
        TcpListener::bind(("127.0.0.1", 0))?.local_addr()?
    };
    let env = |cmd: &mut Command| {
        cmd.env("CONVOS_SMTP_URL", &mail_url)
            .env("CONVOS_REPLY_DOMAIN", DEV_REPLY_DOMAIN)
            .env("CONVOS_INBOUND_SMTP_ADDR", inbound.to_string())
            .env("CONVOS_INBOUND_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)
            .env("CONVOS_NOTIFY_DELAY_SECS", if check { "0" } else { "30" })
            .env("DATABASE_URL", &services.database_url)
            .env("REDIS_URL", &services.redis_url)
            .env("CONVOS_ADDR", addr.to_string())
            .env("CONVOS_PUBLIC_URL", format!("http://{addr}"));
    };
    let server = bin("convos-server");
    step("applying migrations and seeding demo data");
    let mut seed = Command::new(&server);
    env(&mut seed);
    run::run(seed.arg("migrate"))?;
    let mut seed = Command::new(&server);
    env(&mut seed);
    run::run(seed.args(["admin", "seed-demo", "--password", DEMO_PASSWORD]))?;

    // The suite's boot check must not collide with a dev platform (or anything else) holding
    // the default metrics ports.
    let metrics = |cmd: &mut Command, var: &str| -> anyhow::Result<()> {
        if check {
            let free = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?;
            cmd.env(var, free.to_string());
        }
        Ok(())
    };
    let mut children = Children::default();
    let mut cmd = Command::new(&server);
    env(&mut cmd);
    metrics(&mut cmd, "CONVOS_SERVER_METRICS_ADDR")?;
    children
        .0
        .push(cmd.spawn().context("could not start convos-server")?);
    let mut cmd = Command::new(bin("convos-worker"));
    env(&mut cmd);
    metrics(&mut cmd, "CONVOS_WORKER_METRICS_ADDR")?;
    children
        .0
        .push(cmd.spawn().context("could not start convos-worker")?);

    wait_ready(addr, &mut children)?;
    let client = services.dir.join("client");
    let token = sign_in_alice(addr, &client)?;
    banner(addr, &mail, &client, inbound);
    if check {
        let token = token.as_str();
        let before = count_files(&mail);
        let message =
            r#"{"recipient":"bob","subject":"Dev check","body":"Hello from cargo xtask"}"#;
        let (status, body) = http_auth(addr, "POST", "/api/v1/messages", Some(message), token)?;
        if status != 201 {
            bail!("sending a message answered {status}: {body}");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while count_files(&mail) <= before {
            if Instant::now() > deadline {
                bail!(
                    "the worker wrote no notification email to {} within 30 s",
                    mail.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // Bob answers the email from his mail client: the answer lands in alice's thread.
        let newest = newest_file(&mail).context("no notification email")?;
        run::run(Command::new(bin("convos-worker")).args([
            "reply",
            &newest.display().to_string(),
            "Hello back, by email",
            "--smtp",
            &inbound.to_string(),
        ]))?;
        let thread = body
            .split("\"thread_id\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no thread id in the answer")?;
        let path = format!("/api/v1/threads/{thread}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = http_auth(addr, "GET", &path, None, token)?;
            if body.contains("\"message_count\":2") {
                break;
            }
            if Instant::now() > deadline {
                bail!("bob's reply by email did not reach the thread within 30 s: {body}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        step(
            "dev check passed: alice logged in and sent bob a message, its email was written, \
             and bob's reply by email reached the thread",
        );
        return Ok(());
    }
    while !stop.load(Ordering::SeqCst) {
        for child in &mut children.0 {
            if let Some(status) = child.try_wait()? {
                bail!("a process exited unexpectedly ({status}); see the log above");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    step("stopping");
    Ok(())
}

/// Child processes stopped with SIGTERM (then killed) when dropped.
#[derive(Default)]
pub(crate) struct Children(pub(crate) Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in &mut self.0 {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn wait_ready(addr: SocketAddr, children: &mut Children) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = http(addr, "GET", "/readyz", None) {
            return Ok(());
        }
        for child in &mut children.0 {
            if let Some(status) = child.try_wait()? {
                bail!("a process exited during start-up ({status}); see the log above");
            }
        }
        if Instant::now() > deadline {
            bail!("the server did not become ready within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Logs alice in and stores the terminal client's config and token under `client`, so the
/// client opens straight into her inbox with `XDG_CONFIG_HOME` pointing there. Returns the
/// token.
fn sign_in_alice(addr: SocketAddr, client: &std::path::Path) -> anyhow::Result<String> {
    let login = format!(r#"{{"username":"alice","password":"{DEMO_PASSWORD}"}}"#);
    let (status, body) = http(addr, "POST", "/api/v1/sessions", Some(&login))?;
    if status != 201 {
        bail!("logging in as alice answered {status}: {body}");
    }
    let token = body
        .split("\"token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no token in the login answer")?;
    let dir = client.join("convos");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("config.toml"),
        format!("server = \"http://{addr}\"\n"),
    )?;
    std::fs::write(dir.join("token"), token)?;
    Ok(token.to_owned())
}

/// The most recently written file in `dir`.
fn newest_file(dir: &std::path::Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// A minimal HTTP/1.1 exchange, so the dev check needs no curl.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    http_auth(addr, method, path, json, "")
}

/// [`http`] with a bearer token (none when empty).
pub(crate) fn http_auth(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
    token: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = json.unwrap_or_default();
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP response")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn banner(addr: SocketAddr, mail: &std::path::Path, client: &std::path::Path, inbound: SocketAddr) {
    println!(
        "\n\x1b[1mConvos is running at http://{addr}\x1b[0m  (API reference: docs/api.md, \
         OpenAPI: http://{addr}/api/v1/openapi.json)\n\n\
         Demo accounts: alice (admin), bob, carol. Password for all: {DEMO_PASSWORD}\n\n\
         Try it:\n\
         \x20 TOKEN=$(curl -s -X POST http://{addr}/api/v1/sessions -H 'content-type: application/json' \\\n\
         \x20   -d '{{\"username\":\"alice\",\"password\":\"{DEMO_PASSWORD}\"}}' | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')\n\
         \x20 curl -s http://{addr}/api/v1/threads -H \"authorization: Bearer $TOKEN\"\n\
         \x20 curl -s -X POST http://{addr}/api/v1/messages -H \"authorization: Bearer $TOKEN\" \\\n\
         \x20   -H 'content-type: application/json' -d '{{\"recipient\":\"bob\",\"subject\":\"Hi\",\"body\":\"Hello Bob\"}}'\n\n\
         Live events (run in another terminal, then send a message):\n\
         \x20 curl -N http://{addr}/api/v1/events -H \"authorization: Bearer $TOKEN\"\n\n\
         Notification emails are written as .eml files to {mail} (30 s after a message, if it is\n\
         still unread).\n\n\
         Reply by email: answer a notification as its recipient, and the answer lands in the thread\n\
         (live in the other side's client). Mail for {DEV_REPLY_DOMAIN} is received on {inbound}:\n\
         \x20 target/debug/convos-worker reply {mail}/<file>.eml 'Noon works.' --smtp {inbound}\n\
         \x20 (or: swaks --server {inbound} --from <recipient> --to <the email's Reply-To> --body ...)\n\
         The inbound webhook takes raw MIME too (secret {DEV_WEBHOOK_SECRET}):\n\
         \x20 curl -X POST http://{addr}/api/v1/inbound/email -H 'authorization: Bearer {DEV_WEBHOOK_SECRET}' \\\n\
         \x20   -H 'content-type: message/rfc822' --data-binary @reply.eml\n\n\
         The terminal client, opening straight into alice's inbox (in another terminal):\n\
         \x20 XDG_CONFIG_HOME={client} cargo run -q -p convos-tui\n\
         Press Ctrl-C to stop.\n",
        mail = mail.display(),
        client = client.display()
    );
}
