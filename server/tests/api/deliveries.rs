//! What each side sees of a message's email notification, and unsubscribe links that expire
//! and retire (decision 18). The worker's decisions are written through the store functions it
//! uses, so no worker or SMTP server is needed here.

use chrono::{TimeDelta, Utc};
use convos_core::{MessageId, UserId};
use convos_store::deliveries;
use convos_testkit::{TestServer, TestUser, id};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::PgPool;

/// What a real MTA answers for an unknown mailbox: the recipient's private address included.
const SMTP_ERROR: &str = "smtp: permanent error (550): 5.1.1 <bob@example.com>: User unknown";

fn parse<T: std::str::FromStr>(raw: &str) -> T {
    raw.parse().ok().expect("an id")
}

async fn deliveries_of(app: &TestServer, message: &str, caller: &TestUser) -> (StatusCode, Value) {
    let answer = app
        .get(&format!("/api/v1/messages/{message}/deliveries"), caller)
        .await;
    (answer.status, answer.body)
}

async fn make_admin(app: &TestServer, user: &TestUser) {
    sqlx::query("update users set is_admin = true where username = $1")
        .bind(&user.username)
        .execute(&app.db)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_sender_sees_whether_it_was_sent_and_the_recipient_and_admins_see_why_not(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let admin = app.user("oscar").await;
    make_admin(&app, &admin).await;
    let message = id(&app.send(&alice, &bob, "Hi", "hello").await);

    let (status, pending) = deliveries_of(&app, &message, &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pending["items"][0]["status"], "pending");
    assert_eq!(pending["items"][0]["recipient"]["username"], "bob");
    assert!(pending["items"][0].get("detail").is_none(), "{pending}");

    deliveries::record(
        &app.db,
        &[parse::<MessageId>(&message)],
        parse::<UserId>(&bob.id),
        "failed",
        "rejected",
        Some(SMTP_ERROR),
    )
    .await
    .unwrap();

    let (_, seen_by_sender) = deliveries_of(&app, &message, &alice).await;
    let item = &seen_by_sender["items"][0];
    assert_eq!(item["status"], "not_sent");
    assert!(item.get("detail").is_none() && item.get("reason").is_none());
    // Ids and times are random digits, which can spell "550" ("…T08:55:39.909550Z").
    let mut shown = seen_by_sender.clone();
    shown["items"][0]["updated_at"] = serde_json::Value::Null;
    shown["items"][0]["recipient"]["id"] = serde_json::Value::Null;
    let text = shown.to_string();
    for secret in [
        "bob@example.com",
        "550",
        "rejected",
        "User unknown",
        "failed",
    ] {
        assert!(!text.contains(secret), "the sender learns {secret}: {text}");
    }

    for full_view in [&bob, &admin] {
        let (status, seen) = deliveries_of(&app, &message, full_view).await;
        assert_eq!(status, StatusCode::OK, "{}", full_view.username);
        let item = &seen["items"][0];
        assert_eq!(item["status"], "not_sent");
        assert_eq!(item["detail"]["state"], "failed");
        assert_eq!(item["detail"]["reason"], "rejected");
        assert_eq!(item["detail"]["error"], SMTP_ERROR);
    }

    let (status, _) = deliveries_of(&app, &message, &carol).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a stranger sees nothing");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_recipients_reads_mutes_and_settings_are_not_told_to_the_sender(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut answers = Vec::new();
    for reason in [
        "already_read",
        "muted",
        "email_off",
        "daily_cap",
        "unverified",
        "bounced",
    ] {
        let message = id(&app.send(&alice, &bob, reason, "hello").await);
        deliveries::record(
            &app.db,
            &[parse::<MessageId>(&message)],
            parse::<UserId>(&bob.id),
            "skipped",
            reason,
            None,
        )
        .await
        .unwrap();
        let (_, seen) = deliveries_of(&app, &message, &alice).await;
        assert_eq!(seen["items"][0]["status"], "not_sent", "{reason}");
        assert!(seen["items"][0].get("detail").is_none(), "{reason}");
        let (_, seen_by_bob) = deliveries_of(&app, &message, &bob).await;
        assert_eq!(seen_by_bob["items"][0]["detail"]["state"], "skipped");
        assert_eq!(seen_by_bob["items"][0]["detail"]["reason"], reason);
        answers.push(seen["items"][0].clone());
    }
    let shapes: Vec<Vec<&String>> = answers
        .iter()
        .map(|a| a.as_object().unwrap().keys().collect())
        .collect();
    assert!(
        shapes.windows(2).all(|w| w[0] == w[1]),
        "every reason looks the same to the sender: {answers:?}"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_sent_email_is_sent_for_everyone(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let sent = app.send(&alice, &bob, "Hi", "hello").await;
    let message = id(&sent);
    let reserved = deliveries::reserve(
        &app.db,
        parse(sent["thread_id"].as_str().unwrap()),
        parse(&bob.id),
        &[parse(&message)],
        (20, 8),
    )
    .await
    .unwrap();
    let deliveries::Reserved::Email(email) = reserved else {
        panic!("bob's day has room: {reserved:?}");
    };
    deliveries::record_sent(&app.db, email, parse(&bob.id), &[parse(&message)])
        .await
        .unwrap();
    let (_, seen) = deliveries_of(&app, &message, &alice).await;
    assert_eq!(seen["items"][0]["status"], "sent");
    let (_, seen) = deliveries_of(&app, &message, &bob).await;
    assert_eq!(seen["items"][0]["status"], "sent");
    assert_eq!(seen["items"][0]["detail"]["state"], "sent");
    assert_eq!(seen["items"][0]["detail"]["error"], Value::Null);

    let deleted = app
        .delete(&format!("/api/v1/messages/{message}"), &bob)
        .await;
    assert!(deleted.status.is_success(), "{deleted:?}");
    let (status, _) = deliveries_of(&app, &message, &bob).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "gone for the recipient once deleted"
    );
}

fn secret() -> String {
    convos_server::config::Settings::default()
        .secret_key
        .expose_secret()
        .to_owned()
}

async fn unsubscribe(app: &TestServer, token: &str) -> (StatusCode, StatusCode) {
    let url = format!("{}/api/v1/unsubscribe/{token}", app.base);
    let page = app.http.get(&url).send().await.unwrap().status();
    let post = app.http.post(&url).send().await.unwrap().status();
    (page, post)
}

async fn email_on(app: &TestServer, user: &TestUser) -> bool {
    app.get("/api/v1/me", user).await.body["settings"]["email_notifications"]
        .as_bool()
        .unwrap()
}

async fn set_email(app: &TestServer, user: &TestUser, on: bool) {
    let changed = app
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(&user.token),
            Some(json!({"settings": {"email_notifications": on}})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_unsubscribe_link_stops_working_once_email_is_turned_back_on(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let bob = app.user("bob").await;
    let old = convos_core::unsubscribe::token(&secret(), parse(&bob.id), Utc::now());

    assert_eq!(
        unsubscribe(&app, &old).await,
        (StatusCode::OK, StatusCode::OK)
    );
    assert!(!email_on(&app, &bob).await);

    set_email(&app, &bob, true).await;
    assert_eq!(
        unsubscribe(&app, &old).await,
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
        "a link from before the change is retired"
    );
    assert!(email_on(&app, &bob).await, "and changed nothing");

    // Issue times are whole seconds and a link issued in the second of the change counts as
    // older, so the next email's link is issued a moment later.
    let fresh = convos_core::unsubscribe::token(
        &secret(),
        parse(&bob.id),
        Utc::now() + TimeDelta::seconds(2),
    );
    assert_eq!(
        unsubscribe(&app, &fresh).await,
        (StatusCode::OK, StatusCode::OK)
    );
    assert!(!email_on(&app, &bob).await);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn expired_and_first_format_unsubscribe_links_are_refused(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let bob = app.user("bob").await;
    let user: UserId = parse(&bob.id);
    let expired = convos_core::unsubscribe::token(
        &secret(),
        user,
        Utc::now() - TimeDelta::days(convos_core::unsubscribe::MAX_AGE_DAYS) - TimeDelta::hours(1),
    );
    assert_eq!(
        unsubscribe(&app, &expired).await,
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
    // The first format, `<user>.<signature>`, had no issue time (core's unit tests refuse a
    // genuine one; here, the shape).
    let current = convos_core::unsubscribe::token(&secret(), user, Utc::now());
    let first_format = format!("{user}.{}", current.rsplit('.').next().unwrap());
    assert_eq!(
        unsubscribe(&app, &first_format).await,
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
    assert!(email_on(&app, &bob).await, "nothing changed");
    let recent = convos_core::unsubscribe::token(&secret(), user, Utc::now() - TimeDelta::days(59));
    assert_eq!(
        unsubscribe(&app, &recent).await,
        (StatusCode::OK, StatusCode::OK)
    );
}
