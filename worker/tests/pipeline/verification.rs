//! The verification email over real SMTP: sign-up sends one, its link verifies the address, and
//! the worker skips the emails that became pointless.

use crate::stack::{send_verification_emails, start_api};
use convos_testkit::{
    Client, InProcessWorker, SmtpSink, StackConfig, all_jobs_finished, database_url, eventually,
};
use reqwest::Method;
use sqlx::PgPool;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// The token of the link in a verification email's text part.
fn link_token(text: &str) -> String {
    let (_, rest) = text
        .split_once("https://convos.test/verify/")
        .unwrap_or_else(|| panic!("no link in {text}"));
    rest.split_whitespace().next().unwrap().to_owned()
}

async fn email_verified(api: &Client, token: &str) -> bool {
    let me = api.call(Method::GET, "/api/v1/me", Some(token), None).await;
    me.body["email_verified"].as_bool().expect("email_verified")
}

async fn verify_outcomes(db: &PgPool) -> Vec<(String, Option<String>)> {
    sqlx::query_as("select state, outcome from jobs where kind = 'verify_email' order by id")
        .fetch_all(db)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn sign_up_emails_a_link_whose_page_asks_and_whose_post_verifies(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    send_verification_emails(&db).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));

    let bob = api.unverified_user("bob").await;
    eventually(WAIT, "the verification email", || async {
        smtp.mails().len() == 1
    })
    .await;
    let mail = &smtp.mails()[0];
    assert_eq!(mail.to, ["bob@example.com"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Confirm your email for Convos")
    );
    assert_eq!(
        mail.header("From").as_deref(),
        Some("Convos <notify@convos.test>")
    );
    assert_eq!(
        mail.header("To").as_deref(),
        Some("bob@example.com"),
        "no name the claimant chose"
    );
    let text = mail.part("text/plain");
    assert!(text.contains("within 48 hours"), "{text}");
    let token = link_token(&text);
    assert!(
        mail.part("text/html")
            .contains(&format!("https://convos.test/verify/{token}")),
        "the HTML part has the same link"
    );
    // The outcome is recorded once the SMTP server has accepted the email.
    eventually(WAIT, "the verification job to finish", || {
        all_jobs_finished(&db)
    })
    .await;
    assert_eq!(
        verify_outcomes(&db).await,
        [(
            "done".to_owned(),
            Some("sent: verification link".to_owned())
        )]
    );

    let open = |method: Method| {
        api.http
            .request(method, format!("{}/verify/{token}", api.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=bob")
            .send()
    };
    let page = open(Method::GET).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Confirm my email"));
    assert!(!email_verified(&api, &bob.token).await, "the GET only asks");
    let confirmed = open(Method::POST).await.unwrap();
    assert_eq!(confirmed.status(), 200);
    assert!(email_verified(&api, &bob.token).await);

    let resend = api.act("/api/v1/me/verification", &bob).await;
    assert_eq!(resend.status, 422, "nothing more to send once verified");
    assert_eq!(smtp.mails().len(), 1);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_claim_lapses_when_another_account_verifies_the_address_first(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    // The queue is paused while the claims are made, so the order is the test's.
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let claimed = api
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(
                serde_json::json!({"username": "mallory", "email": "alice@example.com",
                                    "password": "long enough"}),
            ),
        )
        .await;
    assert_eq!(claimed.status, 201);
    let alice = api.user("alice").await;
    assert!(email_verified(&api, &alice.token).await);

    send_verification_emails(&db).await;
    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;
    assert_eq!(
        verify_outcomes(&db).await,
        [
            (
                "skipped".to_owned(),
                Some("skipped: verified by another account".to_owned())
            ),
            (
                "skipped".to_owned(),
                Some("skipped: already verified".to_owned())
            ),
        ],
        "mallory's email would reach alice for nothing; alice's own is moot"
    );
    assert!(smtp.mails().is_empty());
    worker.stop().await;
}

/// `count` accounts named `{prefix}{n}` claiming `email`, one after the other (as many client
/// addresses could).
async fn claim(api: &Client, prefix: &str, count: usize, email: &str) {
    for n in 0..count {
        let claimed = api
            .call(
                Method::POST,
                "/api/v1/users",
                None,
                Some(
                    serde_json::json!({"username": format!("{prefix}{n}"), "email": email,
                                        "password": "long enough"}),
                ),
            )
            .await;
        assert_eq!(claimed.status, 201, "{claimed:?}");
    }
}

/// Verification jobs skipped for the address's caps.
async fn capped(db: &PgPool) -> usize {
    verify_outcomes(db)
        .await
        .iter()
        .filter(|(_, outcome)| outcome.as_deref() == Some("skipped: address_cap"))
        .count()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn many_claims_on_one_address_sent_at_once_still_get_five_emails_an_hour(db: PgPool) {
    // A slow SMTP server keeps every job in flight at once: counting only the emails already
    // sent, each job saw room and all twelve went out.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::from_millis(300));
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    // The queue is paused while the claims are made, then let go all together; the address
    // is spelled in different cases, which are one mailbox.
    claim(&api, "claim", 6, "victim@example.com").await;
    claim(&api, "upper", 6, "Victim@EXAMPLE.com").await;
    send_verification_emails(&db).await;
    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;

    assert_eq!(smtp.mails().len(), 5, "at most five an hour");
    assert_eq!(capped(&db).await, 7);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn tagged_spellings_of_one_mailbox_share_its_five_emails_an_hour(db: PgPool) {
    // Each `+tag` had caps of its own, though all reach one mailbox: a probe put 20
    // verification emails in one inbox within a minute from one client address, and more every
    // hour as it made accounts.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    claim(&api, "plain", 2, "victim@example.com").await;
    claim(&api, "tagone", 2, "victim+one@example.com").await;
    claim(&api, "tagtwo", 2, "Victim+Two@Example.com").await;
    claim(&api, "dots", 2, "v.i.c.tim+x@gmail.com").await;
    claim(&api, "google", 1, "victim@googlemail.com").await;
    send_verification_emails(&db).await;
    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;

    let example = smtp
        .mails()
        .iter()
        .filter(|m| m.to[0].to_lowercase().ends_with("@example.com"))
        .count();
    assert_eq!(example, 5, "one mailbox at example.com, five an hour");
    assert_eq!(
        smtp.mails().len() - example,
        3,
        "the Gmail mailbox is another, under its own five"
    );
    assert_eq!(capped(&db).await, 1);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn one_address_gets_at_most_ten_verification_emails_a_day(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    send_verification_emails(&db).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let hours_pass = |hours: i32| {
        let db = db.clone();
        async move {
            sqlx::query(
                "update verification_emails set sent_at = sent_at - make_interval(hours => $1)",
            )
            .bind(hours)
            .execute(&db)
            .await
            .unwrap();
        }
    };

    // Each hour allows five; the day allows ten, however the claims are spread.
    for (round, expected) in [(0, 5), (1, 10), (2, 10)] {
        claim(&api, &format!("round{round}x"), 6, "victim@example.com").await;
        eventually(WAIT, "the round's jobs", || all_jobs_finished(&db)).await;
        assert_eq!(smtp.mails().len(), expected, "after round {round}");
        hours_pass(2).await;
    }
    assert_eq!(capped(&db).await, 8);
    // A day after the first, the address may be sent links again.
    hours_pass(21).await;
    claim(&api, "nextday", 1, "victim@example.com").await;
    eventually(WAIT, "the next day's job", || all_jobs_finished(&db)).await;
    assert_eq!(smtp.mails().len(), 11);
    assert!(
        smtp.mails()
            .iter()
            .all(|m| m.to == ["victim@example.com"] || m.to == ["Victim@EXAMPLE.com"])
    );
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_account_claiming_the_mailbox_of_someone_who_blocked_it_sends_them_nothing(db: PgPool) {
    // A probe's blocked account claimed its blocker's address under a `+tag` and the fixed
    // verification email reached the blocker, up to the mailbox's ten a day.
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let mallory = api.user("mallory").await;
    let blocked = api
        .call(
            Method::PUT,
            "/api/v1/me/blocks/mallory",
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(blocked.status, 200, "{blocked:?}");
    let claimed = api
        .call(
            Method::PUT,
            "/api/v1/me/email",
            Some(&mallory.token),
            Some(serde_json::json!({"email": "Alice+hi@example.com",
                                     "password": "password-mallory"})),
        )
        .await;
    assert_eq!(claimed.status, 202, "answered as any claim: {claimed:?}");

    send_verification_emails(&db).await;
    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;
    assert!(smtp.mails().is_empty(), "{:?}", smtp.mails());
    assert_eq!(
        verify_outcomes(&db).await.last().cloned(),
        Some((
            "skipped".to_owned(),
            Some("skipped: the mailbox's owner blocked this account".to_owned())
        ))
    );
    // Yet it counts against the mailbox, as a sent one would: a mailbox that never filled for
    // one claimant alone would tell them who blocked them.
    let counted: i64 = sqlx::query_scalar(
        "select count(*) from verification_emails where address = 'alice@example.com'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(counted, 1);
    worker.stop().await;
}
