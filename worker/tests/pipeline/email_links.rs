//! Stopping email from the email (decision 27), over real SMTP: the one-click
//! `List-Unsubscribe` mutes one thread, the footer's page pauses or stops all email with an
//! undo, and a message's link marks it read. No login anywhere: the signed link is enough.

use crate::stack::start_api;
use chrono::{TimeDelta, Utc};
use convos_core::email_links::{self, Target};
use convos_core::{ThreadId, UserId};
use convos_testkit::{
    Answer, InProcessWorker, Mail, SmtpSink, StackConfig, TestServer, TestUser, all_jobs_finished,
    database_url, eventually,
};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// What a browser sends as `Accept`.
const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The path (without the public URL) of the footer link whose text line starts with `label`.
fn footer_link(mail: &Mail, label: &str) -> String {
    let text = mail.part("text/plain");
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} link in: {text}"));
    let url = line.split_whitespace().last().unwrap();
    url.strip_prefix("https://convos.test")
        .unwrap_or_else(|| panic!("a link to the public URL: {url}"))
        .to_owned()
}

/// The path of the email's one-click `List-Unsubscribe`.
fn list_unsubscribe(mail: &Mail) -> String {
    let header = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    header
        .trim_matches(['<', '>'])
        .strip_prefix("https://convos.test")
        .unwrap_or_else(|| panic!("a link to the public URL: {header}"))
        .to_owned()
}

/// The email about `subject`, once it arrived.
async fn email_about(smtp: &SmtpSink, subject: &str) -> Mail {
    let wanted = format!("[Convos] {subject}");
    eventually(WAIT, &format!("the email about {subject}"), || async {
        smtp.mails()
            .iter()
            .any(|m| m.header("Subject").as_deref() == Some(wanted.as_str()))
    })
    .await;
    smtp.mails()
        .into_iter()
        .find(|m| m.header("Subject").as_deref() == Some(wanted.as_str()))
        .unwrap()
}

