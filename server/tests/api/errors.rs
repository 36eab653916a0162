//! Malformed requests: every one gets a precise status and the shared error body.

use convos_testkit::{Answer, TestServer};
use reqwest::StatusCode;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// What the server answers at once to a request declaring `length` bytes of body and sending
/// a few.
async fn declared(app: &TestServer, path: &str, token: &str, length: usize) -> String {
    let mut socket = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"re",
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_body_declared_over_one_mebibyte_is_413_before_it_is_sent(db: PgPool) {
    // 5 MB declared, a few bytes sent: the request waited for the rest until its deadline, then
    // answered 503, holding a connection all along.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;

    let answer = declared(&app, "/api/v1/messages", &alice.token, 5_000_000).await;

    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    // The account routes' smaller limit is also refused by what a body declares.
    let answer = declared(&app, "/api/v1/sessions", "none", 100_000).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_path_that_cannot_be_decoded_is_404_with_the_error_body(db: PgPool) {
    // Invalid UTF-8 in an id was axum's own 400 in plain text.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    for path in [
        "/api/v1/messages/%ff%fe",
        "/api/v1/threads/%ff%fe/messages",
        "/api/v1/unsubscribe/%ff%fe",
        "/api/v1/email-links/%ff%fe",
    ] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        let res = Answer::from_response(res).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.code(), "not_found", "{path}");
    }
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

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn an_anonymous_body_over_16_kib_is_413_before_it_is_parsed(db: PgPool) {
    // A login or sign-up is a few hundred bytes; parsing a mebibyte of JSON nested in arrays cost
    // a probe's server about 150 ms of CPU per anonymous request.
    let app = TestServer::spawn(db).await;
    let padding = "[1,".repeat(5_000) + &"]".repeat(5_000);
    let body = format!(r#"{{"username":"alice","password":"p","padding":{padding}}}"#);
    assert!(body.len() > 16 * 1024);
    for path in ["/api/v1/sessions", "/api/v1/users"] {
        let res = app
            .http
            .post(format!("{}{path}", app.base))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let res = Answer::from_response(res).await;
        assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {res:?}");
        assert_eq!(res.code(), "payload_too_large");
    }
}

/// Sends `request` as raw bytes on a new connection and reads the answer until the server
/// closes it: its head and its body. The request is written while the answer is read, since
/// the server may answer and close before it has read all of it.
async fn raw_exchange(app: &TestServer, request: &[u8]) -> (String, String) {
    let socket = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut socket, mut writer) = socket.into_split();
    let request = request.to_vec();
    tokio::spawn(async move { writer.write_all(&request).await });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut buf)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no close after {:?}", String::from_utf8_lossy(&answer)),
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.to_owned(), body.to_owned())
}

/// The error code of a JSON error body, or a panic naming what came instead.
fn error_code(head: &str, body: &str) -> String {
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {head}\r\n\r\n{body:?}"));
    value["error"]["code"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn requests_the_http_parser_refuses_get_the_error_body_too(db: PgPool) {
    // hyper answers these itself, before any route runs, with a status and an empty body.
    let app = TestServer::spawn(db).await;
    let many_headers: String = (0..80).map(|i| format!("X-Pad-{i}: {i}\r\n")).collect();
    let huge_header = format!("X-Pad: {}\r\n", "a".repeat(300 * 1024));
    for (what, request, status, code) in [
        (
            "80 headers",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            "431",
            "headers_too_large",
        ),
        (
            "a 300 KiB header",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{huge_header}\r\n"),
            "431",
            "headers_too_large",
        ),
        (
            "a malformed request line",
            "GET /healthz HTTP/9.9 extra\r\nHost: x\r\n\r\n".to_owned(),
            "400",
            "malformed_request",
        ),
        (
            "a malformed header",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_owned(),
            "400",
            "malformed_request",
        ),
    ] {
        let (head, body) = raw_exchange(&app, request.as_bytes()).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {head}"
        );
        assert_eq!(error_code(&head, &body), code, "{what}");
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_head_request_the_parser_refuses_gets_no_body(db: PgPool) {
    // An answer to HEAD may carry no body; bytes after its head would be read as the next
    // answer.
    let app = TestServer::spawn(db).await;
    let many_headers: String = (0..80).map(|i| format!("X-Pad-{i}: {i}\r\n")).collect();
    let request = format!("HEAD /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n");
    let (head, body) = raw_exchange(&app, request.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    assert_eq!(body, "", "{head}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_kept_alive_connection_gets_the_error_body_for_its_second_request(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let many_headers: String = (0..80).map(|i| format!("X-Pad-{i}: {i}\r\n")).collect();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n{many_headers}\r\n"
    );
    let (head, rest) = raw_exchange(&app, request.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let (second_head, second_body) = rest
        .split_once("HTTP/1.1 431 ")
        .map(|(_, after)| after.split_once("\r\n\r\n").unwrap())
        .unwrap_or_else(|| panic!("no 431 after the first answer: {rest}"));
    assert_eq!(
        error_code(second_head, second_body),
        "headers_too_large",
        "{rest}"
    );
}

async fn raw_patch_me(app: &TestServer, token: &str, body: &str) -> Answer {
    let res = app
        .http
        .patch(format!("{}/api/v1/me", app.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    Answer::from_response(res).await
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_field_given_twice_is_422_not_the_last_one_wins(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let res = raw_post(
        &app,
        &alice.token,
        "application/json",
        br#"{"recipient":"bob","recipient":"carol","subject":"s","body":"b"}"#.to_vec(),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{res:?}");
    assert!(res.field("recipient").contains("twice"), "{res:?}");
    assert_eq!(app.get("/api/v1/threads", &bob).await.ids().len(), 0);

    let res = raw_patch_me(
        &app,
        &alice.token,
        r#"{"settings":{"digest_hour":9,"digest_hour":23}}"#,
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{res:?}");
    assert!(
        res.field("settings.digest_hour").contains("twice"),
        "{res:?}"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_list_where_an_object_belongs_is_422_naming_no_internal_type(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let res = raw_patch_me(&app, &alice.token, r#"{"settings":[false,"off",3,"UTC"]}"#).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{res:?}");
    let reason = res.field("settings");
    assert!(reason.contains("object"), "{reason}");
    assert!(!reason.contains("Patch"), "names a Rust type: {reason}");
    let res = raw_patch_me(&app, &alice.token, r#"{"settings":"off"}"#).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{res:?}");
    let reason = res.field("settings");
    assert!(reason.ends_with("expected a JSON object"), "{reason}");
    let res = raw_patch_me(&app, &alice.token, r#"{"settings":{"digest_hour":"9"}}"#).await;
    let reason = res.field("settings.digest_hour");
    assert!(reason.ends_with("expected an integer"), "{reason}");
    let me = app.get("/api/v1/me", &alice).await;
    assert_eq!(me.body["settings"]["email_mode"], "each", "{:?}", me.body);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_mebibyte_of_keys_is_refused_as_it_is_read(db: PgPool) {
    // No request of the API holds a tenth of 256 values; this one holds 90,000, each of which
    // was read and checked against the others before any limit applied.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let fields: Vec<String> = (0..90_000).map(|i| format!(r#""k{i}":0"#)).collect();
    let body = format!(
        r#"{{"recipient":"bob","subject":"s","body":"b",{}}}"#,
        fields.join(",")
    );
    assert!(body.len() < 1024 * 1024);
    let res = raw_post(&app, &alice.token, "application/json", body.into_bytes()).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{res:?}");
    assert!(
        res.field("request").contains("more than 256 values"),
        "{res:?}"
    );
}
