//! Sessions their owner controls: the list, revoking one or all others, the password change,
//! expiry, and event streams that end with their session.

use convos_testkit::{Answer, TestServer, TestUser, ends_within, open_stream};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

/// Logs `user` in once more, announcing itself as `client`.
async fn login_as(app: &TestServer, user: &TestUser, client: &str) -> TestUser {
    let res = app
        .http
        .post(format!("{}/api/v1/sessions", app.base))
        .header("user-agent", client)
        .json(&json!({"username": user.username,
                      "password": format!("password-{}", user.username)}))
        .send()
        .await
        .unwrap();
    let answer = Answer::from_response(res).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    TestUser {
        token: answer.body["token"].as_str().unwrap().to_owned(),
        ..user.clone()
    }
}

async fn sessions(app: &TestServer, user: &TestUser) -> Vec<Value> {
    let res = app.get("/api/v1/sessions", user).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    res.body["items"].as_array().unwrap().clone()
}

/// The id of the session `user` is using.
async fn current_id(app: &TestServer, user: &TestUser) -> String {
    sessions(app, user)
        .await
        .into_iter()
        .find(|s| s["current"] == true)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .expect("the current session is listed")
}

async fn works(app: &TestServer, user: &TestUser) -> bool {
    let status = app.get("/api/v1/me", user).await.status;
    assert!(
        status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
        "{status}"
    );
    status == StatusCode::OK
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_owner_sees_each_session_with_its_client_and_times(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let first = app.user("alice").await;
    let laptop = login_as(&app, &first, "convos-tui/0.3 (laptop)\u{202e}\u{200b}").await;
    let bob = app.user("bob").await;

    let listed = sessions(&app, &laptop).await;

    assert_eq!(listed.len(), 2, "bob's session is not alice's: {listed:?}");
    let (newest, oldest) = (&listed[0], &listed[1]);
    assert_eq!(newest["current"], true);
    assert_eq!(newest["client"], "convos-tui/0.3 (laptop)");
    assert_eq!(oldest["current"], false);
    for s in &listed {
        let created = s["created_at"].as_str().unwrap();
        let expires: chrono::DateTime<chrono::Utc> =
            s["expires_at"].as_str().unwrap().parse().unwrap();
        let created: chrono::DateTime<chrono::Utc> = created.parse().unwrap();
        // Used just now (or never), so the idle limit (30 days) comes before the absolute one.
        let left = expires - created;
        assert!(
            left >= chrono::Duration::days(30)
                && left < chrono::Duration::days(30) + chrono::Duration::minutes(1),
            "{s}"
        );
        assert!(s.get("token").is_none() && s.get("token_hash").is_none());
    }
    assert_eq!(sessions(&app, &bob).await.len(), 1);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn an_owner_revokes_one_session_and_nobody_else_can(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let phone = app.user("alice").await;
    let laptop = login_as(&app, &phone, "laptop").await;
    let mallory = app.user("mallory").await;
    let phone_id = current_id(&app, &phone).await;

    let theirs = app
        .delete(&format!("/api/v1/sessions/{phone_id}"), &mallory)
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{theirs:?}");
    let nonsense = app.delete("/api/v1/sessions/not-an-id", &laptop).await;
    assert_eq!(nonsense.status, StatusCode::NOT_FOUND);
    assert!(
        works(&app, &phone).await,
        "a refused revoke changed nothing"
    );

    let revoked = app
        .delete(&format!("/api/v1/sessions/{phone_id}"), &laptop)
        .await;

    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{revoked:?}");
    assert!(
        !works(&app, &phone).await,
        "the revoked token stopped working"
    );
    assert!(works(&app, &laptop).await);
    assert_eq!(sessions(&app, &laptop).await.len(), 1);
    let again = app
        .delete(&format!("/api/v1/sessions/{phone_id}"), &laptop)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "already ended");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn logging_out_everywhere_else_keeps_only_the_current_session(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let first = app.user("alice").await;
    let phone = login_as(&app, &first, "phone").await;
    let stolen = login_as(&app, &first, "unknown").await;
    let here = login_as(&app, &first, "here").await;
    let bob = app.user("bob").await;

    let res = app
        .call(Method::DELETE, "/api/v1/sessions", Some(&here.token), None)
        .await;

    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(res.body, json!({"revoked": 3}));
    assert!(works(&app, &here).await);
    assert!(!works(&app, &phone).await && !works(&app, &stolen).await);
    assert!(!works(&app, &first).await);
    assert!(works(&app, &bob).await, "other users keep their sessions");
    assert_eq!(sessions(&app, &here).await.len(), 1);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let here = app.user("alice").await;
    let thief = login_as(&app, &here, "elsewhere").await;
    let change = |current: &str, new: &str| {
        app.call(
            Method::PUT,
            "/api/v1/me/password",
            Some(&here.token),
            Some(json!({"current": current, "new": new})),
        )
    };

    let wrong = change("not my password", "a brand new password").await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong:?}");
    assert_eq!(wrong.field("current"), "is not your current password");
    let weak = change("password-alice", "short").await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(weak.field("new").contains("8 to 256"), "{weak:?}");
    assert!(works(&app, &thief).await, "a refused change ends nothing");

    let changed = change("password-alice", "a brand new password").await;

    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{changed:?}");
    assert!(
        works(&app, &here).await,
        "the session that changed it stays"
    );
    assert!(!works(&app, &thief).await, "every other session ended");
    let old = app
        .call(
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": "alice", "password": "password-alice"})),
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    app.login("alice", "a brand new password").await;
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn wrong_current_passwords_are_limited_like_logins(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| s.login_failures_per_min = 2).await;
    let alice = app.user("alice").await;
    let change = |current: &'static str| {
        app.call(
            Method::PUT,
            "/api/v1/me/password",
            Some(&alice.token),
            Some(json!({"current": current, "new": "a brand new password"})),
        )
    };
    for _ in 0..2 {
        assert_eq!(
            change("a guess at it").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    let limited = change("password-alice").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{limited:?}");
    assert!(limited.headers.contains_key("retry-after"));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn sessions_expire_when_idle_and_at_their_absolute_limit(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.session_idle_days = 30;
        s.session_max_days = 90;
    })
    .await;
    let idle = app.user("alice").await;
    let old = login_as(&app, &idle, "old").await;
    let fresh = login_as(&app, &idle, "fresh").await;
    let age = |token: &str, sql: &'static str| {
        let db = app.db.clone();
        let hash = convos_store::tokens::hash(token);
        async move {
            sqlx::query(sql).bind(hash).execute(&db).await.unwrap();
        }
    };
    // Unused for 31 days.
    age(
        &idle.token,
        "update api_tokens set created_at = now() - interval '40 days', \
         last_used_at = now() - interval '31 days' where token_hash = $1",
    )
    .await;
    // Used a minute ago, but issued 91 days ago.
    age(
        &old.token,
        "update api_tokens set created_at = now() - interval '91 days', \
         last_used_at = now() - interval '1 minute' where token_hash = $1",
    )
    .await;

    let idle_answer = app.get("/api/v1/me", &idle).await;
    assert_eq!(idle_answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(idle_answer.code(), "unauthorized", "like a revoked token");
    assert!(!works(&app, &old).await, "past the absolute limit");
    assert!(works(&app, &fresh).await);
    let listed = sessions(&app, &fresh).await;
    assert_eq!(
        listed.len(),
        1,
        "expired sessions are not listed: {listed:?}"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn revoking_a_session_ends_its_event_stream_and_no_other(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let first = app.user("alice").await;
    let phone = login_as(&app, &first, "phone").await;
    let laptop = login_as(&app, &first, "laptop").await;
    let here = login_as(&app, &first, "here").await;
    let phone_stream = open_stream(&app, &phone).await;
    let laptop_stream = open_stream(&app, &laptop).await;
    let phone_id = current_id(&app, &phone).await;

    let revoked = app
        .delete(&format!("/api/v1/sessions/{phone_id}"), &here)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);

    assert!(
        ends_within(phone_stream, Duration::from_secs(5)).await,
        "the revoked session's stream is still open"
    );
    assert!(!ends_within(laptop_stream, Duration::from_millis(500)).await);
    let laptop_stream = open_stream(&app, &laptop).await;

    let out = app
        .call(Method::DELETE, "/api/v1/sessions", Some(&here.token), None)
        .await;
    assert_eq!(out.body, json!({"revoked": 2}), "the laptop and the first");
    assert!(
        ends_within(laptop_stream, Duration::from_secs(5)).await,
        "logging out everywhere else ends the other streams"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn changing_the_password_ends_the_other_sessions_streams_and_not_its_own(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let here = app.user("alice").await;
    let phone = login_as(&app, &here, "phone").await;
    let laptop = login_as(&app, &here, "laptop").await;
    let bob = app.user("bob").await;
    let here_stream = open_stream(&app, &here).await;
    let phone_stream = open_stream(&app, &phone).await;
    let laptop_stream = open_stream(&app, &laptop).await;
    let bob_stream = open_stream(&app, &bob).await;

    let changed = app
        .call(
            Method::PUT,
            "/api/v1/me/password",
            Some(&here.token),
            Some(json!({"current": "password-alice", "new": "a brand new password"})),
        )
        .await;

    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{changed:?}");
    for (client, stream) in [("phone", phone_stream), ("laptop", laptop_stream)] {
        assert!(
            ends_within(stream, Duration::from_secs(5)).await,
            "the {client} session's stream is still open"
        );
    }
    assert!(
        !ends_within(here_stream, Duration::from_millis(500)).await,
        "the stream of the session that changed the password ended"
    );
    assert!(
        !ends_within(bob_stream, Duration::from_millis(500)).await,
        "another user's stream ended"
    );
    assert!(
        works(&app, &here).await,
        "the session that changed it stays"
    );
    assert!(!works(&app, &phone).await && !works(&app, &laptop).await);
    let here_stream = open_stream(&app, &here).await;
    assert!(!ends_within(here_stream, Duration::from_millis(500)).await);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn an_event_stream_ends_when_its_session_reaches_its_absolute_expiry(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| s.session_max_days = 90).await;
    let alice = app.user("alice").await;
    // Issued just under 90 days ago: two seconds left.
    sqlx::query(
        "update api_tokens set created_at = now() - interval '90 days' + interval '2 seconds', \
         last_used_at = now() where token_hash = $1",
    )
    .bind(convos_store::tokens::hash(&alice.token))
    .execute(&app.db)
    .await
    .unwrap();
    let stream = open_stream(&app, &alice).await;

    assert!(
        ends_within(stream, Duration::from_secs(8)).await,
        "the stream outlived its session"
    );
    assert!(!works(&app, &alice).await);
}

/// Whether some connection to the test's database is waiting for a row lock.
async fn someone_waits_for_a_lock(db: &PgPool) -> bool {
    sqlx::query_scalar(
        "select exists (select 1 from pg_stat_activity \
         where datname = current_database() and wait_event_type = 'Lock')",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_login_racing_a_password_change_does_not_outlive_it(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    // A password change is under way, as `PUT /me/password` makes it: the new hash is written
    // and every session revoked, not yet committed.
    let new_hash = convos_server::auth::hash_password(
        &convos_core::Password::parse("a brand new password").unwrap(),
    )
    .unwrap();
    let mut change = app.db.begin().await.unwrap();
    sqlx::query("update users set password_hash = $1 where username = 'alice'")
        .bind(&new_hash)
        .execute(&mut *change)
        .await
        .unwrap();
    sqlx::query("update api_tokens set revoked_at = now() where revoked_at is null")
        .execute(&mut *change)
        .await
        .unwrap();

    // Meanwhile a login with the old password reads the old hash, and it matches.
    let login = tokio::spawn({
        let (http, base) = (app.http.clone(), app.base.clone());
        async move {
            let res = http
                .post(format!("{base}/api/v1/sessions"))
                .json(&json!({"username": "alice", "password": "password-alice"}))
                .send()
                .await
                .unwrap();
            Answer::from_response(res).await
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !login.is_finished() && !someone_waits_for_a_lock(&app.db).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the login neither ended nor waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    change.commit().await.unwrap();

    let answer = login.await.unwrap();
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "a session checked against the old password was issued after the change: {answer:?}"
    );
    assert_eq!(answer.code(), "invalid_credentials");
    let live: i64 = sqlx::query_scalar("select count(*) from api_tokens where revoked_at is null")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        live, 0,
        "no session made with the old password survives the change"
    );
    assert!(!works(&app, &alice).await);
    app.login("alice", "a brand new password").await;
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_login_beyond_the_session_cap_ends_the_oldest_session_and_its_stream(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| s.max_sessions_per_user = 3).await;
    let oldest = app.user("alice").await;
    let oldest_stream = open_stream(&app, &oldest).await;
    let second = login_as(&app, &oldest, "second").await;
    let third = login_as(&app, &oldest, "third").await;
    assert!(
        works(&app, &oldest).await,
        "three sessions are within the cap"
    );

    let fourth = login_as(&app, &oldest, "fourth").await;

    assert!(!works(&app, &oldest).await, "the oldest session ended");
    assert!(
        ends_within(oldest_stream, Duration::from_secs(5)).await,
        "the ended session's stream is still open"
    );
    for kept in [&second, &third, &fourth] {
        assert!(works(&app, kept).await);
    }
    let listed = sessions(&app, &fourth).await;
    let clients: Vec<_> = listed.iter().map(|s| s["client"].clone()).collect();
    assert_eq!(clients, [json!("fourth"), json!("third"), json!("second")]);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn an_event_stream_ends_once_its_session_has_idled_out(db: PgPool) {
    // Arrange: two of Alice's sessions with a stream open each; a probe found a stream kept
    // delivering after its session had expired for being idle.
    let app = TestServer::spawn_with(db, |s| {
        s.session_idle_days = 30;
        s.sse_session_check_secs = 1;
    })
    .await;
    let alice = app.user("alice").await;
    let other = login_as(&app, &alice, "other").await;
    let idled = open_stream(&app, &alice).await;
    let kept = open_stream(&app, &other).await;

    // Act: the first session goes unused for 31 days (as the ledger would have it).
    sqlx::query(
        "update api_tokens set last_used_at = now() - interval '31 days' where token_hash = $1",
    )
    .bind(convos_store::tokens::hash(&alice.token))
    .execute(&app.db)
    .await
    .unwrap();

    // Assert: its stream ends at the next check; the live session's stream stays.
    assert!(
        ends_within(idled, Duration::from_secs(10)).await,
        "the idled-out session's stream stayed open"
    );
    assert!(
        !ends_within(kept, Duration::from_secs(3)).await,
        "a live session's stream was closed"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_stream_opened_as_its_session_is_revoked_ends_with_it(db: PgPool) {
    // A stream whose token was checked just before the revocation, and which listened for
    // revocations just after it was announced, missed it: it stayed open for an hour (until its
    // session's next check), receiving the user's events.
    let app = TestServer::spawn_with(db, |s| s.stream_opens_per_min = 1_000).await;
    let here = app.user("alice").await;
    for trial in 0..10 {
        let phone = login_as(&app, &here, "phone").await;
        let opens = (0..6).map(|_| {
            app.http
                .get(format!("{}/api/v1/events", app.base))
                .bearer_auth(&phone.token)
                .send()
        });
        let revoke = async {
            tokio::time::sleep(Duration::from_micros(500 + 200 * trial)).await;
            app.call(
                Method::DELETE,
                "/api/v1/sessions/current",
                Some(&phone.token),
                None,
            )
            .await
        };
        let (streams, revoked) = tokio::join!(futures::future::join_all(opens), revoke);
        assert_eq!(revoked.status, StatusCode::NO_CONTENT);
        for stream in streams {
            let stream = stream.expect("the request is answered");
            if stream.status() == StatusCode::OK {
                assert!(
                    ends_within(stream, Duration::from_secs(3)).await,
                    "trial {trial}: a stream of the revoked session is still open"
                );
            } else {
                assert_eq!(stream.status(), StatusCode::UNAUTHORIZED);
            }
        }
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_stolen_token_cannot_end_the_sessions_its_owner_logs_in_with_after(db: PgPool) {
    // A thief holding a token ended every session its owner logged in with, a second later
    // each time ("log out everywhere else" in a loop): the owner could not even change the
    // password. A session now ends only itself and the sessions made before it.
    let app = TestServer::spawn(db).await;
    let stolen = app.user("alice").await;
    let owner = login_as(&app, &stolen, "owner").await;
    let owner_id = current_id(&app, &owner).await;

    let out = app
        .call(
            Method::DELETE,
            "/api/v1/sessions",
            Some(&stolen.token),
            None,
        )
        .await;
    assert_eq!(out.body, json!({"revoked": 0}));
    let by_id = app
        .delete(&format!("/api/v1/sessions/{owner_id}"), &stolen)
        .await;
    assert_eq!(by_id.status, StatusCode::FORBIDDEN, "{by_id:?}");
    assert!(
        by_id.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password")
    );
    assert_eq!(app.get("/api/v1/me", &owner).await.status, StatusCode::OK);

    // The owner ends the thief's, which was made before.
    let out = app
        .call(Method::DELETE, "/api/v1/sessions", Some(&owner.token), None)
        .await;
    assert_eq!(out.body, json!({"revoked": 1}));
    assert_eq!(
        app.get("/api/v1/me", &stolen).await.status,
        StatusCode::UNAUTHORIZED
    );
}
