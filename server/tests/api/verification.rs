//! Email ownership: sign-up leaves the address unverified, the emailed link's page asks and its
//! POST confirms, forged and expired links are refused, resends are limited, and an address
//! belongs to whoever verifies it first.

use chrono::{DateTime, Duration, Utc};
use convos_core::UserId;
use convos_testkit::{TestServer, TestUser};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::PgPool;

/// The secret the test servers sign links with (the settings' default).
fn secret() -> String {
    convos_server::config::Settings::default()
        .secret_key
        .expose_secret()
        .to_owned()
}

/// A link token as the worker makes it.
fn token_for(user: &TestUser, email: &str, issued: DateTime<Utc>, hours: i64) -> String {
    let id: UserId = user.id.parse().unwrap();
    convos_core::verification::token(
        &secret(),
        id,
        email,
        issued,
        issued + Duration::hours(hours),
    )
}

/// A page: status and HTML. A POST types the username of the account the link names, as its
/// owner does (none for a token that names no account).
async fn page(app: &TestServer, method: Method, token: &str) -> (StatusCode, String) {
    let username: Option<String> = match convos_core::verification::Link::parse(token) {
        Some(link) => sqlx::query_scalar("select username from users where id = $1")
            .bind(link.user.as_uuid())
            .fetch_optional(&app.db)
            .await
            .unwrap(),
        None => None,
    };
    page_typed(app, method, token, username.as_deref().unwrap_or("")).await
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn an_owner_is_told_when_others_claims_filled_their_mailbox(db: PgPool) {
    // Claims of an address by other accounts use up its mailbox's verification emails (5 an
    // hour, 10 a day); the owner's request for their link was answered 202 and its email
    // skipped unseen, for as long as the claims went on (a probe). They are now told.
    let app = TestServer::spawn(db).await;
    let owner = app.unverified_user("vera").await;
    sqlx::query(
        "insert into verification_emails (address, sent_at) \
         select 'vera@example.com', now() - g * interval '5 minutes' from generate_series(1, 5) g",
    )
    .execute(&app.db)
    .await
    .unwrap();

    let resend = app.act("/api/v1/me/verification", &owner).await;

    assert_eq!(resend.status, StatusCode::TOO_MANY_REQUESTS, "{resend:?}");
    assert_eq!(resend.code(), "rate_limited");
    let message = resend.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("verification emails"), "{message}");
    let wait: u64 = resend.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (2_000..=2_100).contains(&wait),
        "when the hour's oldest, 25 minutes old, leaves it: {wait}"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn one_networks_accounts_share_an_hours_verification_emails(db: PgPool) {
    // Each mailbox gets at most 10 a day, but nothing bounded all of them: a network adding 5
    // accounts an hour, each asking for 3 emails an hour to a stranger's address, mailed
    // thousands of strangers a day (a probe's estimate). Here a network may ask for 2 an hour.
    let app = TestServer::spawn_with(db, |s| s.verification_emails_per_hour_per_addr = 2).await;
    let mut answers = Vec::new();
    for name in ["ann", "ben", "cat"] {
        let user = app.unverified_user(name).await;
        answers.push(app.act("/api/v1/me/verification", &user).await);
    }

    let statuses: Vec<StatusCode> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::ACCEPTED,
            StatusCode::ACCEPTED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert!(answers[2].headers.contains_key("retry-after"));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn asking_for_what_is_refused_uses_up_nobodys_share_of_the_network(db: PgPool) {
    // A refused request gave its account's count back but not its network's: a verified
    // account asking again and again for a link it does not need used up the network's hour,
    // and nobody behind the same address could get one (a review).
    let app = TestServer::spawn_with(db, |s| s.verification_emails_per_hour_per_addr = 2).await;
    let verified = app.user("vic").await;
    for _ in 0..5 {
        let refused = app.act("/api/v1/me/verification", &verified).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused:?}"
        );
        let same = change_email(&app, &verified, "vic@example.com").await;
        assert_eq!(same.status, StatusCode::UNPROCESSABLE_ENTITY, "{same:?}");
    }

    let neighbour = app.unverified_user("ned").await;
    let asked = app.act("/api/v1/me/verification", &neighbour).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{asked:?}");
}

