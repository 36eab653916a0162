//! The real `convos` binary in a real pseudo-terminal (tmux), against a real server and worker:
//! bob sees alice's message arrive live, opens it, replies, and alice (through the client's own
//! API module, as her client would) has the reply; `convos login` stores its token privately
//! even over a file others could read.
//!
//! Accounts are made through the test kit (the client's own sign-up screen is tested in
//! `login.rs`).

mod support;

use convos_core::api::Folder;
use convos_testkit::TestServer;
use convos_tui::api::Client;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use support::{Tmux, spawn_worker};

/// Starts the real server (heartbeats every 2 s) under a fresh Redis prefix.
async fn spawn_server(db: PgPool) -> TestServer {
    TestServer::spawn_with(db, |s| s.sse_heartbeat_secs = 2).await
}

/// A fresh idempotency key, as the client makes one per draft.
fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn bob_sees_mail_arrive_live_opens_it_and_replies(db: PgPool) {
    let server = spawn_server(db.clone()).await;
    let worker = spawn_worker(&db, &server).await;
    let base = server.base.clone();
    // Signed up and confirmed as following the emailed link does, so the accounts get email.
    let alice = Client::new(&base, Some(server.user("alice").await.token));
    let bob = server.user("bob").await.token;

    let tmux = Tmux::new("convos-e2e");
    let config_home =
        std::env::temp_dir().join(format!("convos-e2e-config-{}", uuid::Uuid::new_v4()));
    // An "editor" that writes a line into the draft it is given.
    std::fs::create_dir_all(&config_home).unwrap();
    let editor = config_home.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'Written in the editor\\n' > \"$1\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .unwrap();
    let command = format!(
        "env CONVOS_SERVER={base} CONVOS_TOKEN={bob} XDG_CONFIG_HOME={} EDITOR={} TERM=xterm-256color {}",
        config_home.display(),
        editor.display(),
        env!("CARGO_BIN_EXE_convos")
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "convos",
        "-x",
        "100",
        "-y",
        "30",
        &command,
    ]);
    tmux.wait_for("● live").await;
    tmux.wait_for("No conversations here.").await;

    alice
        .send("bob", "Lunch on Friday?", "Are you free at noon?", &key())
        .await
        .expect("alice sends");
    // No key is pressed: the message must arrive by itself.
    tmux.wait_for("Lunch on Friday?").await;
    tmux.wait_for("1 unread").await;

    tmux.keys(&["Enter"]);
    tmux.wait_for("Are you free at noon?").await;
    tmux.keys(&["r"]);
    tmux.wait_for("Reply").await;
    tmux.keys(&["-l", "Yes, see you there"]);
    tmux.keys(&["C-s"]);
    tmux.wait_for("Sent").await;

    let threads = alice
        .threads(Folder::Inbox, None)
        .await
        .expect("alice's inbox");
    let thread = threads.items[0].id;
    let messages = alice.messages(thread, None).await.expect("the thread");
    assert_eq!(
        messages.items[0].body.as_deref(),
        Some("Yes, see you there"),
        "alice has bob's reply"
    );
    assert_eq!(messages.items[0].sender.username, "bob");

    // A second reply, written in $EDITOR (Ctrl-e) and sent from the composer.
    tmux.keys(&["r"]);
    tmux.wait_for("Reply").await;
    tmux.keys(&["C-e"]);
    tmux.wait_for("Back from the editor").await;
    tmux.wait_for("Written in the editor").await;
    tmux.keys(&["C-s"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let messages = alice.messages(thread, None).await.expect("the thread");
        if messages.items[0].body.as_deref() == Some("Written in the editor") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edited reply never arrived:\n{}",
            tmux.screen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A third, pasted: 3,000 characters over two lines arrive whole and at once (crossterm's
    // reader stalled at 1,024 until the next key, and a paste came as keys).
    tmux.keys(&["r"]);
    tmux.wait_for("Reply").await;
    let pasted = format!("{}\n{}", "abcdefghi ".repeat(150), "jklmnopqr ".repeat(150));
    let file = std::env::temp_dir().join(format!("{}-paste", tmux.socket));
    std::fs::write(&file, &pasted).unwrap();
    tmux.run(&["load-buffer", "-b", "paste", file.to_str().unwrap()]);
    tmux.run(&["paste-buffer", "-p", "-b", "paste", "-t", "convos"]);
    let _ = std::fs::remove_file(&file);
    tmux.wait_for("3001/64000").await;
    tmux.keys(&["C-s"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let messages = alice.messages(thread, None).await.expect("the thread");
        if messages.items[0].body.as_deref() == Some(pasted.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pasted reply never arrived whole:\n{}",
            tmux.screen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    tmux.keys(&["q"]);
    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.run(&["list-sessions"]).contains("convos") {
        assert!(
            Instant::now() < deadline,
            "the client did not quit:\n{}",
            tmux.screen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn logging_in_replaces_a_token_file_others_could_read(db: PgPool) {
    use std::os::unix::fs::PermissionsExt;
    let server = spawn_server(db).await;
    let base = server.base.clone();
    // Bob has an account (password `password-bob`); the kit signs him up and logs him in once.
    server.unverified_user("bob").await;
    // A token file left readable by everyone, as an older client or a script could leave it.
    let config_home =
        std::env::temp_dir().join(format!("convos-e2e-config-{}", uuid::Uuid::new_v4()));
    let token_file = config_home.join("convos").join("token");
    std::fs::create_dir_all(token_file.parent().unwrap()).unwrap();
    std::fs::write(&token_file, "cvs_stale").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let tmux = Tmux::new("convos-e2e");
    let command = format!(
        "env CONVOS_SERVER={base} XDG_CONFIG_HOME={} TERM=xterm-256color {} login",
        config_home.display(),
        env!("CARGO_BIN_EXE_convos")
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "convos",
        "-x",
        "100",
        "-y",
        "30",
        &command,
    ]);
    // Keep the pane once `convos login` has exited, to read what it said.
    tmux.run(&["set-option", "-t", "convos", "remain-on-exit", "on"]);
    tmux.wait_for(&format!("Server [{base}]:")).await;
    tmux.keys(&["Enter"]);
    tmux.wait_for("Username:").await;
    tmux.keys(&["-l", "bob"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("Password:").await;
    tmux.keys(&["-l", "password-bob"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("Logged in as bob.").await;

    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_ne!(token, "cvs_stale");
    assert!(
        !tmux.screen().contains(&token),
        "the token is not shown on screen"
    );
    let me = Client::new(&base, Some(token))
        .me()
        .await
        .expect("the stored token works");
    assert_eq!(me.user.username, "bob", "the stored token is bob's session");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn bob_chooses_a_daily_digest_from_the_command_line(db: PgPool) {
    let server = spawn_server(db).await;
    let base = server.base.clone();
    let bob = server.user("bob").await;
    let tmux = Tmux::new("convos-e2e");
    // The command ends at once: the pane's shell keeps what it printed on screen (an option set
    // after the session starts could come too late).
    let command = format!(
        "env CONVOS_SERVER={base} CONVOS_TOKEN={} TERM=xterm-256color {} email daily --hour 7 \
         --tz Europe/Paris; sleep 60",
        bob.token,
        env!("CARGO_BIN_EXE_convos")
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "convos",
        "-x",
        "120",
        "-y",
        "10",
        &command,
    ]);
    tmux.wait_for("Email to bob@example.com: a daily digest at 07:00 Europe/Paris.")
        .await;
    let me = Client::new(&base, Some(bob.token.clone()))
        .me()
        .await
        .expect("bob's settings");
    assert_eq!(me.settings.email_mode, convos_core::api::EmailMode::Daily);
    assert_eq!(me.settings.digest_hour, 7);
    assert_eq!(me.settings.time_zone, "Europe/Paris");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_operators_client_pages_through_every_dead_job(db: PgPool) {
    // The queue board's list stopped at the newest 100 dead jobs.
    let server = spawn_server(db.clone()).await;
    let admin = server.user("ada").await;
    sqlx::query("update users set is_admin = true where username = 'ada'")
        .execute(&db)
        .await
        .unwrap();
    for n in 0..150 {
        let mut tx = db.begin().await.unwrap();
        convos_store::jobs::enqueue(
            &mut tx,
            convos_core::jobs::JobKind::PurgeExpired,
            &format!("dead-{n}"),
            None,
            serde_json::json!({}),
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    sqlx::query(
        "update jobs set state = 'dead', attempts = 1, finished_at = now() where key like 'dead-%'",
    )
    .execute(&db)
    .await
    .unwrap();

    let client = Client::new(&server.base, Some(admin.token.clone()));
    let first = client.dead_jobs(None).await.expect("the first page");
    assert_eq!(first.items.len(), 100);
    let cursor = first.next_cursor.expect("more to come");
    let second = client
        .dead_jobs(Some(&cursor))
        .await
        .expect("the second page");
    assert_eq!(second.items.len(), 50);
    assert_eq!(second.next_cursor, None);
    let mut ids: Vec<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|j| j.id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 150, "every dead job, once");
}

/// Mallory writes `body` to bob, who has it in his inbox in the real client (110×30, in tmux);
/// returns mallory's client and bob's terminal.
async fn bob_in_his_client_with_a_message_from_mallory(
    server: &TestServer,
    body: &str,
) -> (Client, Tmux) {
    let base = server.base.clone();
    let mallory = Client::new(&base, Some(server.user("mallory").await.token));
    let bob = server.user("bob").await.token;
    mallory
        .send("bob", "hey", body, &key())
        .await
        .expect("mallory writes once");
    let tmux = Tmux::new("convos-e2e");
    let config_home =
        std::env::temp_dir().join(format!("convos-e2e-config-{}", uuid::Uuid::new_v4()));
    let command = format!(
        "env CONVOS_SERVER={base} CONVOS_TOKEN={bob} XDG_CONFIG_HOME={} TERM=xterm-256color {}",
        config_home.display(),
        env!("CARGO_BIN_EXE_convos")
    );
    tmux.session("convos", (110, 30), &command);
    tmux.wait_for(body).await;
    (mallory, tmux)
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn bob_blocks_a_harasser_from_his_inbox_and_they_can_write_no_more(db: PgPool) {
    // Nothing stopped a harasser: muting is per thread, and every send starts a new one.
    let server = spawn_server(db).await;
    let (mallory, tmux) = bob_in_his_client_with_a_message_from_mallory(&server, "answer me").await;
    tmux.keys(&["B"]);
    tmux.wait_for("Block mallory? They will not be able to write to you.")
        .await;
    tmux.keys(&["y"]);
    tmux.wait_for("Blocked mallory").await;

    let refused = mallory
        .send("bob", "again", "answer me!", &key())
        .await
        .expect_err("blocked");
    assert!(
        matches!(
            refused,
            convos_tui::api::ApiError::Server { status: 403, .. }
        ),
        "{refused:?}"
    );
    // Asked again, the client offers to unblock.
    tmux.keys(&["B"]);
    tmux.wait_for("Unblock mallory?").await;
    tmux.keys(&["n"]);
    tmux.wait_for("mallory stays blocked").await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn bob_reports_a_harassers_message_to_the_operators_from_his_inbox(db: PgPool) {
    // Blocking stops one account; the operators, who can stop the person, heard nothing.
    let server = spawn_server(db).await;
    let (_, tmux) =
        bob_in_his_client_with_a_message_from_mallory(&server, "I know where you live").await;
    tmux.keys(&["!"]);
    tmux.wait_for("s spam · h harassment · o other").await;
    tmux.keys(&["h"]);
    tmux.wait_for("Reported to the operators as harassment")
        .await;

    let reported: Vec<(String, String, Option<String>)> =
        sqlx::query_as("select reported_username, reason, body from reports")
            .fetch_all(&server.db)
            .await
            .unwrap();
    assert_eq!(
        reported,
        [(
            "mallory".to_owned(),
            "harassment".to_owned(),
            Some("I know where you live".to_owned())
        )]
    );
}
