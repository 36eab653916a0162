//! Ephemeral and read-once messages between two real `convos` clients, each in its own tmux
//! session, against a real server and worker: alice sends a message that expires after 15 s
//! from her composer, and bob sees it arrive with its time left and then vanish, without a key
//! pressed; alice sends a read-once message and bob opens it once, after which it is gone for
//! him.

mod support;

use convos_testkit::TestServer;
use convos_tui::api::{ApiError, Client};
use sqlx::PgPool;
use std::time::Duration;
use support::{Tmux, spawn_worker};

impl Tmux {
    /// Starts `user`'s client with `token` (a configuration folder of its own) in a session
    /// named after them.
    fn client(&self, user: &str, base: &str, token: &str) {
        let home = support::config_home("convos-e2e-config");
        self.session(user, (160, 36), &support::convos(base, token, &home));
    }

    /// Writes a new message to bob in `user`'s composer, up to the body.
    async fn compose_to_bob(&self, user: &str, subject: &str, body: &str) {
        self.keys_to(user, &["c"]);
        self.wait_in(user, "New message").await;
        self.text_to(user, "bob");
        // Tab completes the username from the directory, then moves to the subject.
        self.keys_to(user, &["Tab"]);
        self.wait_in(user, "Subject: ▏").await;
        self.text_to(user, subject);
        self.keys_to(user, &["Tab"]);
        self.text_to(user, body);
    }
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_ephemeral_message_vanishes_and_a_read_once_message_opens_once(db: PgPool) {
    let server = TestServer::spawn_with(db.clone(), |s| s.sse_heartbeat_secs = 2).await;
    let worker = spawn_worker(&db, &server).await;
    let base = server.base.clone();
    let alice = server.user("alice").await.token;
    let bob = server.user("bob").await.token;
    let tmux = Tmux::new("convos-e2e");
    tmux.client("alice", &base, &alice);
    tmux.client("bob", &base, &bob);
    for user in ["alice", "bob"] {
        tmux.wait_in(user, "● live").await;
        tmux.wait_in(user, "No conversations here.").await;
    }

    // Alice: a message that disappears 15 s after sending (Ctrl-t, then a typed duration).
    tmux.compose_to_bob("alice", "Vanishing", "This message self-destructs")
        .await;
    tmux.keys_to("alice", &["C-t"]);
    tmux.wait_in("alice", "Expires: 10m▏").await;
    tmux.keys_to("alice", &["BSpace", "BSpace", "BSpace"]);
    tmux.text_to("alice", "15s");
    tmux.wait_in("alice", "New message · disappears 15s after sending")
        .await;
    tmux.keys_to("alice", &["Enter", "C-s"]);
    // Sent (the composer closes), and sent with its expiry.
    tmux.wait_on("alice", "New message", false, Duration::from_secs(20))
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
    tmux.wait_in("bob", "Vanishing").await;
    tmux.wait_in("bob", "s left · now").await;
    tmux.keys_to("bob", &["Enter"]);
    tmux.wait_in("bob", "This message self-destructs").await;
    tmux.wait_in("bob", "[expires in").await;
    // Then it vanishes from the thread and the list, with no key pressed.
    tmux.wait_on(
        "bob",
        "This message self-destructs",
        false,
        Duration::from_secs(30),
    )
    .await;
    tmux.wait_in("bob", "The thread's last message expired")
        .await;
    tmux.wait_on("bob", "Vanishing", false, Duration::from_secs(5))
        .await;

    // Alice: a read-once message (Ctrl-o).
    tmux.compose_to_bob("alice", "Secret", "correct-horse-battery-staple")
        .await;
    tmux.keys_to("alice", &["C-o"]);
    tmux.wait_in("alice", "Read once: yes").await;
    tmux.keys_to("alice", &["C-s"]);
    tmux.wait_on("alice", "New message", false, Duration::from_secs(20))
        .await;

    // Bob: sealed, with a hint that it opens once; he opens it and reads it.
    tmux.wait_in("bob", "Secret").await;
    let bobs = Client::new(&base, Some(bob.clone()));
    let inbox = bobs
        .threads(convos_core::api::Folder::Inbox, None)
        .await
        .expect("bob's inbox");
    let secret = inbox.items[0].last_message.as_ref().expect("a message").id;
    tmux.keys_to("bob", &["Enter"]);
    tmux.wait_in("bob", "press o to open it; it can be read only once")
        .await;
    assert!(!tmux.screen_of("bob").contains("correct-horse"));
    tmux.keys_to("bob", &["o"]);
    tmux.wait_in("bob", "correct-horse-battery-staple").await;
    tmux.wait_in("bob", "this was its one read").await;
    tmux.wait_in("bob", "Inbox (0)").await;

    // Leaving the thread ends its one read: gone from the screen and from the server.
    tmux.keys_to("bob", &["q"]);
    tmux.wait_on("bob", "correct-horse", false, Duration::from_secs(5))
        .await;
    tmux.keys_to("bob", &["R"]);
    tmux.wait_in("bob", "No conversations here.").await;
    assert!(!tmux.screen_of("bob").contains("Secret"));
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
        tmux.keys_to(user, &["C-c"]);
    }
    worker.stop().await;
}
