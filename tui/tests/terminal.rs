//! The real `convos` binary in tmux against a real server, for what it does with the terminal
//! around it: Ctrl-Z gives the shell back and `fg` brings the mailbox back, redrawn; the pane's
//! title shows the unread count and is cleared on quitting; with `mouse = true`, a click selects
//! a thread and a second click opens it.

mod support;

use convos_testkit::{InProcessWorker, TestServer};
use convos_tui::api::Client;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{Tmux, spawn_worker};

impl Tmux {
    fn title(&self) -> String {
        self.run(&["display-message", "-p", "-t", "convos", "#{pane_title}"])
            .trim_end()
            .to_owned()
    }

    /// Waits until `what` (the screen, the title) satisfies `done`.
    async fn wait(&self, what: &str, read: impl Fn(&Self) -> String, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = read(self);
            if done(&seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}; saw:\n{seen}\nscreen:\n{}",
                self.screen()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_for_title(&self, title: &str) {
        self.wait(&format!("titled {title:?}"), Self::title, |t| t == title)
            .await;
    }
}

/// The real server (heartbeats every 2 s) and worker under a fresh Redis prefix.
async fn spawn_stack(db: PgPool) -> (TestServer, InProcessWorker) {
    let server = TestServer::spawn_with(db.clone(), |s| s.sse_heartbeat_secs = 2).await;
    let worker = spawn_worker(&db, &server).await;
    (server, worker)
}

/// A configuration folder holding `config` as `convos/config.toml`.
fn config_home(config: &str) -> PathBuf {
    let home = std::env::temp_dir().join(format!("convos-terminal-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(home.join("convos")).unwrap();
    std::fs::write(home.join("convos/config.toml"), config).unwrap();
    home
}

/// The client's command line for `token`.
fn client(base: &str, token: &str, home: &Path) -> String {
    support::convos(base, token, home)
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn ctrl_z_gives_the_shell_back_and_fg_redraws_the_mailbox_and_the_title_counts_unread(
    db: PgPool,
) {
    let (server, worker) = spawn_stack(db).await;
    let alice = Client::new(&server.base, Some(server.user("alice").await.token));
    let bob = server.user("bob").await.token;
    let home = config_home("");
    let tmux = Tmux::new("convos-terminal");
    // An interactive shell with job control, so Ctrl-Z has a prompt to return to.
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "convos",
        "-x",
        "100",
        "-y",
        "30",
        "env PS1='shell-prompt$ ' bash --norc --noprofile -i",
    ]);
    tmux.wait_for("shell-prompt$").await;
    tmux.keys(&["-l", &client(&server.base, &bob, &home)]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("● live").await;
    tmux.wait_for_title("Convos").await;

    alice
        .send("bob", "Lunch on Friday?", "Are you free at noon?", &key())
        .await
        .expect("alice sends");
    tmux.wait_for("Lunch on Friday?").await;
    tmux.wait_for_title("Convos (1)").await;

    tmux.keys(&["C-z"]);
    tmux.wait("showed the shell again", Tmux::screen, |s| {
        s.contains("Stopped") && !s.contains("● live")
    })
    .await;
    // The shell can be used while the client waits.
    tmux.keys(&["-l", "echo still-here"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("still-here").await;

    tmux.keys(&["-l", "fg"]);
    tmux.keys(&["Enter"]);
    // The mailbox is drawn again in full, and still live and counting.
    tmux.wait_for("Lunch on Friday?").await;
    tmux.wait_for("● live").await;
    tmux.wait_for("1 unread").await;
    tmux.wait_for_title("Convos (1)").await;
    alice
        .send("bob", "Quarterly report", "Attached.", &key())
        .await
        .expect("alice sends again");
    tmux.wait_for("Quarterly report").await;
    tmux.wait_for_title("Convos (2)").await;

    // Quitting gives the shell back and clears the title.
    tmux.keys(&["q"]);
    tmux.wait("quit to the shell", Tmux::screen, |s| {
        s.contains("shell-prompt$") && !s.contains("● live")
    })
    .await;
    tmux.wait("cleared the title", Tmux::title, |t| !t.contains("Convos"))
        .await;
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn with_the_mouse_on_a_click_selects_a_thread_and_a_second_click_opens_it(db: PgPool) {
    let (server, worker) = spawn_stack(db).await;
    let alice = Client::new(&server.base, Some(server.user("alice").await.token));
    let bob = server.user("bob").await.token;
    alice
        .send("bob", "Older thread", "The first one.", &key())
        .await
        .expect("alice sends");
    alice
        .send("bob", "Newer thread", "The second one.", &key())
        .await
        .expect("alice sends again");
    let home = config_home("mouse = true\n");
    let tmux = Tmux::new("convos-terminal");
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "convos",
        "-x",
        "100",
        "-y",
        "30",
        &client(&server.base, &bob, &home),
    ]);
    tmux.wait_for("Older thread").await;
    tmux.wait_for("Select a thread").await;

    // The thread list starts at column 15 (1-based); the second thread's rows are 4 and 5.
    // An SGR mouse report, as the terminal sends for a left click (press, then release).
    let click = |column: u16, row: u16| {
        tmux.keys(&["-l", &format!("\x1b[<0;{column};{row}M")]);
        tmux.keys(&["-l", &format!("\x1b[<0;{column};{row}m")]);
    };
    click(20, 4);
    click(20, 4);
    tmux.wait_for("The first one.").await;
    worker.stop().await;
}