/// A page, the POST typing `username`.
async fn page_typed(
    app: &TestServer,
    method: Method,
    token: &str,
    username: &str,
) -> (StatusCode, String) {
    let mut request = app
        .http
        .request(method.clone(), format!("{}/verify/{token}", app.base));
    if method == Method::POST {
        request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("username={username}"));
    }
    let res = request.send().await.unwrap();
    let status = res.status();
    let html = res.text().await.unwrap();
    (status, html)
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_link_confirms_only_for_the_owner_of_the_account_it_names(db: PgPool) {
    // Neither the email nor its page named the account: a probe's owner, waiting for their
    // own link, pressed Confirm on the one an attacker's account had asked for, and the
    // attacker's account took their address. The page now asks for one's username, and
    // confirms only the account it was made for (decision 86).
    let app = TestServer::spawn(db).await;
    let attacker = app.unverified_user("mallory").await;
    let token = token_for(&attacker, "mallory@example.com", Utc::now(), 48);

    let (status, html) = page(&app, Method::GET, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"username\""), "{html}");
    // The page names the address it confirms, which here holds the username: past it, nothing
    // may.
    assert!(
        !html.replace("mallory@example.com", "").contains("mallory"),
        "the page does not name the account: {html}"
    );
    for typed in ["vera", "", "mallory%20x"] {
        let (status, html) = page_typed(&app, Method::POST, &token, typed).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{typed}: {html}");
        assert!(
            !html.contains("mallory"),
            "{typed}: names no account: {html}"
        );
    }
    assert_eq!(me(&app, &attacker).await["email_verified"], false);

    let (status, html) = page_typed(&app, Method::POST, &token, "%20Mallory").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Your email is confirmed"), "{html}");
    assert_eq!(me(&app, &attacker).await["email_verified"], true);
}

async fn me(app: &TestServer, user: &TestUser) -> Value {
    app.get("/api/v1/me", user).await.body
}