/// A mail client's one-click POST (RFC 8058): a form body, no login, JSON back.
async fn one_click(api: &TestServer, path: &str) -> Answer {
    let res = api
        .http
        .post(format!("{}{path}", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    Answer::from_response(res).await
}

/// A browser's request without a login: status and page.
async fn browse(api: &TestServer, method: Method, path: &str) -> (u16, String) {
    let res = api
        .http
        .request(method, format!("{}{path}", api.base))
        .header("accept", BROWSER)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The target of the page's form whose button reads `label`.
fn form_action(page: &str, label: &str) -> String {
    let button = page
        .find(&format!(">{label}</button>"))
        .unwrap_or_else(|| panic!("no {label:?} button in: {page}"));
    let form = page[..button].rfind("action=\"").unwrap() + "action=\"".len();
    let end = page[form..].find('"').unwrap();
    page[form..form + end].to_owned()
}

/// The recipient's view of what became of the email about `message`.
async fn delivery(api: &TestServer, message: &Value, recipient: &TestUser) -> Value {
    let path = format!(
        "/api/v1/messages/{}/deliveries",
        message["id"].as_str().unwrap()
    );
    api.get(&path, recipient).await.body["items"][0].clone()
}

async fn muted(api: &TestServer, thread: &str, user: &TestUser) -> bool {
    let thread = api.get(&format!("/api/v1/threads/{thread}"), user).await;
    thread.body["muted"].as_bool().expect("muted")
}

fn secret() -> String {
    convos_worker::config::WorkerSettings::default()
        .secret_key
        .expose_secret()
        .to_owned()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn one_click_on_list_unsubscribe_mutes_only_that_thread(db: PgPool) {
    // Arrange: Bob got an email about each of two threads.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let noisy = api.send(&alice, &bob, "Noisy", "1").await;
    let quiet = api.send(&alice, &bob, "Quiet", "1").await;
    let noisy_mail = email_about(&smtp, "Noisy").await;
    email_about(&smtp, "Quiet").await;
    let link = list_unsubscribe(&noisy_mail);
    assert!(link.starts_with("/api/v1/email-links/"), "{link}");
    assert_eq!(
        noisy_mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let (noisy_thread, quiet_thread) = (
        noisy["thread_id"].as_str().unwrap(),
        quiet["thread_id"].as_str().unwrap(),
    );

    // Act: a scanner opens the link, then the mail client's one-click POST.
    let (status, _) = browse(&api, Method::GET, &link).await;
    assert_eq!(status, 200);
    assert!(
        !muted(&api, noisy_thread, &bob).await,
        "opening the page changes nothing"
    );
    let answer = one_click(&api, &link).await;

    // Assert: that thread is muted for Bob, and only it; its next email is skipped, the other
    // thread's arrives.
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "muted");
    assert!(muted(&api, noisy_thread, &bob).await);
    assert!(!muted(&api, quiet_thread, &bob).await);
    assert!(!muted(&api, noisy_thread, &alice).await, "Alice's view");
    let me = api.get("/api/v1/me", &bob).await.body;
    assert_eq!(me["settings"]["email_notifications"], true);
    let skipped = api.reply(&alice, noisy_thread, "2").await;
    api.reply(&alice, quiet_thread, "2").await;
    eventually(WAIT, "jobs to finish", || all_jobs_finished(&db)).await;
    // The first two emails' jobs ran side by side: their order is not the point.
    let mut subjects: Vec<String> = smtp
        .mails()
        .iter()
        .filter_map(|m| m.header("Subject"))
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        ["[Convos] Noisy", "[Convos] Quiet", "[Convos] Quiet"],
        "the quiet thread still emails"
    );
    let d = delivery(&api, &skipped, &bob).await;
    assert_eq!(d["detail"]["reason"], "muted");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn one_click_mutes_a_thread_deleted_in_the_app_so_its_next_reply_is_not_emailed(db: PgPool) {
    // Arrange: Bob got an email about a thread, then deleted the thread in the app.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let sent = api.send(&alice, &bob, "Deleted", "1").await;
    let thread = sent["thread_id"].as_str().unwrap();
    let mail = email_about(&smtp, "Deleted").await;
    let link = list_unsubscribe(&mail);
    let deleted = api.delete(&format!("/api/v1/threads/{thread}"), &bob).await;
    assert_eq!(deleted.status, 204);

    // Act: his mail client's one-click POST (a provider does not retry a refusal).
    let answer = one_click(&api, &link).await;

    // Assert: it succeeds, as RFC 8058 expects, and Alice's next reply, which brings the
    // thread back to Bob's mailbox, is not emailed to him.
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["status"], "muted");
    let reply = api.reply(&alice, thread, "2").await;
    assert!(muted(&api, thread, &bob).await, "muted in the app too");
    eventually(WAIT, "jobs to finish", || all_jobs_finished(&db)).await;
    assert_eq!(smtp.mails().len(), 1, "only the first email");
    let d = delivery(&api, &reply, &bob).await;
    assert_eq!(d["detail"]["reason"], "muted");

    // The page behind the footer offers the same on a deleted thread.
    let page_path = footer_link(&mail, "Mute this thread");
    api.delete(&format!("/api/v1/threads/{thread}"), &bob).await;
    sqlx::query("update thread_participants set muted = false")
        .execute(&db)
        .await
        .unwrap();
    let (status, page) = browse(&api, Method::GET, &page_path).await;
    assert_eq!(status, 200);
    assert!(page.contains("You deleted this thread"), "{page}");
    let (status, done) = browse(&api, Method::POST, &form_action(&page, "Mute this thread")).await;
    assert_eq!(status, 200, "{done}");
    let muted_now: bool = sqlx::query_scalar(
        "select muted from thread_participants where thread_id::text = $1 and user_id::text = $2",
    )
    .bind(thread)
    .bind(bob.id.as_str())
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(muted_now);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_thread_muted_from_the_email_can_be_unmuted_at_once(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let first = api.send(&alice, &bob, "Plans", "1").await;
    let thread = first["thread_id"].as_str().unwrap();
    let mail = email_about(&smtp, "Plans").await;
    let page_path = footer_link(&mail, "Mute this thread");

    let (status, page) = browse(&api, Method::GET, &page_path).await;
    assert_eq!(status, 200);
    assert!(page.contains("Email about \u{201C}Plans\u{201D}"), "{page}");
    let (status, done) = browse(&api, Method::POST, &form_action(&page, "Mute this thread")).await;
    assert_eq!(status, 200);
    assert!(done.contains("This thread is muted"), "{done}");
    assert!(muted(&api, thread, &bob).await);

    let (status, undone) = browse(&api, Method::POST, &form_action(&done, "Undo")).await;
    assert_eq!(status, 200);
    assert!(undone.contains("This thread is not muted"), "{undone}");
    assert!(!muted(&api, thread, &bob).await);
    api.reply(&alice, thread, "2").await;
    eventually(WAIT, "the next email", || async { smtp.mails().len() == 2 }).await;
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn pausing_email_for_a_day_skips_it_until_undone(db: PgPool) {
    // Arrange
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let first = api.send(&alice, &bob, "Weekly", "1").await;
    let thread = first["thread_id"].as_str().unwrap();
    let mail = email_about(&smtp, "Weekly").await;
    let page_path = footer_link(&mail, "Pause or stop email");
    let (_, page) = browse(&api, Method::GET, &page_path).await;

    // Act: pause for a day from the page.
    let (status, done) = browse(
        &api,
        Method::POST,
        &form_action(&page, "Pause all email for a day"),
    )
    .await;

    // Assert: paused; another thread's message is skipped with `paused`, not muted.
    assert_eq!(status, 200);
    assert!(done.contains("Email is paused"), "{done}");
    let until: chrono::DateTime<Utc> =
        sqlx::query_scalar("select email_paused_until from users where username = 'bob'")
            .fetch_one(&db)
            .await
            .unwrap();
    let ahead = until - Utc::now();
    assert!(
        ahead > TimeDelta::hours(23) && ahead <= TimeDelta::days(1),
        "{ahead}"
    );
    let me = api.get("/api/v1/me", &bob).await;
    assert!(
        me.body["settings"]["email_paused_until"].is_string(),
        "bob is shown the pause: {:?}",
        me.body
    );
    let carol = api.user("carol").await;
    let paused = api.send(&carol, &bob, "Elsewhere", "hi").await;
    eventually(WAIT, "jobs to finish", || all_jobs_finished(&db)).await;
    assert_eq!(smtp.mails().len(), 1, "no email while paused");
    let d = delivery(&api, &paused, &bob).await;
    assert_eq!(d["detail"]["reason"], "paused");
    assert_eq!(
        delivery(&api, &paused, &carol).await["status"],
        "not_sent",
        "the sender sees only that it was not sent"
    );
    assert!(!muted(&api, thread, &bob).await);

    // Undo: email flows again at once.
    let (status, undone) = browse(&api, Method::POST, &form_action(&done, "Undo")).await;
    assert_eq!(status, 200);
    assert!(undone.contains("Email is on"), "{undone}");
    api.reply(&alice, thread, "2").await;
    eventually(WAIT, "the email after the undo", || async {
        smtp.mails().len() == 2
    })
    .await;
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn turning_all_email_off_from_the_email_and_back_on(db: PgPool) {
    // Arrange
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let first = api.send(&alice, &bob, "Hello", "1").await;
    let thread = first["thread_id"].as_str().unwrap();
    let mail = email_about(&smtp, "Hello").await;
    let page_path = footer_link(&mail, "Pause or stop email");

    // Act: turn all email off (JSON, as a script would).
    let off = api
        .call(Method::POST, &format!("{page_path}/off"), None, None)
        .await;

    // Assert
    assert_eq!(off.status, 200);
    assert_eq!(off.body["status"], "email_off");
    let me = api.get("/api/v1/me", &bob).await.body;
    assert_eq!(me["settings"]["email_notifications"], false);
    let skipped = api.reply(&alice, thread, "2").await;
    eventually(WAIT, "jobs to finish", || all_jobs_finished(&db)).await;
    assert_eq!(smtp.mails().len(), 1);
    assert_eq!(
        delivery(&api, &skipped, &bob).await["detail"]["reason"],
        "email_off"
    );

    // Undo, from the page the browser gets: email is on again at once.
    let (_, page) = browse(&api, Method::GET, &page_path).await;
    assert!(page.contains("Convos does not email you"), "{page}");
    let (status, on) = browse(
        &api,
        Method::POST,
        &form_action(&page, "Turn email back on"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(on.contains("Email is on"), "{on}");
    let me = api.get("/api/v1/me", &bob).await.body;
    assert_eq!(me["settings"]["email_notifications"], true);
    api.reply(&alice, thread, "3").await;
    eventually(WAIT, "the email after turning it on", || async {
        smtp.mails().len() == 2
    })
    .await;

    // Like an unsubscribe link, an email sent before email was turned back on no longer turns
    // it off; a later email's link does. (Links carry whole seconds and one issued in the same
    // second as the change counts as older, so the change is dated a few seconds back.)
    let again = api
        .call(Method::POST, &format!("{page_path}/off"), None, None)
        .await;
    assert_eq!(again.status, 404);
    sqlx::query(
        "update users set email_resubscribed_at = email_resubscribed_at - interval '5 seconds' \
         where username = 'bob'",
    )
    .execute(&db)
    .await
    .unwrap();
    let newest = footer_link(&smtp.mails()[1], "Pause or stop email");
    let off = api
        .call(Method::POST, &format!("{newest}/off"), None, None)
        .await;
    assert_eq!(off.status, 200);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn mark_as_read_from_the_email(db: PgPool) {
    // Arrange
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let sent = api.send(&alice, &bob, "Read me", "1").await;
    let thread = sent["thread_id"].as_str().unwrap();
    let mail = email_about(&smtp, "Read me").await;
    assert!(
        !mail.part("text/html").contains("<img"),
        "no tracking pixel"
    );
    let read_path = footer_link(&mail, "Mark as read");
    assert_eq!(api.unread_total(&bob).await, 1);

    // The page only shows a button.
    let (status, page) = browse(&api, Method::GET, &read_path).await;
    assert_eq!(status, 200);
    assert_eq!(
        api.unread_total(&bob).await,
        1,
        "opening the page reads nothing"
    );

    // Act
    let (status, done) = browse(&api, Method::POST, &form_action(&page, "Mark as read")).await;

    // Assert: read everywhere, as the API shows it.
    assert_eq!(status, 200);
    assert!(done.contains("Marked as read"), "{done}");
    assert_eq!(api.unread_total(&bob).await, 0);
    let messages = api
        .get(&format!("/api/v1/threads/{thread}/messages"), &bob)
        .await;
    assert_eq!(messages.body["items"][0]["is_read"], true);
    assert_eq!(
        api.get(&format!("/api/v1/threads/{thread}"), &bob)
            .await
            .body["unread_count"],
        0
    );

    // A message's link changes nothing else, and a thread's link reads nothing.
    let off = api
        .call(Method::POST, &format!("{read_path}/off"), None, None)
        .await;
    assert_eq!(off.status, 404);
    let stop = footer_link(&mail, "Mute this thread");
    let read = api
        .call(Method::POST, &format!("{stop}/read"), None, None)
        .await;
    assert_eq!(read.status, 404);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn forged_expired_and_foreign_links_are_not_found(db: PgPool) {
    // Arrange: Bob's genuine link, and links he should not have.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let carol = api.user("carol").await;
    let theirs = api.send(&alice, &carol, "Not Bob's", "1").await;
    api.send(&alice, &bob, "Bob's", "1").await;
    let mail = email_about(&smtp, "Bob's").await;
    let genuine = list_unsubscribe(&mail);
    let token = genuine.rsplit('/').next().unwrap().to_owned();
    let bob_id: UserId = bob.id.parse().unwrap();
    let their_thread: ThreadId = theirs["thread_id"].as_str().unwrap().parse().unwrap();

    let mut flipped = token.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let expired = email_links::token(
        &secret(),
        bob_id,
        Target::Thread(their_thread),
        Utc::now() - TimeDelta::days(email_links::MAX_AGE_DAYS + 1),
    );
    let foreign = email_links::token(&secret(), bob_id, Target::Thread(their_thread), Utc::now());
    let other_secret = email_links::token(
        "not-the-secret",
        bob_id,
        Target::Thread(their_thread),
        Utc::now(),
    );
    let unsubscribe = convos_core::unsubscribe::token(&secret(), bob_id, Utc::now());
    let cases = [
        ("garbage", "not-a-token".to_owned()),
        ("one character changed", String::from_utf8(flipped).unwrap()),
        ("expired", expired),
        ("signed by another secret", other_secret),
        ("an unsubscribe token", unsubscribe),
        ("a thread that is not Bob's", foreign),
    ];

    // Act and assert: every way in is a 404 with the API's error body, and nothing changed.
    for (what, token) in &cases {
        let base = format!("/api/v1/email-links/{token}");
        let mut attempts = vec![
            (Method::POST, base.clone()),
            (Method::POST, format!("{base}/mute")),
        ];
        if *what != "a thread that is not Bob's" {
            // A genuine link about a thread gone for its user still pauses or stops email.
            attempts.extend([
                (Method::GET, base.clone()),
                (Method::POST, format!("{base}/off")),
                (Method::POST, format!("{base}/pause-week")),
            ]);
        }
        for (method, path) in attempts {
            let res = api.call(method.clone(), &path, None, None).await;
            assert_eq!(res.status, 404, "{what}: {method} {path}");
            assert_eq!(res.code(), "not_found", "{what}");
        }
    }
    let (status, page) = browse(
        &api,
        Method::GET,
        &format!("/api/v1/email-links/{}", cases[5].1),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!page.contains("Mute this thread"), "{page}");
    let unknown_action = api
        .call(Method::POST, &format!("{genuine}/explode"), None, None)
        .await;
    assert_eq!(unknown_action.status, 404);
    let me = api.get("/api/v1/me", &bob).await.body;
    assert_eq!(me["settings"]["email_notifications"], true);
    let paused: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("select email_paused_until from users where username = 'bob'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(paused, None);
    let their = api
        .get(&format!("/api/v1/threads/{their_thread}"), &carol)
        .await;
    assert_eq!(their.body["muted"], false);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn revoking_a_leaked_emails_links_leaves_only_stopping_email(db: PgPool) {
    // Arrange: Bob forwarded an email about a thread; whoever holds it holds its links.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let leaked = api.send(&alice, &bob, "Leaked", "1").await;
    let thread = leaked["thread_id"].as_str().unwrap();
    let mail = email_about(&smtp, "Leaked").await;
    let page = footer_link(&mail, "Mute this thread");
    let read = footer_link(&mail, "Mark as read");
    let (status, _) = browse(&api, Method::GET, &page).await;
    assert_eq!(status, 200, "the links work before");

    // Act: Bob revokes what his past emails can do.
    let revoked = api.delete("/api/v1/me/reply-addresses", &bob).await;
    assert_eq!(revoked.status, 204, "{revoked:?}");

    // Assert: every button but those stopping email is gone, and nothing changed.
    for (method, path) in [
        (Method::POST, format!("{page}/unmute")),
        (Method::POST, format!("{page}/pause-week")),
        (Method::POST, format!("{page}/on")),
        (Method::GET, read.clone()),
        (Method::POST, format!("{read}/read")),
        (Method::POST, read.clone()),
    ] {
        let res = api.call(method.clone(), &path, None, None).await;
        assert_eq!(res.status, 404, "{method} {path}");
        assert_eq!(res.code(), "not_found", "{method} {path}");
    }
    assert_eq!(api.unread_total(&bob).await, 1);
    let me = api.get("/api/v1/me", &bob).await.body;
    assert_eq!(me["settings"]["email_notifications"], true);
    assert_eq!(me["settings"]["email_paused_until"], Value::Null);

    // Stopping the email still works, from the page and from the mail client's one-click,
    // without an undo.
    let (status, stop_page) = browse(&api, Method::GET, &page).await;
    assert_eq!(status, 200);
    assert!(stop_page.contains("revoked"), "{stop_page}");
    assert!(!stop_page.contains("Pause"), "{stop_page}");
    let (status, done) = browse(
        &api,
        Method::POST,
        &form_action(&stop_page, "Mute this thread"),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(
        !done.contains("Undo") && !done.contains("More choices"),
        "{done}"
    );
    assert!(muted(&api, thread, &bob).await);
    let answer = one_click(&api, &list_unsubscribe(&mail)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["status"], "muted");
    let (status, off) = browse(
        &api,
        Method::POST,
        &form_action(&stop_page, "Turn all email off"),
    )
    .await;
    assert_eq!(status, 200, "{off}");
    let me = api.get("/api/v1/me", &bob).await.body;
    assert_eq!(me["settings"]["email_notifications"], false);
    let on = api
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(&bob.token),
            Some(serde_json::json!({"settings": {"email_notifications": true}})),
        )
        .await;
    assert_eq!(on.status, 200, "{on:?}");

    // The next email's links work: links are revoked by when they were signed, to the second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    api.send(&alice, &bob, "Fresh", "1").await;
    let fresh = email_about(&smtp, "Fresh").await;
    let (status, page) = browse(&api, Method::GET, &footer_link(&fresh, "Mark as read")).await;
    assert_eq!(status, 200, "{page}");
    let (status, done) = browse(&api, Method::POST, &form_action(&page, "Mark as read")).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        api.unread_total(&bob).await,
        1,
        "only the leaked one is unread"
    );
    worker.stop().await;
}
