//! Drafts survive a crash: alice writes a message in the real `convos` client in tmux, the
//! client is killed with SIGKILL while she writes, she starts it again, finds the draft in the
//! Drafts list, resumes it and sends it; bob has it through the API.

use convos_testkit::TestServer;
use convos_tui::api::Client;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of this test's own (killed at the end).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a client with `token` and the configuration folder `config_home`, in session
    /// `name`.
    fn client(&self, name: &str, base: &str, token: &str, config_home: &Path) {
        let command = format!(
            "env CONVOS_SERVER={base} CONVOS_TOKEN={token} XDG_CONFIG_HOME={} TERM=xterm-256color {}",
            config_home.display(),
            env!("CARGO_BIN_EXE_convos")
        );
        self.run(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "120",
            "-y",
            "32",
            &command,
        ]);
    }

    fn screen(&self, name: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", name])
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn text(&self, name: &str, text: &str) {
        self.keys(name, &["-l", text]);
    }

    async fn wait(&self, name: &str, text: &str, shown: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen(name);
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

/// The drafts' files' contents in `config_home`.
fn drafts(config_home: &Path) -> Vec<String> {
    std::fs::read_dir(config_home.join("convos").join("drafts"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_draft_survives_a_killed_client_and_is_resumed_and_sent(db: PgPool) {
    let server = TestServer::spawn_with(db.clone(), |s| s.sse_heartbeat_secs = 2).await;
    let base = server.base.clone();
    let alice = server.user("alice").await.token;
    let bob = server.user("bob").await.token;
    let config_home: PathBuf =
        std::env::temp_dir().join(format!("convos-e2e-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&config_home).unwrap();
    let tmux = Tmux {
        socket: format!("convos-e2e-{}", uuid::Uuid::new_v4().simple()),
    };
    tmux.client("first", &base, &alice, &config_home);
    tmux.wait("first", "● live", true).await;

    // Alice writes to bob.
    tmux.keys("first", &["c"]);
    tmux.wait("first", "New message", true).await;
    tmux.text("first", "bob");
    tmux.keys("first", &["Tab"]);
    tmux.wait("first", "Subject: ▏", true).await;
    tmux.text("first", "Survivor");
    tmux.keys("first", &["Tab"]);
    tmux.text("first", "Written before the crash");
    tmux.wait("first", "Written before the crash", true).await;
    // Saved after a pause in the typing, while the composer is still open.
    until("the draft is saved with the body", || {
        drafts(&config_home)
            .iter()
            .any(|d| d.contains("Written before the crash"))
    })
    .await;

    // The client dies with SIGKILL: nothing of its own runs on the way out.
    let pid = tmux.run(&["display-message", "-p", "-t", "first", "#{pane_pid}"]);
    let killed = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    until("the killed client's session ends", || {
        !tmux.run(&["list-sessions"]).contains("first")
    })
    .await;

    // Started again: the draft is listed, resumed and sent.
    tmux.client("second", &base, &alice, &config_home);
    tmux.wait("second", "● live", true).await;
    tmux.keys("second", &["D"]);
    tmux.wait("second", "Drafts (1)", true).await;
    tmux.wait("second", "Written before the crash", true).await;
    tmux.keys("second", &["Enter"]);
    tmux.wait("second", "New message", true).await;
    tmux.wait("second", "Subject: Survivor", true).await;
    tmux.keys("second", &["C-s"]);
    tmux.wait("second", "New message", false).await;
    until("the sent draft's file is gone", || {
        drafts(&config_home).is_empty()
    })
    .await;

    // Bob has it.
    let bobs = Client::new(&base, Some(bob));
    let inbox = bobs
        .threads(convos_core::api::Folder::Inbox, None)
        .await
        .expect("bob's inbox");
    assert_eq!(inbox.items.len(), 1, "{:?}", inbox.items);
    assert_eq!(inbox.items[0].subject, "Survivor");
    let messages = bobs
        .messages(inbox.items[0].id, None)
        .await
        .expect("the thread");
    assert_eq!(
        messages.items[0].body.as_deref(),
        Some("Written before the crash")
    );
    tmux.keys("second", &["C-c"]);
}
