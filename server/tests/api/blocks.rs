//! Blocking a person: they can no longer write to the blocker, who sees and undoes it.

use convos_testkit::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_blocked_person_can_start_no_thread_and_write_in_none(db: PgPool) {
    // Nothing stopped a harasser: muting is per thread, and every send starts a new one (a
    // trust and safety probe). A person one blocks can write to one no more.
    let app = TestServer::spawn(db).await;
    let (vera, mallory) = (app.user("vera").await, app.user("mallory").await);
    let carol = app.user("carol").await;
    let earlier = app.send(&mallory, &vera, "hey", "you there?").await;
    let thread = earlier["thread_id"].as_str().unwrap().to_owned();

    let blocked = app
        .call(
            Method::PUT,
            "/api/v1/me/blocks/Mallory",
            Some(&vera.token),
            None,
        )
        .await;
    assert_eq!(blocked.status, StatusCode::OK, "{blocked:?}");
    assert_eq!(blocked.body["username"], "mallory");

    let new_thread = app
        .post(
            "/api/v1/messages",
            &mallory,
            json!({"recipient": "vera", "subject": "again", "body": "answer me"}),
        )
        .await;
    let reply = app
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &mallory,
            json!({"body": "answer me"}),
        )
        .await;
    for refused in [&new_thread, &reply] {
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
        assert_eq!(refused.code(), "forbidden");
    }
    let inbox = app.get("/api/v1/threads", &vera).await;
    assert_eq!(
        inbox.body["items"].as_array().unwrap().len(),
        1,
        "nothing new"
    );
    // Vera can still answer, and others still reach her.
    let hers = app
        .post(
            &format!("/api/v1/threads/{thread}/messages"),
            &vera,
            json!({"body": "stop writing to me"}),
        )
        .await;
    assert_eq!(hers.status, StatusCode::CREATED, "{hers:?}");
    app.send(&carol, &vera, "lunch", "noon?").await;

    let list = app.get("/api/v1/me/blocks", &vera).await;
    assert_eq!(list.body["items"][0]["username"], "mallory");
    let found = app.get("/api/v1/users?q=ve", &mallory).await;
    assert_eq!(
        found.body["items"],
        serde_json::json!([]),
        "vera is not offered to mallory"
    );
    let unblocked = app
        .call(
            Method::DELETE,
            "/api/v1/me/blocks/mallory",
            Some(&vera.token),
            None,
        )
        .await;
    assert_eq!(unblocked.status, StatusCode::NO_CONTENT, "{unblocked:?}");
    app.send(&mallory, &vera, "sorry", "ok").await;
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn blocking_answers_plainly_for_oneself_nobody_and_twice(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let vera = app.user("vera").await;
    app.user("mallory").await;
    let block = |name: &str| {
        let path = format!("/api/v1/me/blocks/{name}");
        let (client, token) = (app.client.clone(), vera.token.clone());
        async move { client.call(Method::PUT, &path, Some(&token), None).await }
    };

    assert_eq!(block("nobody-here").await.status, StatusCode::NOT_FOUND);
    let own = block("vera").await;
    assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{own:?}");
    assert_eq!(block("mallory").await.status, StatusCode::OK);
    assert_eq!(
        block("MALLORY").await.status,
        StatusCode::OK,
        "twice is once"
    );
    let list = app.get("/api/v1/me/blocks", &vera).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let unblock = |name: &str| {
        let path = format!("/api/v1/me/blocks/{name}");
        let (client, token) = (app.client.clone(), vera.token.clone());
        async move { client.call(Method::DELETE, &path, Some(&token), None).await }
    };
    assert_eq!(unblock("mallory").await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        unblock("mallory").await.status,
        StatusCode::NO_CONTENT,
        "twice is once"
    );
    assert_eq!(unblock("nobody-here").await.status, StatusCode::NOT_FOUND);
}
