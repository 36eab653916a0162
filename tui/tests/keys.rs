//! Rebinding keys in `config.toml`, seen in the real `convos` binary in tmux against a real
//! server: the status bar's hint, the help window and the composer's footer show the new keys,
//! the new keys work, and the old ones do nothing.

mod support;

use convos_testkit::TestServer;
use convos_tui::api::Client;
use sqlx::PgPool;
use support::{Tmux, convos};

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_rebound_key_in_config_toml_changes_the_hints_and_the_help(db: PgPool) {
    let server = TestServer::spawn_with(db, |s| s.sse_heartbeat_secs = 2).await;
    let alice = server.user("alice").await.token;
    let bob = Client::new(&server.base, Some(server.user("bob").await.token));
    bob.send("alice", "Rebinding", "Do the keys follow?", "rebind-1")
        .await
        .expect("bob writes");
    let home = support::config_home("convos-keys-config");
    std::fs::write(
        home.join("convos/config.toml"),
        "[keys]\nhelp = \"h\"\nreply = \"e\"\n\n[keys.composer]\nsend = \"ctrl+x\"\n",
    )
    .unwrap();

    let tmux = Tmux::new("convos-keys");
    tmux.session("convos", (100, 30), &convos(&server.base, &alice, &home));
    tmux.wait_for("● live").await;
    tmux.wait_for("Do the keys follow?").await;
    assert!(tmux.screen().contains("h help"), "{}", tmux.screen());
    assert!(!tmux.screen().contains("? help"), "{}", tmux.screen());

    // `?` does nothing now: had it opened the help, the `h` after it would close it.
    tmux.keys(&["?", "h"]);
    tmux.wait_for("Keys (").await;
    tmux.wait_for("        h  this help").await;
    tmux.wait_for("        e  reply in the thread").await;
    assert!(!tmux.screen().contains("?  this help"), "{}", tmux.screen());
    tmux.keys(&["q"]);
    tmux.wait_gone("convos", "Keys (").await;

    // `r` no longer replies: had it opened the composer, the `h` after it would be typed there.
    tmux.keys(&["r", "h"]);
    tmux.wait_for("Keys (").await;
    tmux.keys(&["q"]);
    tmux.wait_gone("convos", "Keys (").await;

    // `e` replies, and the composer's footer shows its own rebound key.
    tmux.keys(&["e"]);
    tmux.wait_for("Reply").await;
    tmux.wait_for("Ctrl-x send").await;
    assert!(!tmux.screen().contains("Ctrl-s"), "{}", tmux.screen());
    tmux.keys(&["-l", "They do"]);
    tmux.keys(&["C-x"]);
    tmux.wait_for("Sent").await;
    let thread = bob
        .threads(convos_core::api::Folder::Inbox, None)
        .await
        .expect("bob's inbox")
        .items[0]
        .id;
    let messages = bob.messages(thread, None).await.expect("the thread");
    assert_eq!(messages.items[0].body.as_deref(), Some("They do"));
    tmux.keys(&["C-c"]);
}
