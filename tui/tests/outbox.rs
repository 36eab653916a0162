//! Two real `convos` clients of one user, sharing one configuration folder (and so one outbox
//! folder, one file per running client), against a real server and worker reached through a
//! switch: with the server unreachable, a reply written in the first client is queued; when the
//! server answers again it is sent exactly once, and both screens settle on it.

mod support;

use convos_testkit::TestServer;
use convos_tui::api::Client;
use sqlx::PgPool;
use support::{Outage, Tmux, convos, spawn_worker, until};

/// The outbox files' contents in the configuration folder `home`.
fn queued(home: &std::path::Path) -> Vec<String> {
    let folder = home.join("convos").join("outbox");
    std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn copies(db: &PgPool, body: &str) -> i64 {
    sqlx::query_scalar("select count(*) from messages where body = $1")
        .bind(body)
        .fetch_one(db)
        .await
        .expect("the count")
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn two_instances_with_a_queued_message_send_it_exactly_once(db: PgPool) {
    let server = TestServer::spawn_with(db.clone(), |s| s.sse_heartbeat_secs = 2).await;
    let worker = spawn_worker(&db, &server).await;
    let switch = Outage::start(&server.base).await;
    let alice = server.user("alice").await.token;
    let bob = Client::new(&server.base, Some(server.user("bob").await.token));
    bob.send("alice", "Plans for Sunday", "Hike or brunch?", "plans-1")
        .await
        .expect("bob writes");

    // Two clients of alice's, one configuration folder, both through the switch.
    let home = support::config_home("convos-outbox-config");
    let tmux = Tmux::new("convos-outbox");
    for name in ["first", "second"] {
        tmux.session(name, (120, 30), &convos(&switch.base, &alice, &home));
        tmux.wait_in(name, "● live").await;
        tmux.wait_in(name, "Hike or brunch?").await;
    }

    // The server goes away; the first client replies anyway.
    switch.cut();
    for name in ["first", "second"] {
        tmux.wait_in(name, "reconnecting").await;
    }
    let reply = "Brunch it is";
    tmux.keys_to("first", &["r"]);
    tmux.wait_in("first", "Reply").await;
    tmux.text_to("first", reply);
    tmux.keys_to("first", &["C-s"]);
    tmux.wait_in("first", "✉ 1 queued").await;
    assert!(!tmux.screen_of("second").contains("✉"));
    assert_eq!(copies(&db, reply).await, 0, "nothing reached the server");
    until("the reply is in one outbox file", || {
        queued(&home).iter().filter(|q| q.contains(reply)).count() == 1
    })
    .await;

    // The server answers again: the reply is sent, and both screens show it in the thread's
    // row.
    switch.restore();
    tmux.wait_gone("first", "✉ 1 queued").await;
    for name in ["first", "second"] {
        tmux.wait_in(name, "● live").await;
        tmux.wait_in(name, "Plans for Sunday — Brunch it is").await;
    }
    until("every outbox file is empty", || {
        queued(&home).iter().all(|q| !q.contains(reply))
    })
    .await;
    assert_eq!(copies(&db, reply).await, 1, "sent exactly once");
    assert!(!tmux.screen_of("second").contains("✉"));

    let thread = bob
        .threads(convos_core::api::Folder::Inbox, None)
        .await
        .expect("bob's inbox")
        .items[0]
        .id;
    let messages = bob.messages(thread, None).await.expect("the thread");
    let bodies: Vec<_> = messages
        .items
        .iter()
        .filter_map(|m| m.body.as_deref())
        .collect();
    assert_eq!(bodies, [reply, "Hike or brunch?"], "bob has it once");

    for name in ["first", "second"] {
        tmux.keys_to(name, &["C-c"]);
    }
    worker.stop().await;
}
