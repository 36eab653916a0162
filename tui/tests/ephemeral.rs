//! Ephemeral and read-once messages between two real `convos` clients, each in its own tmux
//! session, against a real server and worker: alice sends a message that expires after 15 s
//! from her composer, and bob sees it arrive with its time left and then vanish, without a key
//! pressed; alice sends a read-once message and bob opens it once, after which it is gone for
//! him.

use convos_testkit::{InProcessWorker, StackConfig, TestServer, database_url};
use convos_tui::api::{ApiError, Client};
use secrecy::SecretString;
use sqlx::PgPool;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of this test's own (killed at the end), with one session per client.
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

    /// Starts `user`'s client with `token` in a session named after them.
    fn client(&self, user: &str, base: &str, token: &str) {
        let config_home =
            std::env::temp_dir().join(format!("convos-e2e-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&config_home).unwrap();
        let command = format!(
            "env CONVOS_SERVER={base} CONVOS_TOKEN={token} XDG_CONFIG_HOME={} TERM=xterm-256color {}",
            config_home.display(),
            env!("CARGO_BIN_EXE_convos")
        );
        self.run(&[
            "new-session",
            "-d",
            "-s",
            user,
            "-x",
            "160",
            "-y",
            "36",
            &command,
        ]);
    }

    fn screen(&self, user: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", user])
    }

    fn keys(&self, user: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", user];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn text(&self, user: &str, text: &str) {
        self.keys(user, &["-l", text]);
    }

    /// Waits until `user`'s screen shows `text` (or, with `shown` false, no longer shows it).
    async fn wait(&self, user: &str, text: &str, shown: bool, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen(user);
            if screen.contains(text) == shown {
                return;
            }
            let what = if shown { "showed" } else { "stopped showing" };
            assert!(
                Instant::now() < deadline,
                "{user}'s screen never {what} {text:?}:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_for(&self, user: &str, text: &str) {
        self.wait(user, text, true, Duration::from_secs(20)).await;
    }

    /// Writes a new message to bob in `user`'s composer, up to the body.
    async fn compose_to_bob(&self, user: &str, subject: &str, body: &str) {
        self.keys(user, &["c"]);
        self.wait_for(user, "New message").await;
        self.text(user, "bob");
        // Tab completes the username from the directory, then moves to the subject.
        self.keys(user, &["Tab"]);
        self.wait_for(user, "Subject: ▏").await;
        self.text(user, subject);
        self.keys(user, &["Tab"]);
        self.text(user, body);
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

/// Starts the real worker for `server`, writing its emails into files rather than sending them.
async fn spawn_worker(db: &PgPool, server: &TestServer) -> InProcessWorker {
    let stack = StackConfig {
        prefix: server.redis_prefix.clone(),
        ..StackConfig::new()
    };
    let mut settings = stack.worker_settings(&database_url(db).await);
    let mail = std::env::temp_dir().join(format!("convos-e2e-mail-{}", uuid::Uuid::new_v4()));
    settings.smtp_url = SecretString::from(format!("file://{}", mail.display()));
    InProcessWorker::start(settings)
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_ephemeral_message_vanishes_and_a_read_once_message_opens_once(db: PgPool) {
    let server = TestServer::spawn_with(db.clone(), |s| s.sse_heartbeat_secs = 2).await;
    let worker = spawn_worker(&db, &server).await;
    let base = server.base.clone();
    let alice = server.user("alice").await.token;
    let bob = server.user("bob").await.token;
    let tmux = Tmux {
        socket: format!("convos-e2e-{}", uuid::Uuid::new_v4().simple()),
    };
    tmux.client("alice", &base, &alice);
    tmux.client("bob", &base, &bob);
    for user in ["alice", "bob"] {
        tmux.wait_for(user, "● live").await;
        tmux.wait_for(user, "No conversations here.").await;
    }

    // Alice: a message that disappears 15 s after sending (Ctrl-t, then a typed duration).
    tmux.compose_to_bob("alice", "Vanishing", "This message self-destructs")
        .await;
    tmux.keys("alice", &["C-t"]);
    tmux.wait_for("alice", "Expires: 10m▏").await;
    tmux.keys("alice", &["BSpace", "BSpace", "BSpace"]);
    tmux.text("alice", "15s");
    tmux.wait_for("alice", "New message · disappears 15s after sending")
        .await;
    tmux.keys("alice", &["Enter", "C-s"]);
    // Sent (the composer closes), and sent with its expiry.
    tmux.wait("alice", "New message", false, Duration::from_secs(20))
        .await;
    let alices = Client::new(&base, Some(alice.clone()));
    let sent = alices
        .threads(convos_core::api::Folder::Sent, None)
        .await
        .expect("alice's sent folder");
    let last = sent.items[0].last_message.as_ref().expect("her message");
    let lifetime = last.expires_at.expect("it expires") - last.created_at;
    assert!(
        (14_990..=15_010).contains(&lifetime.num_milliseconds()),
        "{lifetime}"
    );

    // Bob: it arrives by itself, with its time left in the list and in the thread.
    tmux.wait_for("bob", "Vanishing").await;
    tmux.wait_for("bob", "s left · now").await;
    tmux.keys("bob", &["Enter"]);
    tmux.wait_for("bob", "This message self-destructs").await;
    tmux.wait_for("bob", "[expires in").await;
    // Then it vanishes from the thread and the list, with no key pressed.
    tmux.wait(
        "bob",
        "This message self-destructs",
        false,
        Duration::from_secs(30),
    )
    .await;
    tmux.wait_for("bob", "The thread's last message expired")
        .await;
    tmux.wait("bob", "Vanishing", false, Duration::from_secs(5))
        .await;

    // Alice: a read-once message (Ctrl-o).
    tmux.compose_to_bob("alice", "Secret", "correct-horse-battery-staple")
        .await;
    tmux.keys("alice", &["C-o"]);
    tmux.wait_for("alice", "Read once: yes").await;
    tmux.keys("alice", &["C-s"]);
    tmux.wait("alice", "New message", false, Duration::from_secs(20))
        .await;

    // Bob: sealed, with a hint that it opens once; he opens it and reads it.
    tmux.wait_for("bob", "Secret").await;
    let bobs = Client::new(&base, Some(bob.clone()));
    let inbox = bobs
        .threads(convos_core::api::Folder::Inbox, None)
        .await
        .expect("bob's inbox");
    let secret = inbox.items[0].last_message.as_ref().expect("a message").id;
    tmux.keys("bob", &["Enter"]);
    tmux.wait_for("bob", "press o to open it; it can be read only once")
        .await;
    assert!(!tmux.screen("bob").contains("correct-horse"));
    tmux.keys("bob", &["o"]);
    tmux.wait_for("bob", "correct-horse-battery-staple").await;
    tmux.wait_for("bob", "this was its one read").await;
    tmux.wait_for("bob", "Inbox (0)").await;

    // Leaving the thread ends its one read: gone from the screen and from the server.
    tmux.keys("bob", &["q"]);
    tmux.wait("bob", "correct-horse", false, Duration::from_secs(5))
        .await;
    tmux.keys("bob", &["R"]);
    tmux.wait_for("bob", "No conversations here.").await;
    assert!(!tmux.screen("bob").contains("Secret"));
    assert!(
        matches!(
            bobs.message(secret).await,
            Err(ApiError::Server { status: 404, .. })
        ),
        "opened once, it is gone on the server"
    );
    let all = bobs
        .threads(convos_core::api::Folder::All, None)
        .await
        .expect("bob's threads");
    assert!(all.items.is_empty(), "{:?}", all.items);

    for user in ["alice", "bob"] {
        tmux.keys(user, &["C-c"]);
    }
    worker.stop().await;
}
