//! Sign-up, sessions, profile and directory.

use crate::helpers::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn sign_up_returns_the_user_without_secrets(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let res = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"username": "Alice", "email": "alice@example.com",
                        "password": "long enough"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(
        res.body["username"], "alice",
        "usernames are folded to lower case"
    );
    assert_eq!(
        res.body["display_name"], "alice",
        "display name defaults to the username"
    );
    assert_eq!(res.body["is_admin"], false);
    assert!(res.body.get("password").is_none() && res.body.get("password_hash").is_none());
    let hash: String = sqlx::query_scalar("select password_hash from users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "stored as argon2id: {hash}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn usernames_and_emails_are_unique_case_insensitively(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.user("alice").await;
    let taken = |username: &str, email: &str| json!({"username": username, "email": email, "password": "long enough"});
    let res = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(taken("ALICE", "other@example.com")),
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(res.code(), "conflict");
    assert!(
        res.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("username")
    );
    let res = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(taken("alice2", "ALICE@example.com")),
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert!(
        res.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("email")
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn addresses_the_mailer_would_refuse_are_refused_at_sign_up(db: PgPool) {
    let app = TestApp::spawn(db).await;
    // The examples (each used to be accepted, then kill its email job) and their kin.
    for email in [
        "a,b@x.example",
        "a<b>@x.example",
        "x@[127.0.0.1]",
        "x@-x.example",
        "\"a b\"@x.example",
        "x@127.0.0.1",
        "a..b@x.example",
        "x@localhost",
        &format!("x@{}.example", "l".repeat(64)),
    ] {
        let res = app
            .call(
                Method::POST,
                "/api/v1/users",
                None,
                Some(json!({"username": "mallory", "email": email, "password": "long enough"})),
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{email}: {res:?}"
        );
        assert!(!res.field("email").is_empty());
    }
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn sign_ups_are_limited_per_client_address(db: PgPool) {
    let app = TestApp::spawn_with(db, |s| s.signups_per_hour_per_addr = 3).await;
    let sign_up = |name: &str| json!({"username": name, "email": format!("{name}@example.com"), "password": "long enough"});
    for name in ["one", "two"] {
        let res = app
            .call(Method::POST, "/api/v1/users", None, Some(sign_up(name)))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    }
    // Refused sign-ups do not use the allowance up.
    let taken = app
        .call(Method::POST, "/api/v1/users", None, Some(sign_up("one")))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let invalid = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"username": "x y", "email": "a@b.example", "password": "long enough"})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let third = app
        .call(Method::POST, "/api/v1/users", None, Some(sign_up("three")))
        .await;
    assert_eq!(third.status, StatusCode::CREATED, "{third:?}");

    let fourth = app
        .call(Method::POST, "/api/v1/users", None, Some(sign_up("four")))
        .await;
    assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS, "{fourth:?}");
    assert_eq!(fourth.code(), "rate_limited");
    let wait: u64 = fourth.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 3, "the limited sign-up created nothing");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn sign_up_names_every_invalid_field(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let res = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"username": "a b", "email": "nope", "password": "short"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.code(), "validation_failed");
    assert!(res.field("username").contains("a-z"));
    assert!(res.field("email").contains("address"));
    assert!(res.field("password").contains("8 to 256"));

    let too_long = "p".repeat(257);
    let res = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"username": "bob", "email": "bob@example.com", "password": too_long})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.field("password").contains("got 257"));

    let res = app
        .call(Method::POST, "/api/v1/users", None, Some(json!({})))
        .await;
    for field in ["username", "email", "password"] {
        assert_eq!(res.field(field), "is required");
    }
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 0, "nothing was created");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn wrong_password_and_unknown_user_get_the_same_answer(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.user("alice").await;
    let wrong = app
        .call(
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": "alice", "password": "not her password"})),
        )
        .await;
    let unknown = app
        .call(
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": "nobody", "password": "not her password"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.headers["www-authenticate"], "Bearer");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn login_is_case_insensitive_and_logout_revokes_the_token(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.user("alice").await;
    let session = app.login("ALICE", "password-alice").await;
    assert_eq!(app.get("/api/v1/me", &session).await.status, StatusCode::OK);
    let out = app
        .call(
            Method::DELETE,
            "/api/v1/sessions/current",
            Some(&session.token),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = app.get("/api/v1/me", &session).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.headers["www-authenticate"], "Bearer");
    let stored: Vec<u8> = sqlx::query_scalar("select token_hash from api_tokens limit 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32, "only a SHA-256 of the token is stored");
    assert_ne!(stored, session.token.as_bytes());
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn requests_without_a_valid_token_get_401_with_a_bearer_challenge(db: PgPool) {
    let app = TestApp::spawn(db).await;
    for token in [None, Some("cvs_not-a-real-token"), Some("")] {
        let res = app.call(Method::GET, "/api/v1/threads", token, None).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "token {token:?}");
        assert_eq!(res.code(), "unauthorized");
        assert_eq!(res.headers["www-authenticate"], "Bearer");
    }
    let basic = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .basic_auth("alice", Some("password-alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn me_shows_the_unread_total_and_settings_and_can_be_changed(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.send(&bob, &alice, "One", "first").await;
    app.send(&bob, &alice, "Two", "second").await;
    let me = app.get("/api/v1/me", &alice).await;
    assert_eq!(me.body["username"], "alice");
    assert_eq!(me.body["unread_count"], 2);
    assert_eq!(me.body["settings"]["email_notifications"], true);

    let changed = app
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(&alice.token),
            Some(
                json!({"display_name": "  Alice L.  ", "settings": {"email_notifications": false}}),
            ),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    assert_eq!(changed.body["display_name"], "Alice L.");
    assert_eq!(changed.body["settings"]["email_notifications"], false);
    let again = app.get("/api/v1/me", &alice).await;
    assert_eq!(again.body["settings"]["email_notifications"], false);

    let bad = app
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(&alice.token),
            Some(json!({"display_name": ""})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.field("display_name").contains("empty"));
    let wrong_type = app
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(&alice.token),
            Some(json!({"settings": {"email_notifications": "yes"}})),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong_type
            .field("settings.email_notifications")
            .contains("boolean")
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_directory_matches_prefixes_and_leaves_out_the_caller(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let alice = app.user("alice").await;
    for name in ["alfred", "albert", "bob", "al_x", "alyx"] {
        app.user(name).await;
    }
    let res = app.get("/api/v1/users?q=AL", &alice).await;
    let names: Vec<&str> = res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["al_x", "albert", "alfred", "alyx"]);
    assert!(
        res.body["items"][0].get("email").is_none(),
        "the directory hides emails"
    );

    let underscore = app.get("/api/v1/users?q=al_", &alice).await;
    assert_eq!(
        underscore.body["items"].as_array().unwrap().len(),
        1,
        "_ is literal"
    );
    let limited = app.get("/api/v1/users?limit=2", &alice).await;
    assert_eq!(limited.body["items"].as_array().unwrap().len(), 2);
    let bad = app.get("/api/v1/users?limit=0", &alice).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.field("limit").contains("1 to 100"));
}
