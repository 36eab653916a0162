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

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_blocked_person_is_shown_to_the_blocker_by_username_whatever_name_they_choose(
    db: PgPool,
) {
    // Names are read when shown: after the block, a probe's blocked account renamed itself
    // "I know where you live", and the blocker read it on every thread they shared.
    let app = TestServer::spawn(db).await;
    let (vera, mallory) = (app.user("vera").await, app.user("mallory").await);
    let carol = app.user("carol").await;
    let sent = app.send(&mallory, &vera, "hey", "findme words").await;
    let thread = sent["thread_id"].as_str().unwrap().to_owned();
    for (who, blocked) in [(&vera, "mallory"), (&carol, "vera")] {
        let answer = app
            .call(
                Method::PUT,
                &format!("/api/v1/me/blocks/{blocked}"),
                Some(&who.token),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    for (who, name) in [(&mallory, "I know where you live"), (&vera, "Vera V.")] {
        let renamed = app
            .call(
                Method::PATCH,
                "/api/v1/me",
                Some(&who.token),
                Some(json!({"display_name": name})),
            )
            .await;
        assert_eq!(renamed.status, StatusCode::OK, "{renamed:?}");
    }

    let inbox = app.get("/api/v1/threads", &vera).await;
    let shown = app.get(&format!("/api/v1/threads/{thread}"), &vera).await;
    let messages = app
        .get(&format!("/api/v1/threads/{thread}/messages"), &vera)
        .await;
    let found = app.get("/api/v1/search?q=findme", &vera).await;
    let list = app.get("/api/v1/me/blocks", &vera).await;
    let directory = app.get("/api/v1/users?q=mal", &vera).await;
    let again = app
        .call(
            Method::PUT,
            "/api/v1/me/blocks/mallory",
            Some(&vera.token),
            None,
        )
        .await;
    let hers = app.send(&vera, &mallory, "stop", "stop writing").await;
    let hers_id = hers["id"].as_str().unwrap();
    let delivered = app
        .get(&format!("/api/v1/messages/{hers_id}/deliveries"), &vera)
        .await;
    let names = [
        &inbox.body["items"][0]["participants"],
        &shown.body["participants"],
    ]
    .into_iter()
    .flat_map(|people| people.as_array().unwrap().iter())
    .chain([
        &messages.body["items"][0]["sender"],
        &found.body["items"][0]["sender"],
        &list.body["items"][0],
        &directory.body["items"][0],
        &again.body,
        &hers["recipient"],
        &delivered.body["items"][0]["recipient"],
    ])
    .filter(|person| person["username"] == "mallory")
    .map(|person| person["display_name"].as_str().unwrap().to_owned())
    .collect::<Vec<_>>();
    assert_eq!(
        names, ["mallory"; 9],
        "{inbox:?} {messages:?} {found:?} {directory:?}"
    );
    // Everyone else sees the names people chose, the blocked account's own included.
    let for_mallory = app
        .get(&format!("/api/v1/threads/{thread}"), &mallory)
        .await;
    let mut chosen = for_mallory.body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|person| person["display_name"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    chosen.sort();
    assert_eq!(chosen, ["I know where you live", "Vera V."]);
}
