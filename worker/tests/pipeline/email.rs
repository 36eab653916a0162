//! Notification emails over real SMTP.

use crate::stack::{notifications_finished, start_api};
use convos_testkit::{
    InProcessWorker, SmtpSink, StackConfig, TestServer, TestUser, all_jobs_finished, database_url,
    eventually,
};
use sqlx::PgPool;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_email_arrives_with_threading_and_one_click_unsubscribe_headers(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let first = api
        .send(
            &alice,
            &bob,
            "Lunch on Friday?",
            "Are you free at noon? <b>ramen</b>",
        )
        .await;
    eventually(WAIT, "the first email", || async {
        smtp.mails().len() == 1
    })
    .await;
    let mail = &smtp.mails()[0];
    assert_eq!(mail.to, ["bob@example.com"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[Convos] Lunch on Friday?")
    );
    let from = mail.header("From").unwrap();
    assert!(
        from.contains("alice via Convos") && from.contains("notify@convos.test"),
        "{from}"
    );
    let first_id = format!("<{}@convos.test>", first["id"].as_str().unwrap());
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some(first_id.as_str())
    );
    assert_eq!(
        mail.header("In-Reply-To"),
        None,
        "the first message answers nothing"
    );
    let unsubscribe = mail.header("List-Unsubscribe").unwrap();
    assert!(
        unsubscribe.starts_with("<https://convos.test/api/v1/email-links/"),
        "{unsubscribe}"
    );
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(mail.raw.contains("multipart/alternative"));
    assert!(mail.raw.contains("text/plain") && mail.raw.contains("text/html"));
    let (text, html) = (mail.part("text/plain"), mail.part("text/html"));
    assert!(
        text.contains("Are you free at noon? <b>ramen</b>"),
        "the excerpt: {text}"
    );
    assert!(
        html.contains("&lt;b&gt;ramen&lt;/b&gt;"),
        "HTML is escaped in the HTML part: {html}"
    );
    for part in [&text, &html] {
        assert!(
            part.contains("You got this email because"),
            "the footer says why"
        );
        for link in ["Mute this thread", "Pause or stop email", "Mark as read"] {
            assert!(part.contains(link), "and how to stop: {link}");
        }
        assert!(
            part.contains("https://convos.test/api/v1/email-links/"),
            "with signed links"
        );
    }

    let reply = api
        .reply(&alice, first["thread_id"].as_str().unwrap(), "Or Saturday?")
        .await;
    eventually(WAIT, "the reply's email", || async {
        smtp.mails().len() == 2
    })
    .await;
    let second = &smtp.mails()[1];
    let reply_id = format!("<{}@convos.test>", reply["id"].as_str().unwrap());
    assert_eq!(
        second.header("Message-ID").as_deref(),
        Some(reply_id.as_str())
    );
    assert_eq!(
        second.header("In-Reply-To").as_deref(),
        Some(first_id.as_str())
    );
    assert!(second.header("References").unwrap().contains(&first_id));
    assert_eq!(
        second.header("Subject").as_deref(),
        Some("[Convos] Lunch on Friday?")
    );

    let deliveries = format!(
        "/api/v1/messages/{}/deliveries",
        first["id"].as_str().unwrap()
    );
    let seen_by_alice = api.get(&deliveries, &alice).await;
    assert_eq!(seen_by_alice.status, 200);
    assert_eq!(seen_by_alice.body["items"][0]["status"], "sent");
    assert_eq!(
        seen_by_alice.body["items"][0]["recipient"]["username"],
        "bob"
    );
    assert!(seen_by_alice.body["items"][0].get("detail").is_none());
    let seen_by_bob = api.get(&deliveries, &bob).await;
    assert_eq!(
        seen_by_bob.status, 200,
        "the recipient sees the full record"
    );
    assert_eq!(seen_by_bob.body["items"][0]["detail"]["state"], "sent");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn reading_within_the_window_means_no_email_and_a_recorded_reason(db: PgPool) {
    let mut config = StackConfig::new();
    config.notify_delay_secs = 2;
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let sent = api.send(&alice, &bob, "Quick one", "seen it?").await;
    let id = sent["id"].as_str().unwrap();
    api.act(&format!("/api/v1/messages/{id}/read"), &bob).await;
    let deliveries = format!("/api/v1/messages/{id}/deliveries");
    let queued = api.get(&deliveries, &alice).await.body;
    assert_eq!(
        queued["items"][0]["status"], "pending",
        "waiting for its window"
    );
    eventually(WAIT, "the notify job", || all_jobs_finished(&db)).await;
    let decided = api.get(&deliveries, &alice).await.body;
    assert_eq!(decided["items"][0]["status"], "not_sent");
    assert!(
        !decided.to_string().contains("already_read"),
        "no read receipt for the sender: {decided}"
    );
    let seen_by_bob = api.get(&deliveries, &bob).await.body;
    assert_eq!(seen_by_bob["items"][0]["detail"]["state"], "skipped");
    assert_eq!(seen_by_bob["items"][0]["detail"]["reason"], "already_read");
    assert!(smtp.mails().is_empty());
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn several_messages_in_one_window_make_one_email(db: PgPool) {
    let mut config = StackConfig::new();
    config.notify_delay_secs = 2;
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let first = api.send(&alice, &bob, "Burst", "one").await;
    let thread = first["thread_id"].as_str().unwrap();
    api.reply(&alice, thread, "two").await;
    let last = api.reply(&alice, thread, "three").await;
    eventually(WAIT, "jobs to finish", || all_jobs_finished(&db)).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "one email for the burst");
    let text = mails[0].part("text/plain");
    for body in ["one", "two", "three"] {
        assert!(
            text.contains(&format!("\n\n> {body}\n")),
            "{body} is in the email: {text}"
        );
    }
    let newest = format!("<{}@convos.test>", last["id"].as_str().unwrap());
    assert_eq!(
        mails[0].header("Message-ID").as_deref(),
        Some(newest.as_str())
    );
    let sent: i64 = sqlx::query_scalar("select count(*) from deliveries where status = 'sent'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(sent, 3, "each message's delivery is recorded as sent");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_long_threads_email_references_its_first_message_and_the_nine_latest(db: PgPool) {
    // Arrange: a thread of fifteen messages written while no worker runs, so one email
    // carries them all and references what came before the newest.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let first = api.send(&alice, &bob, "Long one", "message 0").await;
    let thread = first["thread_id"].as_str().unwrap().to_owned();
    let mut ids = vec![first["id"].as_str().unwrap().to_owned()];
    for n in 1..15 {
        let reply = api.reply(&alice, &thread, &format!("message {n}")).await;
        ids.push(reply["id"].as_str().unwrap().to_owned());
    }

    // Act
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    eventually(WAIT, "jobs to finish", || all_jobs_finished(&db)).await;
    worker.stop().await;

    // Assert: one email; its References name the first message, then the nine before the
    // newest, in order, and nothing else.
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "one email for the thread");
    let references = mails[0].header("References").unwrap();
    let expected: Vec<String> = std::iter::once(&ids[0])
        .chain(&ids[5..14])
        .map(|id| format!("<{id}@convos.test>"))
        .collect();
    let got: Vec<&str> = references.split_whitespace().collect();
    assert_eq!(got, expected, "References: {references}");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn unsubscribe_links_of_emails_already_sent_still_turn_email_off(db: PgPool) {
    // Notifications now carry the thread-muting links of decision 27; the user-wide
    // unsubscribe link of the emails sent before keeps working until it expires.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    api.send(&alice, &bob, "Hello", "hi").await;
    eventually(WAIT, "the email", || async { smtp.mails().len() == 1 }).await;
    let secret = convos_worker::config::WorkerSettings::default().secret_key;
    let token = convos_core::unsubscribe::token(
        secrecy::ExposeSecret::expose_secret(&secret),
        bob.id.parse().unwrap(),
        chrono::Utc::now(),
    );
    let path = format!("/api/v1/unsubscribe/{token}");

    let forged_user = format!("{}.{}", alice.id, token.split_once('.').unwrap().1);
    for forged in [
        forged_user.as_str(),
        "not-a-token",
        &format!("{}.00ff", bob.id),
    ] {
        let res = api
            .http
            .post(format!("{}/api/v1/unsubscribe/{forged}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{forged}");
    }
    let page = api
        .http
        .get(format!("{}{path}", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<form method=\"post\""));
    let me = api.get("/api/v1/me", &bob).await.body;
    assert_eq!(
        me["settings"]["email_notifications"], true,
        "opening the page changes nothing"
    );

    let res = api
        .http
        .post(format!("{}{path}", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me = api.get("/api/v1/me", &bob).await.body;
    assert_eq!(me["settings"]["email_notifications"], false);
    let alice_me = api.get("/api/v1/me", &alice).await.body;
    assert_eq!(
        alice_me["settings"]["email_notifications"], true,
        "forgeries changed nothing"
    );

    let later = api.send(&alice, &bob, "Again", "still there?").await;
    eventually(WAIT, "jobs to finish", || all_jobs_finished(&db)).await;
    assert_eq!(smtp.mails().len(), 1, "no more email");
    let d = api
        .get(
            &format!(
                "/api/v1/messages/{}/deliveries",
                later["id"].as_str().unwrap()
            ),
            &bob,
        )
        .await
        .body;
    assert_eq!(d["items"][0]["status"], "not_sent");
    assert_eq!(d["items"][0]["detail"]["reason"], "email_off");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_muted_thread_sends_no_email(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let first = api.send(&alice, &bob, "Noisy", "1").await;
    eventually(WAIT, "the first email", || async {
        smtp.mails().len() == 1
    })
    .await;
    let thread = first["thread_id"].as_str().unwrap();
    api.act(&format!("/api/v1/threads/{thread}/mute"), &bob)
        .await;
    let muted = api.reply(&alice, thread, "2").await;
    eventually(WAIT, "jobs to finish", || all_jobs_finished(&db)).await;
    assert_eq!(smtp.mails().len(), 1);
    let d = api
        .get(
            &format!(
                "/api/v1/messages/{}/deliveries",
                muted["id"].as_str().unwrap()
            ),
            &bob,
        )
        .await
        .body;
    assert_eq!(d["items"][0]["status"], "not_sent");
    assert_eq!(d["items"][0]["detail"]["state"], "skipped");
    assert_eq!(d["items"][0]["detail"]["reason"], "muted");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn what_an_unverified_sender_writes_is_not_emailed_until_they_verify(db: PgPool) {
    // An account needs no proven address: a probe's five sign-ups an hour could each send 30
    // messages a minute, whose text Convos emailed to any verified user in the directory.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let stranger = api.unverified_user("stranger").await;
    let bob = api.user("bob").await;

    let spam = api
        .send(&stranger, &bob, "Cheap pills", "http://spam.example")
        .await;
    eventually(WAIT, "the email job", || notifications_finished(&db)).await;

    assert!(smtp.mails().is_empty(), "nothing went out");
    let seen_by_bob = api
        .get(
            &format!(
                "/api/v1/messages/{}/deliveries",
                spam["id"].as_str().unwrap()
            ),
            &bob,
        )
        .await
        .body;
    assert_eq!(seen_by_bob["items"][0]["detail"]["state"], "skipped");
    assert_eq!(
        seen_by_bob["items"][0]["detail"]["reason"],
        "sender_unverified"
    );
    // Once they prove their address, what they write is emailed as anyone's.
    api.verify_email(&stranger).await;
    api.reply(
        &stranger,
        spam["thread_id"].as_str().unwrap(),
        "It's me, really",
    )
    .await;
    eventually(WAIT, "the email", || async { smtp.mails().len() == 1 }).await;
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_retrying_and_a_new_email_job_for_one_thread_send_one_email(db: PgPool) {
    let mut config = StackConfig::new();
    config.notify_delay_secs = 2;
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let first = api.send(&alice, &bob, "Twice?", "one").await;
    // As if the first job's send had failed: it waits to retry, so it no longer coalesces.
    sqlx::query("update jobs set state = 'retry', attempts = 1 where kind = 'notify_email'")
        .execute(&db)
        .await
        .unwrap();
    api.reply(&alice, first["thread_id"].as_str().unwrap(), "two")
        .await;
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs where kind = 'notify_email'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(jobs, 2, "two email jobs for one thread and recipient");
    sqlx::query("update jobs set next_run_at = now() where kind = 'notify_email'")
        .execute(&db)
        .await
        .unwrap();
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    eventually(WAIT, "both jobs", || all_jobs_finished(&db)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smtp.mails().len(),
        1,
        "the deliveries were claimed by one job only"
    );
    let sent: i64 = sqlx::query_scalar("select count(*) from deliveries where status = 'sent'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(sent, 2);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_subject_or_name_typed_as_an_encoded_word_arrives_as_typed(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    // "PayPal Security" as an encoded-word, and a name that a right-to-left override would
    // show as "Support paypal.com": the API refuses such names now, so it is one stored before.
    let typed = "=?utf-8?b?UGF5UGFsIFNlY3VyaXR5?=";
    sqlx::query("update users set display_name = $1 where username = 'alice'")
        .bind("Support \u{202E}moc.lapyap\u{200B}")
        .execute(&db)
        .await
        .unwrap();
    api.send(&alice, &bob, typed, "hi").await;
    eventually(WAIT, "the email", || async { smtp.mails().len() == 1 }).await;
    let mail = &smtp.mails()[0];
    let head = mail.raw.split("\r\n\r\n").next().unwrap();
    assert!(
        !head.contains(typed),
        "the typed word never reaches a header raw"
    );
    assert_eq!(
        mail.shown_header("Subject").unwrap(),
        format!("[Convos] {typed}")
    );
    assert_eq!(
        mail.shown_header("From").unwrap(),
        "alice (Support moc.lapyap) via Convos <notify@convos.test>"
    );
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_message_from_someone_blocked_before_its_email_is_not_emailed(db: PgPool) {
    // Blocking stopped new messages, but the emails of those already waiting out their delay
    // still went (a review).
    let config = StackConfig {
        notify_delay_secs: 2,
        ..StackConfig::new()
    };
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let (mallory, bob) = (api.user("mallory").await, api.user("bob").await);
    let sent = api.send(&mallory, &bob, "hey", "answer me").await;

    let blocked = api
        .call(
            reqwest::Method::PUT,
            "/api/v1/me/blocks/mallory",
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(blocked.status, 200, "{blocked:?}");
    eventually(WAIT, "the email job to finish", || all_jobs_finished(&db)).await;

    assert_eq!(smtp.mails().len(), 0, "nothing emailed");
    assert_eq!(
        delivery_detail(&api, &sent, &bob).await["reason"],
        "blocked"
    );
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_message_from_someone_suspended_before_its_email_is_not_emailed(db: PgPool) {
    // Suspending a spammer stopped their new messages, but the emails of those already
    // waiting out their delay still went (a review).
    let config = StackConfig {
        notify_delay_secs: 2,
        ..StackConfig::new()
    };
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let (spammer, bob) = (api.user("spammer").await, api.user("bob").await);
    let operator = api.admin("opal").await;
    let sent = api.send(&spammer, &bob, "hey", "cheap watches").await;

    let suspended = api
        .act("/api/v1/admin/users/spammer/suspend", &operator)
        .await;
    assert_eq!(suspended.status, 200, "{suspended:?}");
    eventually(WAIT, "the email job to finish", || all_jobs_finished(&db)).await;

    assert_eq!(smtp.mails().len(), 0, "nothing emailed");
    assert_eq!(
        delivery_detail(&api, &sent, &bob).await["reason"],
        "sender_suspended"
    );
    worker.stop().await;
}

/// A platform whose recipients get `daily` emails a day, `per_sender` of them about one
/// sender's messages.
async fn with_daily_caps(
    db: &PgPool,
    daily: i64,
    per_sender: i64,
) -> (SmtpSink, TestServer, InProcessWorker) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let mut settings = config.worker_settings(&database_url(db).await);
    settings.email_daily_cap = daily;
    settings.email_daily_cap_per_sender = per_sender;
    (smtp, api, InProcessWorker::start(settings))
}

/// Sends three new threads from `from` to `to`, one at a time, each email job finished before
/// the next: the first two are emailed, as the tests' caps allow, and the third is not.
async fn three_threads_two_emailed(
    db: &PgPool,
    api: &TestServer,
    smtp: &SmtpSink,
    (from, to): (&TestUser, &TestUser),
) -> Vec<serde_json::Value> {
    let mut sent = Vec::new();
    for (i, subject) in ["One", "Two", "Three"].into_iter().enumerate() {
        sent.push(api.send(from, to, subject, "hello").await);
        eventually(WAIT, "the email job to finish", || all_jobs_finished(db)).await;
        assert_eq!(smtp.mails().len(), (i + 1).min(2), "after {subject}");
    }
    sent
}

/// The email decision on message `sent`, as its recipient `reader` sees it.
async fn delivery_detail(
    api: &TestServer,
    sent: &serde_json::Value,
    reader: &TestUser,
) -> serde_json::Value {
    let id = sent["id"].as_str().unwrap();
    let d = api
        .get(&format!("/api/v1/messages/{id}/deliveries"), reader)
        .await
        .body;
    d["items"][0]["detail"].clone()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn past_the_daily_cap_a_message_is_skipped_with_its_reason(db: PgPool) {
    let (smtp, api, worker) = with_daily_caps(&db, 2, 2).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let sent = three_threads_two_emailed(&db, &api, &smtp, (&alice, &bob)).await;

    let third = delivery_detail(&api, &sent[2], &bob).await;
    assert_eq!(third["state"], "skipped");
    assert_eq!(third["reason"], "daily_cap");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn one_sender_cannot_use_up_a_recipients_daily_emails(db: PgPool) {
    // The day's cap was one budget for all senders: a harasser starting 20 threads in a
    // minute got all 20 of the victim's emails, and a friend's message that day was skipped
    // (a trust and safety probe). One sender now has a share of it.
    let (smtp, api, worker) = with_daily_caps(&db, 4, 2).await;
    let (mallory, bob) = (api.user("mallory").await, api.user("bob").await);
    let carol = api.user("carol").await;

    let sent = three_threads_two_emailed(&db, &api, &smtp, (&mallory, &bob)).await;
    api.send(&carol, &bob, "Dinner tonight?", "At eight?").await;
    eventually(WAIT, "the email job to finish", || all_jobs_finished(&db)).await;

    assert_eq!(smtp.mails().len(), 3, "the friend's message is emailed");
    let third = delivery_detail(&api, &sent[2], &bob).await;
    assert_eq!(third["state"], "skipped");
    assert_eq!(third["reason"], "sender_daily_cap");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn email_jobs_running_at_once_keep_to_the_daily_caps(db: PgPool) {
    // Each job counted the emails already sent, and an email is counted once sent: jobs
    // running side by side each saw none. A probe's 28 threads sent in one burst got all 28 of
    // the recipient's emails past caps of 8 a sender and 20 a day; jobs bunched by a Redis
    // outage or a backlog overshot too.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::from_millis(300));
    let api = start_api(db.clone(), &config).await;
    let mut settings = config.worker_settings(&database_url(&db).await);
    settings.email_daily_cap = 4;
    settings.email_daily_cap_per_sender = 2;
    let worker = InProcessWorker::start(settings);
    let (mallory, carol) = (api.user("mallory").await, api.user("carol").await);
    let bob = api.user("bob").await;
    // The queue waits while the threads are started, then lets them all go at once.
    sqlx::query("insert into queue_controls (kind, paused) values ('notify_email', true)")
        .execute(&db)
        .await
        .unwrap();
    for n in 0..10 {
        api.send(&mallory, &bob, &format!("m{n}"), "hello").await;
        api.send(&carol, &bob, &format!("c{n}"), "hello").await;
    }
    sqlx::query("delete from queue_controls where kind = 'notify_email'")
        .execute(&db)
        .await
        .unwrap();
    eventually(WAIT, "every email job to finish", || {
        notifications_finished(&db)
    })
    .await;

    let mut subjects: Vec<char> = smtp
        .mails()
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .filter_map(|s| s.rsplit(' ').next().and_then(|w| w.chars().next()))
        .collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ['c', 'c', 'm', 'm'], "{:?}", smtp.mails().len());
    let skipped: Vec<(String, i64)> = sqlx::query_as(
        "select reason, count(*) from deliveries where status = 'skipped' group by 1 order by 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(
        skipped.iter().map(|(_, n)| n).sum::<i64>(),
        16,
        "{skipped:?}"
    );
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_body_cannot_reach_the_readers_terminal_or_pose_as_the_emails_own_text(db: PgPool) {
    // A body went into the email as typed: escape sequences (a window title, a clipboard
    // write), bidirectional overrides and hidden characters, and a fake footer with a link,
    // which the plain-text part showed just like the real one.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let body = "Hi \u{1b}]0;PWNED\u{7}\u{1b}]52;c;ZWNobw==\u{7} file \u{202e}exe.gpj\u{202c} \
                pay\u{200b}pal\u{e0100}\u{e0101}\r\nnext\n-- \nYou got this email because \
                Convos Security requires you to verify: http://evil.test/verify";

    api.send(&alice, &bob, "Report", body).await;
    eventually(WAIT, "the email", || async { smtp.mails().len() == 1 }).await;

    let mail = &smtp.mails()[0];
    for mime in ["text/plain", "text/html"] {
        let part = mail.part(mime);
        assert!(
            !part
                .chars()
                .any(|c| (c.is_control() && c != '\n' && c != '\r')
                    || convos_core::text::is_invisible(c)),
            "{mime}: {part:?}"
        );
        assert!(part.contains("␛]0;PWNED␇"), "shown, not obeyed: {part:?}");
        assert!(part.contains("paypal"), "{part:?}");
    }
    let text = mail.part("text/plain");
    let quoted: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("wrote at"))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(quoted.len(), 4, "{text}");
    assert!(quoted.iter().all(|l| l.starts_with("> ")), "{quoted:?}");
    assert_eq!(
        text.lines().filter(|l| *l == "-- ").count(),
        1,
        "one signature line, the email's own: {text}"
    );
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_email_names_the_sender_by_username_as_well_as_by_display_name(db: PgPool) {
    // Anyone may take the display name "Alice Liddell", even "Alice Liddell (alice)"; only
    // alice is alice, and the username comes first.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let mallory = api.user("mallory").await;
    let bob = api.user("bob").await;
    let renamed = api
        .call(
            reqwest::Method::PATCH,
            "/api/v1/me",
            Some(&mallory.token),
            Some(serde_json::json!({"display_name": "Alice Liddell"})),
        )
        .await;
    assert_eq!(renamed.status, reqwest::StatusCode::OK, "{renamed:?}");

    api.send(&mallory, &bob, "Q3 numbers", "Send them please")
        .await;
    eventually(WAIT, "the email", || async { smtp.mails().len() == 1 }).await;

    let mail = &smtp.mails()[0];
    let from = mail.shown_header("From").unwrap();
    assert_eq!(
        from,
        "mallory (Alice Liddell) via Convos <notify@convos.test>"
    );
    let text = mail.part("text/plain");
    assert!(
        text.starts_with("mallory (Alice Liddell) sent you a message"),
        "{text}"
    );
    worker.stop().await;
}
