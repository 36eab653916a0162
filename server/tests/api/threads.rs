//! Folders, thread views, replies, thread-wide actions and pagination.

use convos_testkit::{TestServer, id};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use std::collections::HashSet;

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_reply_goes_to_the_other_participant_and_keeps_the_thread_subject(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let first = app.send(&alice, &bob, "Lunch?", "Friday?").await;
    let thread = first["thread_id"].as_str().unwrap();
    let res = app
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &bob,
            json!({"body": "Sure", "subject": "Something else", "recipient": "carol"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    assert_eq!(res.body["recipient"]["username"], "alice");
    assert_eq!(res.body["sender"]["username"], "bob");
    assert_eq!(res.body["subject"], "Lunch?");
    assert_eq!(res.body["in_reply_to"], first["id"]);
    assert_eq!(res.body["thread_id"], thread);
    let third = app.reply(&alice, thread, "12:30").await;
    assert_eq!(
        third["in_reply_to"], res.body["id"],
        "answers the newest message"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_listing_shows_the_start_of_a_long_last_message_and_that_it_goes_on(db: PgPool) {
    // A listing reads only the start of each last message (it read whole bodies, up to 25 MB a
    // page, to show 100 characters of each); what it shows of it stays the same.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let excerpt_of = |thread: serde_json::Value| {
        thread["last_message"]["body_excerpt"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let longest = format!("{} {}", "拉麺".repeat(20), "x".repeat(63_958));
    app.send(&alice, &bob, "Longest", &longest).await;
    let spaced = format!("start{}end", " ".repeat(5_000));
    app.send(&alice, &bob, "Spaced", &spaced).await;
    let short = "Just this.";
    app.send(&alice, &bob, "Short", short).await;

    let listed = app.get("/api/v1/threads?folder=inbox", &bob).await;
    let by_subject = |subject: &str| {
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["subject"] == subject)
            .cloned()
            .unwrap()
    };
    let shown = excerpt_of(by_subject("Longest"));
    assert_eq!(
        shown,
        format!("{} {}…", "拉麺".repeat(20), "x".repeat(59)),
        "100 characters, then an ellipsis"
    );
    assert_eq!(
        excerpt_of(by_subject("Spaced")),
        "start…",
        "it goes on past what was read"
    );
    assert_eq!(excerpt_of(by_subject("Short")), short);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_thread_shows_the_callers_view(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let first = app.send(&alice, &bob, "Plans", "first message").await;
    let thread = first["thread_id"].as_str().unwrap();
    let long = "word ".repeat(60);
    let last = app.reply(&bob, thread, &long).await;

    let for_alice = app.get(&format!("/api/v1/threads/{thread}"), &alice).await;
    let t = &for_alice.body;
    assert_eq!(t["subject"], "Plans");
    assert_eq!(t["message_count"], 2);
    assert_eq!(t["unread_count"], 1);
    assert_eq!(t["archived"], false);
    assert_eq!(t["muted"], false);
    assert_eq!(t["last_message"]["id"], last["id"]);
    assert_eq!(t["last_message"]["sender"]["username"], "bob");
    let excerpt = t["last_message"]["body_excerpt"].as_str().unwrap();
    assert!(
        excerpt.ends_with('…') && excerpt.chars().count() <= 101,
        "{excerpt}"
    );
    assert_eq!(t["last_message_at"], last["created_at"]);
    let names: HashSet<&str> = t["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, HashSet::from(["alice", "bob"]));

    // Bob deletes his reply: his view's newest message is alice's again.
    app.delete(&format!("/api/v1/messages/{}", id(&last)), &bob)
        .await;
    let for_bob = app.get(&format!("/api/v1/threads/{thread}"), &bob).await;
    assert_eq!(for_bob.body["last_message"]["id"], first["id"]);
    assert_eq!(for_bob.body["message_count"], 1);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn folders_hold_the_right_threads_and_archive_moves_them(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let received = app.send(&bob, &alice, "To alice", "x").await["thread_id"].clone();
    let sent = app.send(&alice, &bob, "From alice", "y").await["thread_id"].clone();
    let folder = |name: &'static str| {
        let app = &app;
        let alice = &alice;
        async move {
            app.get(&format!("/api/v1/threads?folder={name}"), alice)
                .await
                .ids()
        }
    };
    assert_eq!(folder("inbox").await, [received.as_str().unwrap()]);
    assert_eq!(folder("sent").await, [sent.as_str().unwrap()]);
    assert_eq!(folder("all").await.len(), 2);
    assert!(folder("archive").await.is_empty());
    let default = app.get("/api/v1/threads", &alice).await.ids();
    assert_eq!(
        default,
        folder("inbox").await,
        "inbox is the default folder"
    );

    let r = received.as_str().unwrap();
    let archived = app
        .act(&format!("/api/v1/threads/{r}/archive"), &alice)
        .await;
    assert_eq!(archived.body["archived"], true);
    assert!(folder("inbox").await.is_empty());
    assert_eq!(folder("archive").await, [r]);
    assert_eq!(
        app.unread_total(&alice).await,
        0,
        "archived threads leave the unread total"
    );

    app.reply(&bob, r, "are you there?").await;
    assert_eq!(
        folder("inbox").await,
        [r],
        "a new message brings it back to the inbox"
    );
    assert!(folder("archive").await.is_empty());
    assert_eq!(app.unread_total(&alice).await, 2);
    let me = app.get("/api/v1/me", &alice).await;
    assert_eq!(
        me.body["unread_by_folder"],
        serde_json::json!({"inbox": 2, "sent": 0, "archive": 0, "all": 2}),
        "per-folder unread counts"
    );
    app.act(&format!("/api/v1/threads/{r}/archive"), &alice)
        .await;
    let me = app.get("/api/v1/me", &alice).await;
    assert_eq!(
        me.body["unread_by_folder"],
        serde_json::json!({"inbox": 0, "sent": 0, "archive": 2, "all": 2})
    );
    app.act(&format!("/api/v1/threads/{r}/unarchive"), &alice)
        .await;

    app.act(&format!("/api/v1/threads/{r}/archive"), &alice)
        .await;
    let back = app
        .act(&format!("/api/v1/threads/{r}/unarchive"), &alice)
        .await;
    assert_eq!(back.body["archived"], false);
    assert_eq!(folder("inbox").await, [r]);

    let bad = app.get("/api/v1/threads?folder=spam", &alice).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.field("folder").contains("inbox"));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn unread_filter_mark_thread_read_and_mute(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let t1 = app.send(&bob, &alice, "One", "a").await["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.reply(&bob, &t1, "b").await;
    let t2 = app.send(&bob, &alice, "Two", "c").await["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.act(&format!("/api/v1/threads/{t2}/read"), &alice).await;

    let unread = app.get("/api/v1/threads?unread=true", &alice).await;
    assert_eq!(unread.ids(), [t1.as_str()]);
    let read = app.act(&format!("/api/v1/threads/{t1}/read"), &alice).await;
    assert_eq!(read.body["unread_count"], 0);
    assert!(
        app.get("/api/v1/threads?unread=true", &alice)
            .await
            .ids()
            .is_empty()
    );
    assert_eq!(app.unread_total(&alice).await, 0);
    let bob_view = app.get(&format!("/api/v1/threads/{t1}"), &bob).await;
    assert_eq!(
        bob_view.body["unread_count"], 0,
        "bob's own messages were read for him already"
    );

    let muted = app.act(&format!("/api/v1/threads/{t1}/mute"), &alice).await;
    assert_eq!(muted.body["muted"], true);
    assert_eq!(
        app.get(&format!("/api/v1/threads/{t1}"), &bob).await.body["muted"],
        false
    );
    let unmuted = app
        .act(&format!("/api/v1/threads/{t1}/unmute"), &alice)
        .await;
    assert_eq!(unmuted.body["muted"], false);

    let bad = app.get("/api/v1/threads?unread=maybe", &alice).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.field("unread").contains("true or false"));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn deleting_a_thread_is_for_the_caller_only_and_a_new_message_brings_it_back(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let first = app.send(&alice, &bob, "Old news", "one").await;
    let thread = first["thread_id"].as_str().unwrap();
    app.reply(&bob, thread, "two").await;
    assert_eq!(
        app.delete(&format!("/api/v1/threads/{thread}"), &bob)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/v1/threads/{thread}"), &bob)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(
        app.get("/api/v1/threads?folder=all", &bob)
            .await
            .ids()
            .is_empty()
    );
    assert_eq!(app.unread_total(&bob).await, 0);
    let for_alice = app.get(&format!("/api/v1/threads/{thread}"), &alice).await;
    assert_eq!(for_alice.body["message_count"], 2, "alice's side is intact");

    let new = app.reply(&alice, thread, "three").await;
    let back = app
        .get(&format!("/api/v1/threads/{thread}/messages"), &bob)
        .await;
    assert_eq!(back.ids(), [id(&new)], "bob sees only the new message");
    let t = app.get(&format!("/api/v1/threads/{thread}"), &bob).await;
    assert_eq!(t.body["message_count"], 1);
    assert_eq!(t.body["unread_count"], 1);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn thread_messages_page_newest_first_or_oldest_first(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let first = app.send(&alice, &bob, "Long thread", "0").await;
    let thread = first["thread_id"].as_str().unwrap().to_owned();
    let mut ids = vec![id(&first)];
    for i in 1..20 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        ids.push(id(&app.reply(who, &thread, &i.to_string()).await));
    }
    let page1 = app
        .get(&format!("/api/v1/threads/{thread}/messages"), &alice)
        .await;
    assert_eq!(page1.ids().len(), 15, "15 a page by default");
    let cursor = page1.body["next_cursor"].as_str().unwrap();
    let page2 = app
        .get(
            &format!("/api/v1/threads/{thread}/messages?cursor={cursor}"),
            &alice,
        )
        .await;
    assert_eq!(page2.body["next_cursor"], serde_json::Value::Null);
    let newest_first: Vec<String> = page1.ids().into_iter().chain(page2.ids()).collect();
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(newest_first, expected);

    let mut oldest_first = Vec::new();
    let mut cursor = None::<String>;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/threads/{thread}/messages?order=asc&limit=7&cursor={c}"),
            None => format!("/api/v1/threads/{thread}/messages?order=asc&limit=7"),
        };
        let page = app.get(&path, &bob).await;
        oldest_first.extend(page.ids());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(oldest_first, ids);

    let bad = app
        .get(
            &format!("/api/v1/threads/{thread}/messages?order=sideways"),
            &bob,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad = app
        .get(
            &format!("/api/v1/threads/{thread}/messages?cursor=garbage"),
            &bob,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.field("cursor").contains("cursor"));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn inbox_pages_have_no_duplicates_or_gaps_while_new_threads_arrive(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| s.send_rate_per_min = 1000).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut before = HashSet::new();
    for i in 0..23 {
        before.insert(
            app.send(&bob, &alice, &format!("Thread {i}"), "x").await["thread_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut arrivals = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/threads?limit=5&cursor={c}"),
            None => "/api/v1/threads?limit=5".to_owned(),
        };
        let page = app.get(&path, &alice).await;
        assert_eq!(page.status, StatusCode::OK);
        seen.extend(page.ids());
        // New mail lands between page loads, concurrently from another sender task.
        let (a, b) = tokio::join!(
            app.send(&bob, &alice, "Arrived meanwhile", "new"),
            app.send(&bob, &alice, "Also meanwhile", "new"),
        );
        assert_ne!(a["thread_id"], b["thread_id"]);
        arrivals += 2;
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no thread appears twice");
    assert_eq!(
        unique, before,
        "every thread that existed at the start appears, nothing else"
    );
    assert!(arrivals > 0);
    let first = app.get("/api/v1/threads?limit=100", &alice).await;
    assert_eq!(
        first.ids().len(),
        23 + arrivals,
        "the new threads are at the top on refresh"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn list_limits_are_enforced(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    for q in ["limit=0", "limit=101", "limit=ten"] {
        let res = app.get(&format!("/api/v1/threads?{q}"), &alice).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert!(res.field("limit").contains("1 to 100"));
    }
    assert_eq!(
        app.get("/api/v1/threads?limit=100", &alice).await.status,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_forged_cursor_far_out_of_range_is_a_422_not_a_500(db: PgPool) {
    use base64::Engine;
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "-8000000000000000000:{}",
        uuid::Uuid::nil().simple()
    ));
    for path in [format!("/api/v1/threads?cursor={forged}")] {
        let res = app.get(&path, &alice).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
    }
}
