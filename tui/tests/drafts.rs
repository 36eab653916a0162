//! Drafts survive a crash: alice writes a message in the real `convos` client in tmux, the
//! client is killed with SIGKILL while she writes, she starts it again, finds the draft in the
//! Drafts list, resumes it and sends it; bob has it through the API.

mod support;

use convos_testkit::TestServer;
use convos_tui::api::Client;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Tmux, convos, until};

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

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_draft_survives_a_killed_client_and_is_resumed_and_sent(db: PgPool) {
    let server = TestServer::spawn_with(db.clone(), |s| s.sse_heartbeat_secs = 2).await;
    let base = server.base.clone();
    let alice = server.user("alice").await.token;
    let bob = server.user("bob").await.token;
    let config_home: PathBuf = support::config_home("convos-e2e-config");
    let tmux = Tmux::new("convos-e2e");
    tmux.session("first", (120, 32), &convos(&base, &alice, &config_home));
    tmux.wait_in("first", "● live").await;

    // Alice writes to bob.
    tmux.keys_to("first", &["c"]);
    tmux.wait_in("first", "New message").await;
    tmux.text_to("first", "bob");
    tmux.keys_to("first", &["Tab"]);
    tmux.wait_in("first", "Subject: ▏").await;
    tmux.text_to("first", "Survivor");
    tmux.keys_to("first", &["Tab"]);
    tmux.text_to("first", "Written before the crash");
    tmux.wait_in("first", "Written before the crash").await;
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
    tmux.session("second", (120, 32), &convos(&base, &alice, &config_home));
    tmux.wait_in("second", "● live").await;
    tmux.keys_to("second", &["D"]);
    tmux.wait_in("second", "Drafts (1)").await;
    tmux.wait_in("second", "Written before the crash").await;
    tmux.keys_to("second", &["Enter"]);
    tmux.wait_in("second", "New message").await;
    tmux.wait_in("second", "Subject: Survivor").await;
    tmux.keys_to("second", &["C-s"]);
    tmux.wait_gone("second", "New message").await;
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
    tmux.keys_to("second", &["C-c"]);
}
