//! The verification email over real SMTP: sign-up sends one, its link verifies the address, and
//! the worker skips the emails that became pointless.

use crate::stack::{
    Api, InProcessWorker, SmtpSink, StackConfig, all_jobs_finished, database_url, eventually,
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

async fn email_verified(api: &Api, token: &str) -> bool {
    let (_, me) = api.call(Method::GET, "/api/v1/me", Some(token), None).await;
    me["email_verified"].as_bool().expect("email_verified")
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
    let api = Api::start(db.clone(), &config).await;
    api.send_verification_emails().await;
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
            .send()
    };
    let page = open(Method::GET).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Confirm my email"));
    assert!(!email_verified(&api, &bob.token).await, "the GET only asks");
    let confirmed = open(Method::POST).await.unwrap();
    assert_eq!(confirmed.status(), 200);
    assert!(email_verified(&api, &bob.token).await);

    let (status, _) = api
        .call(
            Method::POST,
            "/api/v1/me/verification",
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(status, 422, "nothing more to send once verified");
    assert_eq!(smtp.mails().len(), 1);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_claim_lapses_when_another_account_verifies_the_address_first(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    // The queue is paused while the claims are made, so the order is the test's.
    let api = Api::start(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let (status, _) = api
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
    assert_eq!(status, 201);
    let alice = api.user("alice").await;
    assert!(email_verified(&api, &alice.token).await);

    api.send_verification_emails().await;
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

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn one_address_gets_at_most_five_verification_emails_an_hour(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = Api::start(db.clone(), &config).await;
    api.send_verification_emails().await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    // Six accounts claim one address (as many client addresses could), one after the other.
    for n in 0..6 {
        let (status, _) = api
            .call(
                Method::POST,
                "/api/v1/users",
                None,
                Some(serde_json::json!({"username": format!("claim{n}"),
                                        "email": "victim@example.com",
                                        "password": "long enough"})),
            )
            .await;
        assert_eq!(status, 201);
        eventually(WAIT, "the claim's job", || all_jobs_finished(&db)).await;
    }
    assert_eq!(smtp.mails().len(), 5);
    let outcomes = verify_outcomes(&db).await;
    assert_eq!(
        outcomes[5],
        (
            "skipped".to_owned(),
            Some("skipped: address_cap".to_owned())
        )
    );
    worker.stop().await;
}
