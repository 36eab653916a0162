//! Malformed requests: every one gets a precise status and the shared error body.

use convos_testkit::{Answer, TestServer};
use reqwest::StatusCode;
use sqlx::PgPool;

async fn raw_post(app: &TestServer, token: &str, content_type: &str, body: Vec<u8>) -> Answer {
    let res = app
        .http
        .post(format!("{}/api/v1/messages", app.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    Answer::from_response(res).await
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn malformed_json_is_400(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    for body in [
        &b"{\"recipient\": "[..],
        b"not json",
        b"[1, 2]",
        b"\"text\"",
    ] {
        let res = raw_post(&app, &alice.token, "application/json", body.to_vec()).await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(res.code(), "malformed_json");
        assert!(
            res.body["error"].get("fields").is_none(),
            "fields only for validation"
        );
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_body_that_is_not_json_is_415(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let res = raw_post(&app, &alice.token, content_type, b"recipient=bob".to_vec()).await;
        assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(res.code(), "unsupported_media_type");
    }
    let none = app
        .http
        .post(format!("{}/api/v1/messages", app.base))
        .bearer_auth(&alice.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_body_over_one_mebibyte_is_413(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let huge = format!(
        "{{\"recipient\":\"bob\",\"subject\":\"s\",\"body\":\"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    let res = raw_post(&app, &alice.token, "application/json", huge.into_bytes()).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.code(), "payload_too_large");
    assert_eq!(app.message_rows().await, 0);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_wrongly_typed_field_is_422_naming_it(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let res = raw_post(
        &app,
        &alice.token,
        "application/json",
        br#"{"recipient":"bob","subject":42,"body":"b"}"#.to_vec(),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.code(), "validation_failed");
    assert!(res.field("subject").contains("invalid type"));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn unknown_routes_are_404_and_every_answer_has_a_request_id(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let res = app
        .call(reqwest::Method::GET, "/api/v1/nothing-here", None, None)
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.code(), "not_found");
    let id = res.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID request id: {id}");
    let given = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        given.headers()["x-request-id"],
        "trace-me-123",
        "a caller's id is kept"
    );
}
