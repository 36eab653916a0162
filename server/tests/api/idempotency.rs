//! `Idempotency-Key` on creates.

use convos_testkit::{Answer, TestServer, TestUser};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn post_with_key(
    app: &TestServer,
    user: &TestUser,
    path: &str,
    key: &str,
    body: Value,
) -> Answer {
    let res = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(&user.token)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    Answer::from_response(res).await
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_same_key_returns_the_original_message_and_creates_nothing(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    let body = json!({"recipient": "bob", "subject": "Once", "body": "only once"});
    let first = post_with_key(&app, &alice, "/api/v1/messages", "key-1", body.clone()).await;
    let second = post_with_key(&app, &alice, "/api/v1/messages", "key-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.message_rows().await, 1);

    let reused = post_with_key(
        &app,
        &alice,
        "/api/v1/messages",
        "key-1",
        json!({"recipient": "bob", "subject": "Once", "body": "something else"}),
    )
    .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reused
            .field("Idempotency-Key")
            .contains("different request")
    );
    assert_eq!(app.message_rows().await, 1);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn keys_belong_to_one_user_and_work_for_replies(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let a = post_with_key(
        &app,
        &alice,
        "/api/v1/messages",
        "shared",
        json!({"recipient": "bob", "subject": "s", "body": "b"}),
    )
    .await;
    let b = post_with_key(
        &app,
        &bob,
        "/api/v1/messages",
        "shared",
        json!({"recipient": "alice", "subject": "s", "body": "b"}),
    )
    .await;
    assert_ne!(
        a.body["id"], b.body["id"],
        "the same key from another user is another request"
    );
    let thread = a.body["thread_id"].as_str().unwrap();
    let path = format!("/api/v1/threads/{thread}/messages");
    let r1 = post_with_key(&app, &bob, &path, "reply-1", json!({"body": "re"})).await;
    let r2 = post_with_key(&app, &bob, &path, "reply-1", json!({"body": "re"})).await;
    assert_eq!(r1.status, StatusCode::CREATED);
    assert_eq!(r1.body["id"], r2.body["id"]);
    assert_eq!(app.message_rows().await, 3);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_replayed_reply_answers_with_the_original_even_once_its_thread_is_deleted(db: PgPool) {
    // A client retried a reply whose answer it lost while its user deleted the thread
    // elsewhere: the retry that raced the first attempt's commit got 404, and could not tell
    // whether the reply was made. Here the first attempt's key is committed only once the retry
    // is under way, as it was in the race.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let carol = app.user("carol").await;
    let sent = app.send(&alice, &carol, "s", "b").await;
    let thread = sent["thread_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/threads/{thread}/messages");
    let first = post_with_key(&app, &alice, &path, "reply-9", json!({"body": "re"})).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let deleted = app
        .delete(&format!("/api/v1/threads/{thread}"), &alice)
        .await;
    assert!(deleted.status.is_success(), "{deleted:?}");
    sqlx::query("update idempotency_keys set key = 'parked' where key = 'reply-9'")
        .execute(&app.db)
        .await
        .unwrap();
    let mut committing = app.db.begin().await.unwrap();
    sqlx::query("update idempotency_keys set key = 'reply-9' where key = 'parked'")
        .execute(&mut *committing)
        .await
        .unwrap();

    let retry = {
        let (http, token) = (app.http.clone(), alice.token.clone());
        let url = format!("{}{path}", app.base);
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "reply-9")
                .json(&json!({"body": "re"}))
                .send()
                .await
                .unwrap()
        })
    };
    convos_testkit::until_a_lock_is_awaited(&app.db, || retry.is_finished()).await;
    committing.commit().await.unwrap();
    let again = Answer::from_response(retry.await.unwrap()).await;
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let fresh = post_with_key(&app, &alice, &path, "reply-10", json!({"body": "re"})).await;
    assert_eq!(
        fresh.status,
        StatusCode::NOT_FOUND,
        "a new reply still needs the thread"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn concurrent_requests_with_one_key_create_one_message(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    let body = json!({"recipient": "bob", "subject": "Retry storm", "body": "hello"});
    let (a, b, c, d) = tokio::join!(
        post_with_key(&app, &alice, "/api/v1/messages", "storm", body.clone()),
        post_with_key(&app, &alice, "/api/v1/messages", "storm", body.clone()),
        post_with_key(&app, &alice, "/api/v1/messages", "storm", body.clone()),
        post_with_key(&app, &alice, "/api/v1/messages", "storm", body.clone()),
    );
    for res in [&a, &b, &c, &d] {
        assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
        assert_eq!(res.body["id"], a.body["id"]);
    }
    assert_eq!(app.message_rows().await, 1);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn keys_expire_after_24_hours_and_bad_keys_are_refused(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    let body = json!({"recipient": "bob", "subject": "s", "body": "b"});
    let first = post_with_key(&app, &alice, "/api/v1/messages", "old", body.clone()).await;
    sqlx::query("update idempotency_keys set created_at = now() - interval '25 hours'")
        .execute(&app.db)
        .await
        .unwrap();
    let later = post_with_key(&app, &alice, "/api/v1/messages", "old", body.clone()).await;
    assert_ne!(
        later.body["id"], first.body["id"],
        "an expired key starts a new request"
    );
    assert_eq!(app.message_rows().await, 2);

    let long = "k".repeat(256);
    let bad = post_with_key(&app, &alice, "/api/v1/messages", &long, body).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.field("Idempotency-Key").contains("1 to 255"));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_replay_is_recognised_whatever_the_json_spacing_and_spends_no_rate_limit(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| s.send_rate_per_min = 1).await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    let send = |body: &'static str| {
        app.http
            .post(format!("{}/api/v1/messages", app.base))
            .bearer_auth(&alice.token)
            .header("Idempotency-Key", "lost-connection")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let first = Answer::from_response(
        send(r#"{"recipient":"bob","subject":"s","body":"b"}"#)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = Answer::from_response(
        send("{ \"body\": \"b\",\n  \"subject\": \"s\", \"recipient\": \"bob\" }")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        again.status,
        StatusCode::CREATED,
        "a replay is not rate limited: {again:?}"
    );
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let fresh = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({"recipient": "bob", "subject": "t", "body": "c"}),
        )
        .await;
    assert_eq!(
        fresh.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a new message is"
    );
}
