//! Starting threads, reading messages, read flags and delete-for-me.

use convos_testkit::{TestServer, id};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_new_message_starts_a_thread_and_ignores_client_sent_server_fields(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let res = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({
                "recipient": "bob", "subject": "Hello", "body": "Hi Bob",
                "sender": carol.id, "id": "0191d5c6-0000-7000-8000-000000000000",
                "thread_id": "0191d5c6-0000-7000-8000-000000000001",
                "created_at": "2001-01-01T00:00:00Z", "is_read": true,
            }),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    let m = &res.body;
    assert_eq!(
        m["sender"]["username"], "alice",
        "the sender is always the token's user"
    );
    assert_eq!(m["recipient"]["username"], "bob");
    assert_eq!(m["subject"], "Hello");
    assert_eq!(m["body"], "Hi Bob");
    assert_eq!(
        m["is_read"], true,
        "a sender's own message counts as read for them"
    );
    assert_eq!(m["in_reply_to"], serde_json::Value::Null);
    assert_eq!(m["read_once"], false);
    assert_ne!(m["id"], "0191d5c6-0000-7000-8000-000000000000");
    assert!(!m["created_at"].as_str().unwrap().starts_with("2001"));

    let for_bob = app.get(&format!("/api/v1/messages/{}", id(m)), &bob).await;
    assert_eq!(for_bob.body["is_read"], false, "unread for the recipient");
    assert_eq!(for_bob.body["thread_id"], m["thread_id"]);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn subjects_and_bodies_are_limited_in_characters_and_round_trip_exactly(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let subject = "🦀".repeat(139) + "é";
    let body = "漢字".repeat(31_999) + "👍🏽";
    assert_eq!(body.chars().count(), 64_000);
    let sent = app.send(&alice, &bob, &subject, &body).await;
    let read = app
        .get(&format!("/api/v1/messages/{}", id(&sent)), &bob)
        .await;
    assert_eq!(read.body["subject"].as_str().unwrap(), subject);
    assert_eq!(read.body["body"].as_str().unwrap(), body);

    let before = app.message_rows().await;
    let long_subject = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({"recipient": "bob", "subject": "🦀".repeat(141), "body": "x"}),
        )
        .await;
    assert_eq!(long_subject.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(long_subject.field("subject").contains("at most 140"));
    let long_body = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({"recipient": "bob", "subject": "s", "body": "漢".repeat(64_001)}),
        )
        .await;
    assert_eq!(long_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(long_body.field("body").contains("at most 64000"));
    assert_eq!(app.message_rows().await, before, "nothing was created");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn nul_characters_are_refused_before_reaching_postgres(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    let res = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({"recipient": "bob", "subject": "a\u{0}b", "body": "c\u{0}d"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.field("subject").contains("NUL"));
    assert!(res.field("body").contains("NUL"));
    assert_eq!(app.message_rows().await, 0);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_subject_is_one_line_of_visible_text(db: PgPool) {
    // Every listing shows the subject: a line separator broke it in two in other clients, an
    // override reversed what followed, a zero-width space hid inside a word.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    for subject in [
        "Invoice\u{2028}Paid",
        "Invoice \u{202e}fdp.exe",
        "pay\u{200b}pal receipt",
        "Report\u{e0100}\u{e0101}",
    ] {
        let res = app
            .post(
                "/api/v1/messages",
                &alice,
                json!({"recipient": "bob", "subject": subject, "body": "b"}),
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{subject:?}");
    }
    assert_eq!(app.message_rows().await, 0);
    let fine =
        "Dîner ❤\u{fe0f} 👩\u{200d}💻 نامه\u{200c}ها 🏳\u{fe0f}\u{200d}🌈 top 3\u{fe0f}\u{20e3}";
    let sent = app.send(&alice, &app.user("carol").await, fine, "b").await;
    assert_eq!(sent["subject"], fine);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_recipient_must_exist_and_not_be_the_sender(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    for (recipient, reason) in [
        ("nobody", "no user"),
        ("alice", "yourself"),
        ("ALICE", "yourself"),
    ] {
        let res = app
            .post(
                "/api/v1/messages",
                &alice,
                json!({"recipient": recipient, "subject": "s", "body": "b"}),
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            res.field("recipient").contains(reason),
            "{recipient}: {res:?}"
        );
    }
    assert_eq!(app.message_rows().await, 0);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn reading_a_message_never_changes_its_read_state(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let m = app.send(&alice, &bob, "Hi", "there").await;
    let path = format!("/api/v1/messages/{}", id(&m));
    for _ in 0..2 {
        assert_eq!(app.get(&path, &bob).await.body["is_read"], false);
    }
    assert_eq!(app.unread_total(&bob).await, 1);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn read_flags_are_per_person_idempotent_and_drive_unread_counts(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let m = app.send(&alice, &bob, "Hi", "there").await;
    let thread = m["thread_id"].as_str().unwrap().to_owned();
    let read = format!("/api/v1/messages/{}/read", id(&m));
    let unread = format!("/api/v1/messages/{}/unread", id(&m));

    for _ in 0..2 {
        let res = app.act(&read, &bob).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.body["is_read"], true);
    }
    assert_eq!(app.unread_total(&bob).await, 0);
    assert_eq!(
        app.get(&format!("/api/v1/threads/{thread}"), &bob)
            .await
            .body["unread_count"],
        0
    );

    for _ in 0..2 {
        assert_eq!(app.act(&unread, &bob).await.body["is_read"], false);
    }
    assert_eq!(app.unread_total(&bob).await, 1);
    assert_eq!(
        app.get(&format!("/api/v1/threads/{thread}"), &bob)
            .await
            .body["unread_count"],
        1
    );

    // Alice's flag is her own: marking her copy unread changes nothing for Bob.
    assert_eq!(app.act(&unread, &alice).await.body["is_read"], false);
    assert_eq!(
        app.unread_total(&alice).await,
        1,
        "her own flag counts for her"
    );
    assert_eq!(app.act(&read, &bob).await.body["is_read"], true);
    let for_alice = app
        .get(&format!("/api/v1/messages/{}", id(&m)), &alice)
        .await;
    assert_eq!(
        for_alice.body["is_read"], false,
        "bob's read does not touch alice's flag"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn delete_for_me_leaves_the_other_copy_and_a_second_delete_is_404(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let m = app.send(&alice, &bob, "Hi", "there").await;
    let path = format!("/api/v1/messages/{}", id(&m));
    assert_eq!(app.delete(&path, &bob).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, &bob).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&path, &alice).await.status,
        StatusCode::OK,
        "alice keeps her copy"
    );
    let again = app.delete(&path, &bob).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.unread_total(&bob).await,
        0,
        "a deleted unread message no longer counts"
    );
    let inbox = app.get("/api/v1/threads", &bob).await;
    assert!(
        inbox.ids().is_empty(),
        "the thread is gone for bob: {inbox:?}"
    );
    let sent = app.get("/api/v1/threads?folder=sent", &alice).await;
    assert_eq!(sent.ids(), [m["thread_id"].as_str().unwrap()]);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn strangers_get_404_for_everything_and_change_nothing(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mallory = app.user("mallory").await;
    let m = app.send(&alice, &bob, "Private", "for bob only").await;
    let mid = id(&m);
    let thread = m["thread_id"].as_str().unwrap();
    let missing = app
        .get(
            "/api/v1/messages/0191d5c6-0000-7000-8000-000000000000",
            &mallory,
        )
        .await;
    let malformed = app.get("/api/v1/messages/42", &mallory).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        malformed.body, missing.body,
        "a malformed id looks exactly like a missing one"
    );

    let attempts = [
        app.get(&format!("/api/v1/messages/{mid}"), &mallory).await,
        app.act(&format!("/api/v1/messages/{mid}/read"), &mallory)
            .await,
        app.act(&format!("/api/v1/messages/{mid}/unread"), &mallory)
            .await,
        app.delete(&format!("/api/v1/messages/{mid}"), &mallory)
            .await,
        app.get(&format!("/api/v1/threads/{thread}"), &mallory)
            .await,
        app.get(&format!("/api/v1/threads/{thread}/messages"), &mallory)
            .await,
        app.post(
            &format!("/api/v1/threads/{thread}/messages"),
            &mallory,
            json!({"body": "hi"}),
        )
        .await,
        app.act(&format!("/api/v1/threads/{thread}/read"), &mallory)
            .await,
        app.act(&format!("/api/v1/threads/{thread}/archive"), &mallory)
            .await,
        app.delete(&format!("/api/v1/threads/{thread}"), &mallory)
            .await,
    ];
    for res in attempts {
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{res:?}");
        assert_eq!(res.body, missing.body);
    }
    assert_eq!(app.message_rows().await, 1, "no reply was created");
    let seen = app.get(&format!("/api/v1/messages/{mid}"), &bob).await;
    assert_eq!(seen.body["is_read"], false, "bob's flag is untouched");
    assert_eq!(app.get("/api/v1/threads", &bob).await.ids(), [thread]);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn messages_are_immutable(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let m = app.send(&alice, &bob, "Hi", "there").await;
    for method in [Method::PUT, Method::PATCH] {
        let res = app
            .call(
                method.clone(),
                &format!("/api/v1/messages/{}", id(&m)),
                Some(&alice.token),
                Some(json!({"body": "edited"})),
            )
            .await;
        assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(res.code(), "method_not_allowed");
    }
    let after = app.get(&format!("/api/v1/messages/{}", id(&m)), &bob).await;
    assert_eq!(after.body["body"], "there");
}
