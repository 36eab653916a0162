//! The harness the client's end-to-end tests share: a tmux server of the test's own (killed at
//! the end) whose sessions run the real `convos` binary, one per client (keys go in, screens
//! come out); the command line and configuration folder of a client; the real worker; and a
//! switch between the clients and the server that makes the server unreachable and reachable
//! again on the same address.

// Each test file is its own crate and uses only part of the harness.
#![allow(dead_code)]

use convos_testkit::{InProcessWorker, StackConfig, TestServer, database_url};
use secrecy::SecretString;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long a wait lasts before the test fails with what the screen showed.
const PATIENCE: Duration = Duration::from_secs(20);

/// A tmux server of this test's own, killed at the end. The single-client tests run their
/// client in the session `convos` ([`Tmux::screen`], [`Tmux::keys`], [`Tmux::wait_for`]);
/// tests with several clients name a session per client ([`Tmux::session`] and the `_in`/`_to`
/// methods).
pub struct Tmux {
    /// Its socket name (`tmux -L`).
    pub socket: String,
}

impl Tmux {
    /// A server of its own, named `<prefix>-<random>`.
    pub fn new(prefix: &str) -> Self {
        Self {
            socket: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Runs a tmux command on this server; its standard output.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `command` in a new session `name` of `width`×`height`.
    pub fn session(&self, name: &str, (width, height): (u16, u16), command: &str) {
        let (width, height) = (width.to_string(), height.to_string());
        self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &width,
            "-y",
            &height,
            command,
        ]);
    }

    /// What session `name` shows.
    pub fn screen_of(&self, name: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", name])
    }

    /// Sends keys to session `name` (tmux `send-keys` arguments).
    pub fn keys_to(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` into session `name`, as it is (no key names).
    pub fn text_to(&self, name: &str, text: &str) {
        self.keys_to(name, &["-l", text]);
    }

    /// Waits up to `within` until session `name` shows `text` (with `shown` false: no longer
    /// shows it); fails with the screen if it never does.
    pub async fn wait_on(&self, name: &str, text: &str, shown: bool, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen_of(name);
            if screen.contains(text) == shown {
                return;
            }
            let what = if shown { "showed" } else { "stopped showing" };
            assert!(
                Instant::now() < deadline,
                "{name}'s screen never {what} {text:?}:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to 20 s for `text` on session `name`'s screen.
    pub async fn wait_in(&self, name: &str, text: &str) {
        self.wait_on(name, text, true, PATIENCE).await;
    }

    /// Waits up to 20 s for `text` to leave session `name`'s screen.
    pub async fn wait_gone(&self, name: &str, text: &str) {
        self.wait_on(name, text, false, PATIENCE).await;
    }

    /// What the `convos` session shows.
    pub fn screen(&self) -> String {
        self.screen_of("convos")
    }

    /// Sends keys to the `convos` session (tmux `send-keys` arguments).
    pub fn keys(&self, keys: &[&str]) {
        self.keys_to("convos", keys);
    }

    /// Waits up to 20 s for `text` on the `convos` session's screen.
    pub async fn wait_for(&self, text: &str) {
        self.wait_in("convos", text).await;
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// A fresh, empty configuration folder (`XDG_CONFIG_HOME`) named `<prefix>-<random>`.
pub fn config_home(prefix: &str) -> PathBuf {
    let home = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(home.join("convos")).unwrap();
    home
}

/// The command line of a client of `base` with `token` and the configuration folder `home`.
pub fn convos(base: &str, token: &str, home: &Path) -> String {
    format!(
        "env CONVOS_SERVER={base} CONVOS_TOKEN={token} XDG_CONFIG_HOME={} TERM=xterm-256color {}",
        home.display(),
        env!("CARGO_BIN_EXE_convos")
    )
}

/// Waits up to 20 s until `done`; fails naming `what` if it never is.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the real worker for `server`, writing its emails into files rather than sending them.
pub async fn spawn_worker(db: &PgPool, server: &TestServer) -> InProcessWorker {
    let stack = StackConfig {
        prefix: server.redis_prefix.clone(),
        ..StackConfig::new()
    };
    let mut settings = stack.worker_settings(&database_url(db).await);
    let mail = std::env::temp_dir().join(format!("convos-e2e-mail-{}", uuid::Uuid::new_v4()));
    settings.smtp_url = SecretString::from(format!("file://{}", mail.display()));
    InProcessWorker::start(settings)
}

/// A switch between the clients and the server: clients use [`Outage::base`], which forwards
/// to the server while it is on. Switched off, every open connection is cut and every new one
/// is closed as soon as it is accepted, as if the server were gone; switched on again, the
/// same address reaches the server.
pub struct Outage {
    /// The address the clients use.
    pub base: String,
    on: watch::Sender<bool>,
}

impl Outage {
    /// A switch, on, in front of the server at `server_base` (`http://127.0.0.1:PORT`).
    pub async fn start(server_base: &str) -> Self {
        let target = server_base.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (on, watching) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut switch = watching.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    if !*switch.borrow_and_update() {
                        return;
                    }
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = switch.wait_for(|on| !*on) => {}
                    }
                });
            }
        });
        Self {
            base: format!("http://127.0.0.1:{port}"),
            on,
        }
    }

    /// The server becomes unreachable.
    pub fn cut(&self) {
        self.on.send_replace(false);
    }

    /// The server answers again.
    pub fn restore(&self) {
        self.on.send_replace(true);
    }
}
