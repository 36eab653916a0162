//! Expiring and read-once messages.

use convos_testkit::{TestServer, id};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

/// Moves a message's expiry into the past, as if its time had run out.
async fn expire_now(app: &TestServer, message_id: &str) {
    sqlx::query("update messages set expires_at = now() - interval '1 second' where id = $1::uuid")
        .bind(message_id)
        .execute(&app.db)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn expires_in_must_be_between_10_seconds_and_30_days(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    for bad in [9, 2_592_001, -1] {
        let res = app
            .post(
                "/api/v1/messages",
                &alice,
                json!({"recipient": "bob", "subject": "s", "body": "b", "expires_in": bad}),
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(res.field("expires_in").contains("between 10 and 2592000"));
    }
    let wrong_type = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({"recipient": "bob", "subject": "s", "body": "b", "expires_in": "soon"}),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong_type.field("expires_in").contains("invalid type"));
    let ok = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({"recipient": "bob", "subject": "s", "body": "b", "expires_in": 10}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let created =
        chrono::DateTime::parse_from_rfc3339(ok.body["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(ok.body["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = (expires - created).num_milliseconds();
    assert!(
        (9_990..=10_010).contains(&lifetime),
        "lifetime {lifetime} ms"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn an_expired_message_is_gone_everywhere_at_once_for_both_sides(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let keep = app.send(&alice, &bob, "Mixed", "stays").await;
    let thread = keep["thread_id"].as_str().unwrap().to_owned();
    let gone = app
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &alice,
            json!({"body": "self-destructs", "expires_in": 60}),
        )
        .await
        .body;
    let only = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({"recipient": "bob", "subject": "Vanishing", "body": "poof", "expires_in": 60}),
        )
        .await
        .body;
    assert_eq!(app.unread_total(&bob).await, 3);
    let before = app.get(&format!("/api/v1/threads/{thread}"), &bob).await;
    assert_eq!(
        before.body["last_message"]["expires_at"], gone["expires_at"],
        "a listing says when its newest message disappears"
    );
    expire_now(&app, &id(&gone)).await;
    expire_now(&app, &id(&only)).await;

    for user in [&alice, &bob] {
        for m in [&gone, &only] {
            let res = app.get(&format!("/api/v1/messages/{}", id(m)), user).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND);
        }
        let msgs = app
            .get(&format!("/api/v1/threads/{thread}/messages"), user)
            .await;
        assert_eq!(msgs.ids(), [id(&keep)]);
        let t = app.get(&format!("/api/v1/threads/{thread}"), user).await;
        assert_eq!(t.body["message_count"], 1);
        assert_eq!(t.body["last_message"]["id"], keep["id"]);
        assert_eq!(
            t.body["last_message"]["expires_at"],
            serde_json::Value::Null
        );
        let vanished = only["thread_id"].as_str().unwrap();
        assert_eq!(
            app.get(&format!("/api/v1/threads/{vanished}"), user)
                .await
                .status,
            StatusCode::NOT_FOUND,
            "a thread whose only message expired is gone"
        );
        let all = app.get("/api/v1/threads?folder=all", user).await;
        assert_eq!(all.ids(), [thread.as_str()]);
    }
    assert_eq!(
        app.unread_total(&bob).await,
        1,
        "expired messages leave the unread total"
    );
    let read = app
        .act(&format!("/api/v1/messages/{}/read", id(&gone)), &bob)
        .await;
    assert_eq!(read.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_read_once_body_is_shown_once_to_the_recipient_then_gone_for_both(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let sent = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({"recipient": "bob", "subject": "Secret", "body": "the code is 1234", "read_once": true}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::CREATED);
    assert_eq!(sent.body["read_once"], true);
    assert_eq!(
        sent.body["body"],
        serde_json::Value::Null,
        "even the sender's copy hides it"
    );
    let thread = sent.body["thread_id"].as_str().unwrap();
    let path = format!("/api/v1/messages/{}", id(&sent.body));

    let listing = app
        .get(&format!("/api/v1/threads/{thread}/messages"), &bob)
        .await;
    assert_eq!(listing.body["items"][0]["body"], serde_json::Value::Null);
    let t = app.get(&format!("/api/v1/threads/{thread}"), &bob).await;
    assert_eq!(
        t.body["last_message"]["body_excerpt"],
        serde_json::Value::Null
    );
    let by_sender = app.get(&path, &alice).await;
    assert_eq!(by_sender.status, StatusCode::OK);
    assert_eq!(
        by_sender.body["body"],
        serde_json::Value::Null,
        "the sender's read consumes nothing"
    );

    let opened = app.get(&path, &bob).await;
    assert_eq!(opened.status, StatusCode::OK);
    assert_eq!(opened.body["body"], "the code is 1234");
    assert_eq!(opened.body["is_read"], true, "the one read marks it read");
    assert_eq!(app.get(&path, &bob).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&path, &alice).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.unread_total(&bob).await, 0);
    assert!(
        app.get("/api/v1/threads?folder=all", &alice)
            .await
            .ids()
            .is_empty()
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_head_request_leaves_a_read_once_message_unread(db: PgPool) {
    // HEAD is answered by the GET route with its body dropped; it must not spend the one read
    // (a link checker or proxy holding the token would destroy the message unseen).
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let sent = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({"recipient": "bob", "subject": "Secret", "body": "the code is 1234", "read_once": true}),
        )
        .await;
    let path = format!("/api/v1/messages/{}", id(&sent.body));

    let head = app
        .call(reqwest::Method::HEAD, &path, Some(&bob.token), None)
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.body, serde_json::Value::Null, "HEAD carries no body");
    assert_eq!(app.unread_total(&bob).await, 1, "still unread");

    let opened = app.get(&path, &bob).await;
    assert_eq!(opened.status, StatusCode::OK);
    assert_eq!(opened.body["body"], "the code is 1234");
    let gone = app
        .call(reqwest::Method::HEAD, &path, Some(&bob.token), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "after its one read");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn of_two_concurrent_reads_of_a_read_once_message_exactly_one_gets_the_body(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    for round in 0..5 {
        let sent = app
            .post(
                "/api/v1/messages",
                &alice,
                json!({"recipient": "bob", "subject": format!("Race {round}"), "body": "once", "read_once": true}),
            )
            .await
            .body;
        let path = format!("/api/v1/messages/{}", id(&sent));
        let (a, b, c) = tokio::join!(
            app.get(&path, &bob),
            app.get(&path, &bob),
            app.get(&path, &bob)
        );
        let all = [&a, &b, &c];
        let bodies: Vec<_> = all.iter().filter(|r| r.status == StatusCode::OK).collect();
        assert_eq!(bodies.len(), 1, "round {round}: {a:?} {b:?} {c:?}");
        assert_eq!(bodies[0].body["body"], "once");
        let misses = [&a, &b, &c]
            .iter()
            .filter(|r| r.status == StatusCode::NOT_FOUND)
            .count();
        assert_eq!(misses, 2);
    }
}