async fn verify_jobs(app: &TestServer) -> Vec<(String, Value)> {
    sqlx::query_as("select state, payload from jobs where kind = 'verify_email' order by id")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_page_with_a_token_in_its_address_is_not_cached_framed_or_referred(db: PgPool) {
    // The verification and email-link pages carry a capability in their URL and buttons that
    // act with it: a probe found them cacheable, frameable (a "turn email off" button under a
    // stranger's page) and free to send their URL as a Referer.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let account_link = convos_core::email_links::token(
        &secret(),
        alice.id.parse().unwrap(),
        convos_core::email_links::Target::Account,
        Utc::now(),
    );
    for (path, status) in [
        ("/verify/not-a-token".to_owned(), StatusCode::NOT_FOUND),
        (
            format!("/api/v1/email-links/{account_link}"),
            StatusCode::OK,
        ),
    ] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with("text/html"), "{path}");
        assert_eq!(header("cache-control"), "no-store", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert!(
            header("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn sign_up_leaves_the_address_unverified_and_queues_one_verification_email(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let res = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"username": "bob", "email": "Bob@Example.com", "password": "long enough"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    assert_eq!(res.body["email_verified"], false);
    let bob = app.login("bob", "long enough").await;
    assert_eq!(me(&app, &bob).await["email_verified"], false);

    let jobs = verify_jobs(&app).await;
    assert_eq!(jobs.len(), 1, "one verification email: {jobs:?}");
    let (state, payload) = &jobs[0];
    assert_eq!(state, "pending");
    assert_eq!(payload["recipient_id"], bob.id.as_str());
    assert_eq!(payload["email"], "Bob@Example.com");
    assert_eq!(payload["valid_hours"], 48);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_link_page_only_asks_and_its_post_confirms(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let bob = app.unverified_user("bob").await;
    let token = token_for(&bob, "bob@example.com", Utc::now(), 48);

    let (status, html) = page(&app, Method::GET, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<form method=\"post\""), "{html}");
    assert!(
        html.contains(&format!("action=\"/verify/{token}\"")),
        "{html}"
    );
    assert!(html.contains("bob@example.com"));
    let (status, _) = page(&app, Method::GET, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me(&app, &bob).await["email_verified"],
        false,
        "a GET (a mail scanner's prefetch) verifies nothing"
    );

    let (status, html) = page(&app, Method::POST, &token).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Your email is confirmed"), "{html}");
    assert_eq!(me(&app, &bob).await["email_verified"], true);
    let jobs = verify_jobs(&app).await;
    assert_eq!(
        jobs[0].0, "skipped",
        "the queued email would only repeat the link"
    );

    let (status, html) = page(&app, Method::POST, &token).await;
    assert_eq!(status, StatusCode::OK, "following it twice is harmless");
    assert!(html.contains("already confirmed"), "{html}");
    let board = convos_store::ops::board(&app.db).await.unwrap();
    let verify = board
        .queues
        .iter()
        .find(|q| q.name == "verify_email")
        .unwrap();
    assert_eq!(
        (verify.succeeded_1h, verify.succeeded_24h),
        (1, 1),
        "the board counts the job the confirmation skipped, once: {verify:?}"
    );
    let (status, html) = page(&app, Method::GET, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<form"), "nothing left to confirm: {html}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn forged_expired_and_outdated_links_are_refused(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let bob = app.unverified_user("bob").await;
    let now = Utc::now();
    let id: UserId = bob.id.parse().unwrap();
    let genuine = token_for(&bob, "bob@example.com", now, 48);
    let parts: Vec<&str> = genuine.split('.').collect();

    let another_secret = convos_core::verification::token(
        "not the server's secret at all, but long enough",
        id,
        "bob@example.com",
        now,
        now + Duration::hours(48),
    );
    let longer_life = format!(
        "{}.{}.{}.{}",
        parts[0],
        parts[1],
        (now + Duration::days(3650)).timestamp_millis(),
        parts[3]
    );
    let for_another_address = token_for(&bob, "mallory@example.com", now, 48);
    for (forged, why) in [
        (another_secret.as_str(), "signed with another secret"),
        (longer_life.as_str(), "expiry moved"),
        (
            for_another_address.as_str(),
            "an address the account does not have",
        ),
        ("garbage", "not a token"),
        (&format!("{}.1.2.00", UserId::generate()), "unknown user"),
    ] {
        for method in [Method::GET, Method::POST] {
            let (status, html) = page(&app, method.clone(), forged).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{why} ({method})");
            assert!(html.contains("This link is not valid"), "{html}");
        }
    }

    let expired = token_for(&bob, "bob@example.com", now - Duration::hours(49), 48);
    for method in [Method::GET, Method::POST] {
        let (status, html) = page(&app, method, &expired).await;
        assert_eq!(status, StatusCode::GONE);
        assert!(html.contains("expired"), "{html}");
    }
    assert_eq!(me(&app, &bob).await["email_verified"], false);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_squatted_address_goes_to_whoever_verifies_it_first(db: PgPool) {
    let app = TestServer::spawn(db).await;
    // Mallory claims alice's address first; it used to lock alice out (409).
    let mallory = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"username": "mallory", "email": "alice@example.com", "password": "long enough"})),
        )
        .await;
    assert_eq!(mallory.status, StatusCode::CREATED);
    let mallory = app.login("mallory", "long enough").await;
    let alice = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"username": "alice", "email": "ALICE@example.com", "password": "long enough"})),
        )
        .await;
    assert_eq!(
        alice.status,
        StatusCode::CREATED,
        "an unverified claim blocks nobody"
    );
    let alice = app.login("alice", "long enough").await;

    let (status, _) = page(
        &app,
        Method::POST,
        &token_for(&alice, "ALICE@example.com", Utc::now(), 48),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me(&app, &alice).await["email_verified"], true);

    // Mallory's claim has lapsed: the link says so, and asking for another is refused.
    let mallory_link = token_for(&mallory, "alice@example.com", Utc::now(), 48);
    for method in [Method::GET, Method::POST] {
        let (status, html) = page(&app, method, &mallory_link).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(html.contains("another account"), "{html}");
    }
    assert_eq!(me(&app, &mallory).await["email_verified"], false);
    let resend = app.act("/api/v1/me/verification", &mallory).await;
    assert_eq!(resend.status, StatusCode::CONFLICT, "{resend:?}");

    // A verified address cannot be claimed again.
    let again = app
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"username": "trudy", "email": "Alice@Example.com", "password": "long enough"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("email")
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn resending_is_limited_per_account_and_pointless_once_verified(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| s.verification_emails_per_hour = 2).await;
    let bob = app.unverified_user("bob").await;
    for _ in 0..2 {
        let res = app.act("/api/v1/me/verification", &bob).await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{res:?}");
        assert_eq!(res.body["email"], "bob@example.com");
    }
    let limited = app.act("/api/v1/me/verification", &bob).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(
        verify_jobs(&app).await.len(),
        3,
        "sign-up's and two resends"
    );

    let carol = app.user("carol").await;
    let res = app.act("/api/v1/me/verification", &carol).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.field("email").contains("already verified"));
    let anonymous = app
        .call(Method::POST, "/api/v1/me/verification", None, None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_bounced_address_is_confirmed_again_only_by_a_link_sent_after_the_bounce(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let bob = app.unverified_user("bob").await;
    let first = token_for(&bob, "bob@example.com", Utc::now(), 48);
    let (status, _) = page(&app, Method::POST, &first).await;
    assert_eq!(status, StatusCode::OK);
    sqlx::query("update users set email_bounced_at = now() where username = 'bob'")
        .execute(&app.db)
        .await
        .unwrap();

    let resend = app.act("/api/v1/me/verification", &bob).await;
    assert_eq!(
        resend.status,
        StatusCode::ACCEPTED,
        "a bounced address may ask again"
    );
    for method in [Method::GET, Method::POST] {
        let (status, html) = page(&app, method, &first).await;
        assert_eq!(status, StatusCode::GONE, "the old link proves nothing now");
        assert!(html.contains("replaced"), "{html}");
    }

    let fresh = token_for(&bob, "bob@example.com", Utc::now(), 48);
    let (status, _) = page(&app, Method::POST, &fresh).await;
    assert_eq!(status, StatusCode::OK);
    let bounced: Option<DateTime<Utc>> =
        sqlx::query_scalar("select email_bounced_at from users where username = 'bob'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(bounced, None, "confirming clears the bounce");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn accounts_made_by_operators_and_the_demo_seed_are_verified(db: PgPool) {
    let app = TestServer::spawn(db).await;
    assert!(
        convos_server::seed::seed_demo(&app.db, "demo-password")
            .await
            .unwrap()
    );
    let alice = app.login("alice", "demo-password").await;
    assert_eq!(me(&app, &alice).await["email_verified"], true);
    let unverified: i64 =
        sqlx::query_scalar("select count(*) from users where email_verified_at is null")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        unverified, 0,
        "every demo account gets email in `cargo xtask dev`"
    );
    // `convos-server admin create-user` goes through the same store function.
    let made = convos_store::users::insert(
        &app.db,
        &convos_core::Username::parse("ops").unwrap(),
        &convos_core::EmailAddress::parse("ops@example.com").unwrap(),
        &convos_core::DisplayName::parse("Ops").unwrap(),
        "$argon2id$not-a-real-hash",
        false,
    )
    .await
    .unwrap();
    assert!(made.email_verified);
    assert!(
        verify_jobs(&app).await.is_empty(),
        "no verification email for them"
    );
}

/// `PUT /api/v1/me/email` as `user`, whose password is the test kit's.
async fn change_email(app: &TestServer, user: &TestUser, email: &str) -> convos_testkit::Answer {
    let password = format!("password-{}", user.username);
    change_email_with(app, user, json!({"email": email, "password": password})).await
}

async fn change_email_with(
    app: &TestServer,
    user: &TestUser,
    body: Value,
) -> convos_testkit::Answer {
    app.call(
        Method::PUT,
        "/api/v1/me/email",
        Some(&user.token),
        Some(body),
    )
    .await
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn an_account_whose_address_another_confirmed_first_can_move_to_another(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let first = app.unverified_user("first").await;
    let second = app.unverified_user("second").await;
    sqlx::query("update users set email = 'first@example.com' where username = 'second'")
        .execute(&app.db)
        .await
        .unwrap();
    app.verify_email(&first).await;
    assert_eq!(
        app.act("/api/v1/me/verification", &second).await.status,
        StatusCode::CONFLICT,
        "the claim has lapsed"
    );

    let moved = change_email(&app, &second, "Second@Example.com").await;
    assert_eq!(moved.status, StatusCode::ACCEPTED, "{moved:?}");
    assert_eq!(moved.body["email"], "Second@Example.com");
    let now = me(&app, &second).await;
    assert_eq!(now["email"], "Second@Example.com");
    assert_eq!(now["email_verified"], false);
    let (state, payload) = verify_jobs(&app).await.pop().unwrap();
    assert_eq!(state, "pending");
    assert_eq!(payload["email"], "Second@Example.com");

    // A link for the address the account left is no longer valid; one for the new address
    // confirms it.
    let (status, _) = page(
        &app,
        Method::POST,
        &token_for(&second, "first@example.com", Utc::now(), 48),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, html) = page(
        &app,
        Method::POST,
        &token_for(&second, "second@example.com", Utc::now(), 48),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(me(&app, &second).await["email_verified"], true);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn changing_the_address_takes_the_password_and_an_address_nobody_confirmed(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.unverified_user("bob").await;
    let before = verify_jobs(&app).await.len();

    let wrong = change_email_with(
        &app,
        &bob,
        json!({"email": "new@example.com", "password": "not bob's"}),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong:?}");
    assert!(wrong.field("password").contains("not your password"));
    let missing = change_email_with(&app, &bob, json!({"email": "new@example.com"})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.field("password").contains("required"));
    let invalid = change_email(&app, &bob, "not an address").await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    invalid.field("email");
    let same = change_email(&app, &bob, "BOB@example.com").await;
    assert_eq!(same.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(same.field("email").contains("already"), "{same:?}");
    let taken = change_email(&app, &bob, "Alice@Example.com").await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{taken:?}");
    assert!(
        taken.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("email")
    );

    assert_eq!(
        me(&app, &bob).await["email"],
        "bob@example.com",
        "nothing changed"
    );
    assert_eq!(
        verify_jobs(&app).await.len(),
        before,
        "and nothing was emailed"
    );
    assert_eq!(me(&app, &alice).await["email"], "alice@example.com");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_confirmed_address_left_behind_gets_nothing_more_and_its_emails_lose_their_power(
    db: PgPool,
) {
    let app = TestServer::spawn(db).await;
    let carol = app.user("carol").await;
    assert_eq!(me(&app, &carol).await["email_verified"], true);

    let moved = change_email(&app, &carol, "carol@new.example").await;
    assert_eq!(moved.status, StatusCode::ACCEPTED, "{moved:?}");
    let now = me(&app, &carol).await;
    assert_eq!(now["email"], "carol@new.example");
    assert_eq!(
        now["email_verified"], false,
        "no email about messages until the new address is confirmed"
    );
    // The emails already in the old mailbox: their reply addresses and links are revoked, as
    // `DELETE /api/v1/me/reply-addresses` does.
    let revoked: bool = sqlx::query_scalar(
        "select reply_addresses_revoked_at is not null from users where username = 'carol'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(revoked);
    // The old address is free for whoever confirms it.
    let dave = app.unverified_user("dave").await;
    let claimed = change_email(&app, &dave, "carol@example.com").await;
    assert_eq!(claimed.status, StatusCode::ACCEPTED, "{claimed:?}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn address_changes_count_against_the_hours_verification_emails(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| s.verification_emails_per_hour = 2).await;
    let erin = app.user("erin").await;
    for address in ["erin@one.example", "erin@two.example"] {
        let res = change_email(&app, &erin, address).await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{res:?}");
    }
    let limited = change_email(&app, &erin, "erin@three.example").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(me(&app, &erin).await["email"], "erin@two.example");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn asking_whether_addresses_are_taken_counts_as_sign_up_does(db: PgPool) {
    // A 409 says another account has the address verified: given back, it let each account
    // test 60 addresses an hour for free, where sign-up counts its 409s.
    let app = TestServer::spawn_with(db, |s| s.verification_emails_per_hour = 2).await;
    for name in ["alice", "bob", "carol"] {
        app.user(name).await;
    }
    let frank = app.user("frank").await;
    for taken in ["alice@example.com", "bob@example.com"] {
        let res = change_email(&app, &frank, taken).await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{res:?}");
    }
    let limited = change_email(&app, &frank, "carol@example.com").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{limited:?}");

    // A wrong password or the account's own address is not such a question, and is not counted
    // here (the login limits count wrong passwords).
    let gina = app.user("gina").await;
    for _ in 0..3 {
        let wrong = change_email_with(
            &app,
            &gina,
            json!({"email": "gina@new.example", "password": "not hers"}),
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong:?}");
        let same = change_email(&app, &gina, "gina@example.com").await;
        assert_eq!(same.status, StatusCode::UNPROCESSABLE_ENTITY, "{same:?}");
    }
    let moved = change_email(&app, &gina, "gina@new.example").await;
    assert_eq!(moved.status, StatusCode::ACCEPTED, "{moved:?}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn an_address_another_account_claimed_but_never_confirmed_can_be_moved_to(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let squatter = app.unverified_user("squatter").await;
    let owner = app.user("owner").await;
    let moved = change_email(&app, &owner, "squatter@example.com").await;
    assert_eq!(moved.status, StatusCode::ACCEPTED, "{moved:?}");
    assert_eq!(me(&app, &squatter).await["email"], "squatter@example.com");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn confirming_the_old_address_while_the_account_moves_keeps_the_new_ones_link(db: PgPool) {
    // A probe raced an old link's POST against a change of address: the page said "confirmed",
    // nothing was, and the new address's verification email was skipped as already verified.
    // Here the move holds the account's row while the confirmation arrives, as it did there.
    let app = TestServer::spawn(db).await;
    let user = app.unverified_user("mover").await;
    let old_link = token_for(&user, "mover@example.com", Utc::now(), 48);
    let id: UserId = user.id.parse().unwrap();
    let mut moving = app.db.begin().await.unwrap();
    sqlx::query("select 1 from users where id = $1 for update")
        .bind(id.as_uuid())
        .execute(&mut *moving)
        .await
        .unwrap();

    let confirming = {
        let base = app.base.clone();
        let http = app.http.clone();
        tokio::spawn(async move {
            let res = http
                .post(format!("{base}/verify/{old_link}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=mover")
                .send()
                .await
                .unwrap();
            (res.status(), res.text().await.unwrap())
        })
    };
    convos_testkit::until_a_lock_is_awaited(&app.db, || confirming.is_finished()).await;
    sqlx::query(
        "update users set email = 'mover@new.example', email_verified_at = null where id = $1",
    )
    .bind(id.as_uuid())
    .execute(&mut *moving)
    .await
    .unwrap();
    convos_store::verification::enqueue_email(&mut moving, id, "mover@new.example", 48)
        .await
        .unwrap();
    moving.commit().await.unwrap();

    let (status, html) = confirming.await.unwrap();
    assert!(!html.contains("is confirmed"), "{status}: {html}");
    assert_eq!(me(&app, &user).await["email_verified"], false);
    let waiting: i64 = sqlx::query_scalar(
        "select count(*) from jobs where kind = 'verify_email' and state = 'pending' \
         and payload->>'email' = 'mover@new.example'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(waiting, 1, "the new address's link is still to be sent");
}
