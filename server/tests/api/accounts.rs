//! Sign-up, sessions, profile and directory.

use convos_testkit::{Answer, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn sign_up_returns_the_user_without_secrets(db: PgPool) {
    let app = TestServer::spawn(db).await;
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
    let app = TestServer::spawn(db).await;
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
async fn a_new_username_cannot_pass_for_anothers_by_lookalike_letters(db: PgPool) {
    // `v1ctoria` beside `victoria`, or `wi11iam` beside `william`, is someone else at a glance:
    // an impersonator's first step.
    let app = TestServer::spawn(db).await;
    for existing in ["victoria", "william", "mo.ss", "dalia", "sarah"] {
        app.user(existing).await;
    }
    let sign_up = |username: &str| {
        json!({"username": username, "email": format!("{username}@example.com"),
               "password": "long enough"})
    };
    for lookalike in [
        "v1ctoria",
        "vlctoria",
        "wi11iam",
        "wiiliam",
        "vvilliam",
        "rnoss",
        "m0ss",
        "victo_ria",
        "clalia",
        "5arah",
    ] {
        let res = app
            .call(
                Method::POST,
                "/api/v1/users",
                None,
                Some(sign_up(lookalike)),
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{lookalike}: {res:?}"
        );
        assert!(
            res.field("username").contains("looks too much like"),
            "{lookalike}: {res:?}"
        );
    }
    for different in ["victor", "williams", "mosses"] {
        let res = app
            .call(
                Method::POST,
                "/api/v1/users",
                None,
                Some(sign_up(different)),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{different}: {res:?}");
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_database_and_the_server_read_a_usernames_look_alike(db: PgPool) {
    // Existing names are compared in SQL (their index), reserved ones in Rust: one reading.
    let names = [
        "victoria",
        "V1cTor.ia",
        "wi11iam",
        "vvilliam",
        "rnoss",
        "m0ss",
        "c0n.vos",
        "adm1n",
        "a_b-c.d",
        "iiii",
        "rnrn",
        "vvv",
        "0o1li",
        "x",
        "mailer-daemon",
        "rnvvrn",
        "clalia",
        "c0nvo5",
        "5upport",
        "ccll",
        "rncl",
    ];
    for name in names {
        let sql: String = sqlx::query_scalar("select convos_username_look($1)")
            .bind(name)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(sql, convos_core::domain::username_look(name), "{name}");
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn addresses_the_mailer_would_refuse_are_refused_at_sign_up(db: PgPool) {
    let app = TestServer::spawn(db).await;
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

/// A sign-up from `addr`, as a trusted proxy on 127.0.0.1 reports it.
async fn sign_up_from(app: &TestServer, addr: &str, username: &str, email: &str) -> Answer {
    let res = app
        .http
        .post(format!("{}/api/v1/users", app.base))
        .header("x-forwarded-for", addr)
        .json(&json!({"username": username, "email": email, "password": "long enough"}))
        .send()
        .await
        .expect("request is sent");
    Answer::from_response(res).await
}

async fn spawn_behind_proxy(db: PgPool, signups_per_hour: u32) -> TestServer {
    TestServer::spawn_with(db, |s| {
        s.trusted_proxies = vec!["127.0.0.1".into()];
        s.signups_per_hour_per_addr = signups_per_hour;
    })
    .await
}

async fn user_rows(app: &TestServer) -> i64 {
    sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn sign_ups_are_limited_per_client_address(db: PgPool) {
    let app = spawn_behind_proxy(db, 3).await;
    let client = "203.0.113.7";
    for name in ["one", "two"] {
        let res = sign_up_from(&app, client, name, &format!("{name}@example.com")).await;
        assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    }
    // Invalid fields are refused before anything is looked up or hashed: they cost nothing.
    let invalid = sign_up_from(&app, client, "x y", "a@b.example").await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let third = sign_up_from(&app, client, "three", "three@example.com").await;
    assert_eq!(third.status, StatusCode::CREATED, "{third:?}");

    let fourth = sign_up_from(&app, client, "four", "four@example.com").await;
    assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS, "{fourth:?}");
    assert_eq!(fourth.code(), "rate_limited");
    let wait: u64 = fourth.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        user_rows(&app).await,
        3,
        "the limited sign-up created nothing"
    );
    let elsewhere = sign_up_from(&app, "198.51.100.4", "four", "four@example.com").await;
    assert_eq!(
        elsewhere.status,
        StatusCode::CREATED,
        "another address has its own allowance"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn refused_sign_ups_count_so_taken_names_and_addresses_cannot_be_probed_forever(db: PgPool) {
    let app = spawn_behind_proxy(db, 2).await;
    let alice = app.user("alice").await;
    assert!(!alice.id.is_empty());
    let prober = "203.0.113.9";

    // The review's reproducer: every taken-username sign-up used to be hashed, answered 409 and
    // given back to the address, so none was ever limited.
    let mut statuses = Vec::new();
    for n in 0..8 {
        let res = sign_up_from(&app, prober, "alice", &format!("probe{n}@example.com")).await;
        statuses.push(res.status.as_u16());
    }
    assert_eq!(statuses, [409, 409, 429, 429, 429, 429, 429, 429]);

    // Asking whether an address is someone's verified one counts the same way.
    let other = "203.0.113.10";
    for expected in [409, 409, 429] {
        let res = sign_up_from(&app, other, "newname", "alice@example.com").await;
        assert_eq!(res.status.as_u16(), expected, "{res:?}");
    }
    assert_eq!(user_rows(&app).await, 1);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn taken_names_are_refused_before_the_password_is_hashed(db: PgPool) {
    // Many addresses (each within its allowance) at once, all naming a taken user: were each
    // hashed first, they would fill the hashing pool's small queue and be answered 429 busy,
    // as would everyone else's logins and sign-ups meanwhile.
    let app = spawn_behind_proxy(db, 5).await;
    app.user("alice").await;
    let burst = (0..64).map(|i| {
        let app = &app;
        async move { sign_up_from(app, &format!("203.0.113.{i}"), "alice", "x@example.com").await }
    });
    let answers = futures::future::join_all(burst).await;
    let busy = answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(busy, 0, "no taken-name sign-up waited for the hasher");
    assert!(answers.iter().all(|a| a.status == StatusCode::CONFLICT));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn ipv6_sign_ups_are_counted_by_their_56(db: PgPool) {
    let app = spawn_behind_proxy(db, 2).await;
    // One subscriber's delegation: any address in 2001:db8:1:0000::/56.
    for (n, addr) in ["2001:db8:1::1", "2001:db8:1:0:ffff::2"].iter().enumerate() {
        let res = sign_up_from(
            &app,
            addr,
            &format!("v6user{n}"),
            &format!("v6{n}@example.com"),
        )
        .await;
        assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    }
    for (n, addr) in ["2001:db8:1:0:abcd::9", "2001:db8:1:ff::1"]
        .iter()
        .enumerate()
    {
        let res = sign_up_from(
            &app,
            addr,
            &format!("more{n}"),
            &format!("more{n}@example.com"),
        )
        .await;
        assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{addr}: {res:?}");
    }
    let next = sign_up_from(&app, "2001:db8:1:100::1", "next56", "next56@example.com").await;
    assert_eq!(
        next.status,
        StatusCode::CREATED,
        "the next /56 is someone else: {next:?}"
    );
    let mapped = sign_up_from(&app, "::ffff:198.51.100.4", "mapped", "mapped@example.com").await;
    assert_eq!(mapped.status, StatusCode::CREATED, "{mapped:?}");
    let same_v4 = sign_up_from(&app, "198.51.100.4", "plain4", "plain4@example.com").await;
    assert_eq!(same_v4.status, StatusCode::CREATED, "{same_v4:?}");
    let third_v4 = sign_up_from(&app, "198.51.100.4", "third4", "third4@example.com").await;
    assert_eq!(
        third_v4.status,
        StatusCode::TOO_MANY_REQUESTS,
        "an IPv4-mapped address counts as its IPv4 address"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn sign_up_names_every_invalid_field(db: PgPool) {
    let app = TestServer::spawn(db).await;
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
    let app = TestServer::spawn(db).await;
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
    let app = TestServer::spawn(db).await;
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
    let app = TestServer::spawn(db).await;
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
async fn a_change_to_me_naming_what_cannot_change_is_refused_not_ignored(db: PgPool) {
    // A probe's `{"email": …}` and `{"is_admin": true}` answered 200, nothing changed: a
    // client was told it had changed the address.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    for body in [
        json!({"email": "bob@example.com"}),
        json!({"is_admin": true}),
        json!({"settings": {"email": "x@example.com"}}),
    ] {
        let res = app
            .call(Method::PATCH, "/api/v1/me", Some(&alice.token), Some(body))
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{res:?}");
    }
    let me = app.get("/api/v1/me", &alice).await;
    assert_eq!(me.body["email"], "alice@example.com", "{me:?}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn me_shows_the_unread_total_and_settings_and_can_be_changed(db: PgPool) {
    let app = TestServer::spawn(db).await;
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
async fn the_email_mode_is_each_daily_or_off_with_a_digest_hour_in_a_time_zone(db: PgPool) {
    let app = TestServer::spawn(db.clone()).await;
    let alice = app.user("alice").await;
    let patch = |settings: serde_json::Value| {
        let token = alice.token.clone();
        let app = &app;
        async move {
            app.call(
                Method::PATCH,
                "/api/v1/me",
                Some(&token),
                Some(json!({ "settings": settings })),
            )
            .await
        }
    };
    let me = app.get("/api/v1/me", &alice).await;
    assert_eq!(me.body["settings"]["email_mode"], "each");
    assert_eq!(me.body["settings"]["digest_hour"], 8);
    assert_eq!(me.body["settings"]["time_zone"], "UTC");

    let daily =
        patch(json!({"email_mode": "daily", "digest_hour": 7, "time_zone": "Europe/Paris"})).await;
    assert_eq!(daily.status, StatusCode::OK, "{daily:?}");
    assert_eq!(daily.body["settings"]["email_mode"], "daily");
    assert_eq!(daily.body["settings"]["email_notifications"], true);
    assert_eq!(daily.body["settings"]["time_zone"], "Europe/Paris");
    let (next, local_hour): (chrono::DateTime<chrono::Utc>, i32) = sqlx::query_as(
        "select next_digest_at, extract(hour from next_digest_at at time zone 'Europe/Paris')::int \
         from users where username = 'alice'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(local_hour, 7, "the next digest is at 07:00 in Paris");
    let ahead = next - chrono::Utc::now();
    assert!(
        ahead > chrono::TimeDelta::zero() && ahead <= chrono::TimeDelta::hours(25),
        "within the next day: {next}"
    );

    for (settings, field) in [
        (json!({"digest_hour": 24}), "digest_hour"),
        (json!({"digest_hour": -1}), "digest_hour"),
        (json!({"time_zone": "Mars/Olympus_Mons"}), "time_zone"),
        (
            json!({"time_zone": "Europe/Paris; drop table users"}),
            "time_zone",
        ),
        // POSIX rules PostgreSQL would take (`UTC+5` is five hours behind UTC, and `XYZ+167`
        // a week), and names whose meaning is the database host's, are no IANA names.
        (json!({"time_zone": "UTC+5"}), "time_zone"),
        (json!({"time_zone": "XYZ+167"}), "time_zone"),
        (json!({"time_zone": "localtime"}), "time_zone"),
        (json!({"time_zone": "posixrules"}), "time_zone"),
        (json!({"time_zone": "posix/Europe/Paris"}), "time_zone"),
        (json!({"time_zone": "right/UTC"}), "time_zone"),
        (json!({"time_zone": "Factory"}), "time_zone"),
        (
            json!({"email_mode": "off", "email_notifications": true}),
            "email_mode",
        ),
        (json!({"email_mode": "weekly"}), "settings.email_mode"),
        (json!({"digest_hour": 1e21}), "settings.digest_hour"),
    ] {
        let refused = patch(settings.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{settings}"
        );
        assert!(!refused.field(field).is_empty(), "{settings}: {refused:?}");
    }
    for zone in ["America/New_York", "Etc/GMT+5", "utc", "GMT"] {
        let taken = patch(json!({"time_zone": zone})).await;
        assert_eq!(taken.status, StatusCode::OK, "{zone}: {taken:?}");
        assert_eq!(taken.body["settings"]["time_zone"], zone);
    }
    // An abbreviation is a fixed offset to PostgreSQL, even one that is also a zone's name:
    // `CET` would send a Paris digest an hour off half the year.
    for zone in ["CET", "EST", "IST"] {
        let refused = patch(json!({"time_zone": zone})).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{zone}");
        assert!(
            refused.field("time_zone").contains("Europe/Paris"),
            "{refused:?}"
        );
    }
    // A zone stored before these rules is kept as it is when a client sends it back with
    // another change, as the terminal client does.
    sqlx::query("update users set time_zone = 'CET' where username = 'alice'")
        .execute(&db)
        .await
        .unwrap();
    let kept = patch(json!({"digest_hour": 6, "time_zone": "CET"})).await;
    assert_eq!(kept.status, StatusCode::OK, "{kept:?}");
    assert_eq!(kept.body["settings"]["digest_hour"], 6);

    let off = patch(json!({"email_mode": "off"})).await;
    assert_eq!(off.body["settings"]["email_mode"], "off");
    assert_eq!(off.body["settings"]["email_notifications"], false);
    let next: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select next_digest_at from users where username = 'alice'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(next, None, "no digest is scheduled while email is off");
    // Turning email back on returns to the chosen mode.
    let on = patch(json!({"email_notifications": true})).await;
    assert_eq!(on.body["settings"]["email_mode"], "daily");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_directory_matches_prefixes_and_leaves_out_the_caller(db: PgPool) {
    let app = TestServer::spawn(db).await;
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
    // A prefix no username can start with matches nobody: a DEL listed everyone.
    for nobody in ["%7F", "a%7F", "~", "%01", "a%2Bb"] {
        let res = app.get(&format!("/api/v1/users?q={nobody}"), &alice).await;
        assert_eq!(res.status, StatusCode::OK, "{nobody}");
        assert_eq!(res.body["items"], serde_json::json!([]), "{nobody}");
    }
    let limited = app.get("/api/v1/users?limit=2", &alice).await;
    assert_eq!(limited.body["items"].as_array().unwrap().len(), 2);
    let bad = app.get("/api/v1/users?limit=0", &alice).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.field("limit").contains("1 to 100"));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_display_name_cannot_hide_or_reorder_its_text(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let mallory = app.user("mallory").await;
    let rename = |name: &'static str| {
        let (app, token) = (&app, mallory.token.clone());
        async move {
            app.call(
                Method::PATCH,
                "/api/v1/me",
                Some(&token),
                Some(json!({ "display_name": name })),
            )
            .await
        }
    };

    // Names that pose as others: an override that reverses `exe.jpg`, a zero-width space inside
    // `paypal`, a soft hyphen inside `admin`, an isolate.
    for posing in [
        "evil\u{202e}gpj.exe",
        "pay\u{200b}pal",
        "ad\u{ad}min",
        "\u{2066}support\u{2069}",
        "pay\u{200c}pal",
        "\u{200d}",
        // Variation selectors after Latin letters draw nothing, and can carry hidden bytes.
        "Alice Liddell\u{e0100}",
        "admin\u{fe0f}\u{fe0e}",
    ] {
        let res = rename(posing).await;
        assert_eq!(
            res.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{posing:?}: {res:?}"
        );
        assert!(res.field("display_name").contains("invisible"), "{res:?}");
    }
    // Names that show nothing, or start with marks that settle on what comes before them
    // (`mallory (\u{301}\u{301})`): a probe renamed to the braille blank.
    for blank in [
        "\u{2800}",
        "\u{2800}\u{2800} ",
        "\u{300}\u{301}\u{302}",
        "\u{20e3}x",
    ] {
        let res = rename(blank).await;
        assert_eq!(
            res.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{blank:?}: {res:?}"
        );
        assert!(res.field("display_name").contains("visible"), "{res:?}");
    }
    for fine in [
        "e\u{301}mile",
        "\u{2800}x",
        "\u{1f469}\u{200d}\u{1f4bb} dev",
    ] {
        assert_eq!(rename(fine).await.status, StatusCode::OK, "{fine:?}");
    }
    // Names shaped like an address pose as one where a mail client shows the name alone.
    for address in [
        "\"Admin\" <admin@convos.example>",
        "security@convos.example",
        "Admin \u{ff1c}admin\u{ff20}convos.example\u{ff1e}",
        "Admin \u{2039}admin\u{fe6b}convos.example\u{203a}",
    ] {
        let res = rename(address).await;
        assert_eq!(
            res.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{address:?}: {res:?}"
        );
        assert!(res.field("display_name").contains('@'), "{res:?}");
    }
    // Joiners doing visible work stay: an emoji sequence, a Persian name.
    for fine in [
        "\u{1f469}\u{200d}\u{1f4bb} Ana",
        "\u{645}\u{6cc}\u{200c}\u{646}\u{627}",
        "Ana \u{2764}\u{fe0f}",
        // Emoji whose joiner follows a selector, a keycap, an ideographic variant.
        "\u{1f3f3}\u{fe0f}\u{200d}\u{1f308} Ana",
        "\u{2764}\u{fe0f}\u{200d}\u{1f525} \u{1f575}\u{fe0f}\u{200d}\u{2640}\u{fe0f}",
        "Team 1\u{fe0f}\u{20e3}",
        "\u{845b}\u{e0100}\u{98fe}",
    ] {
        let res = rename(fine).await;
        assert_eq!(res.status, StatusCode::OK, "{fine:?}: {res:?}");
        assert_eq!(res.body["display_name"], fine);
    }
}
