//! Full-text search over the caller's own convos.

use crate::helpers::TestApp;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn search_finds_only_what_the_caller_can_see_best_first_with_highlights(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let ramen = app
        .send(
            &alice,
            &bob,
            "Ramen on Friday",
            "The new ramen place opened near the station.",
        )
        .await;
    app.send(
        &alice,
        &bob,
        "Budget",
        "Numbers for the quarter; lunch maybe ramen later.",
    )
    .await;
    app.send(&alice, &carol, "Ramen for carol", "carol's ramen")
        .await;
    app.post(
        "/api/v1/messages",
        &alice,
        json!({"recipient": "bob", "subject": "Secret", "body": "ramen recipe", "read_once": true}),
    )
    .await;
    let deleted = app
        .send(&alice, &bob, "Gone", "ramen that bob deleted")
        .await;
    app.delete(
        &format!("/api/v1/messages/{}", deleted["id"].as_str().unwrap()),
        &bob,
    )
    .await;

    let res = app.get("/api/v1/search?q=ramen", &bob).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let hits = res.body["items"].as_array().unwrap();
    let subjects: Vec<&str> = hits
        .iter()
        .map(|h| h["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["Ramen on Friday", "Budget"],
        "bob's visible matches, subject match first"
    );
    assert_eq!(hits[0]["message_id"], ramen["id"]);
    assert!(
        hits[0]["excerpt"].as_str().unwrap().contains("«ramen»"),
        "{}",
        hits[0]["excerpt"]
    );

    let secret = app.get("/api/v1/search?q=recipe", &bob).await;
    assert!(
        secret.body["items"].as_array().unwrap().is_empty(),
        "read-once bodies are not searched"
    );
    let by_subject = app.get("/api/v1/search?q=secret", &bob).await;
    assert_eq!(
        by_subject.body["items"][0]["excerpt"],
        serde_json::Value::Null,
        "nor shown"
    );

    let page = app.get("/api/v1/search?q=ramen&limit=1", &bob).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(
            &format!("/api/v1/search?q=ramen&limit=1&cursor={cursor}"),
            &bob,
        )
        .await;
    assert_eq!(next.body["items"][0]["subject"], "Budget");

    for bad in [
        "/api/v1/search",
        "/api/v1/search?q=%20",
        "/api/v1/search?q=ramen&cursor=nope",
    ] {
        let res = app.get(bad, &bob).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let hostile = app
        .get(
            "/api/v1/search?q=%27%29%3B%20drop%20table%20users%3B%20--%20%22%20or",
            &bob,
        )
        .await;
    assert_eq!(hostile.status, StatusCode::OK, "any text is just words");
}
