//! Email to addresses that cannot take it: a permanent SMTP rejection is not retried; one that
//! blames the address stops email to it until its owner verifies it again, one about our relay
//! keeps the email queued for an operator's retry; an unverified address gets no notification
//! at all. Against an SMTP server (mailin, in this process) that refuses chosen
//! recipients.

use crate::stack::{notifications_finished, start_api};
use convos_testkit::{Client, InProcessWorker, StackConfig, TestUser, database_url, eventually};
use mailin_embedded::response::{OK, Response};
use mailin_embedded::{Handler, Server};
use serde_json::Value;
use sqlx::PgPool;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// An SMTP server that answers `RCPT TO` for chosen addresses with a chosen permanent reply,
/// accepts everyone else, and counts every `RCPT TO` it sees per address.
#[derive(Clone, Default)]
struct RefusingSmtp {
    /// Address → (code, text) of the refusal.
    refuse: Arc<Mutex<HashMap<String, (u16, String)>>>,
    /// Address → how many times a sender asked for it.
    asked: Arc<Mutex<HashMap<String, usize>>>,
    /// Addresses whose email was accepted, in order.
    delivered: Arc<Mutex<Vec<String>>>,
    /// The current message's accepted recipients (mailin clones the handler per connection).
    current: Vec<String>,
}

impl Handler for RefusingSmtp {
    fn rcpt(&mut self, to: &str) -> Response {
        *self.asked.lock().unwrap().entry(to.to_owned()).or_default() += 1;
        if let Some((code, text)) = self.refuse.lock().unwrap().get(to) {
            return Response::custom(*code, text.clone());
        }
        self.current.push(to.to_owned());
        OK
    }

    fn data_end(&mut self) -> Response {
        let to = std::mem::take(&mut self.current);
        self.delivered.lock().unwrap().extend(to);
        OK
    }
}

impl RefusingSmtp {
    fn serve(port: u16) -> Self {
        let handler = Self::default();
        let mut server = Server::new(handler.clone());
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("smtp port is free");
        server
            .with_name("refusing.test")
            .with_num_threads(8)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        handler
    }

    fn refuse(&self, address: &str, code: u16, text: &str) {
        self.refuse
            .lock()
            .unwrap()
            .insert(address.to_owned(), (code, text.to_owned()));
    }

    fn accept(&self, address: &str) {
        self.refuse.lock().unwrap().remove(address);
    }

    fn asked(&self, address: &str) -> usize {
        self.asked
            .lock()
            .unwrap()
            .get(address)
            .copied()
            .unwrap_or(0)
    }

    fn delivered(&self) -> Vec<String> {
        self.delivered.lock().unwrap().clone()
    }
}

async fn deliveries(api: &Client, message: &Value, caller: &TestUser) -> Value {
    let answer = api
        .get(
            &format!(
                "/api/v1/messages/{}/deliveries",
                message["id"].as_str().unwrap()
            ),
            caller,
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body["items"][0].clone()
}

async fn bounced(db: &PgPool, username: &str) -> bool {
    sqlx::query_scalar("select email_bounced_at is not null from users where username = $1")
        .bind(username)
        .fetch_one(db)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_rejected_address_fails_at_once_and_gets_no_email_until_verified_again(db: PgPool) {
    let config = StackConfig::new();
    let smtp = RefusingSmtp::serve(config.smtp_port);
    // What real servers say: the recipient's address is in the reply.
    let refusal = "5.1.1 <bob@example.com>: Recipient address rejected: User unknown";
    smtp.refuse("bob@example.com", 550, refusal);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let first = api.send(&alice, &bob, "Hello", "are you there?").await;
    eventually(WAIT, "the job to finish", || notifications_finished(&db)).await;
    let (state, attempts, error): (String, i32, String) =
        sqlx::query_as("select state, attempts, last_error from jobs where kind = 'notify_email'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), attempts),
        ("dead", 1),
        "not retried: {error}"
    );
    assert!(error.contains("550"), "{error}");
    assert_eq!(smtp.asked("bob@example.com"), 1, "exactly one attempt");
    assert!(
        bounced(&db, "bob").await,
        "the address is marked hard-bounced"
    );

    let seen_by_alice = deliveries(&api, &first, &alice).await;
    assert_eq!(seen_by_alice["status"], "not_sent");
    assert!(
        !seen_by_alice.to_string().contains("bob@example.com"),
        "the sender never sees the address: {seen_by_alice}"
    );
    let seen_by_bob = deliveries(&api, &first, &bob).await;
    assert_eq!(seen_by_bob["detail"]["state"], "failed");
    assert_eq!(seen_by_bob["detail"]["reason"], "rejected");
    assert!(
        seen_by_bob["detail"]["error"]
            .as_str()
            .unwrap()
            .contains(refusal),
        "the recipient sees the server's words: {seen_by_bob}"
    );

    let second = api
        .reply(&alice, first["thread_id"].as_str().unwrap(), "still there?")
        .await;
    eventually(WAIT, "the second job", || notifications_finished(&db)).await;
    let seen_by_bob = deliveries(&api, &second, &bob).await;
    assert_eq!(seen_by_bob["detail"]["state"], "skipped");
    assert_eq!(seen_by_bob["detail"]["reason"], "bounced");
    assert_eq!(
        smtp.asked("bob@example.com"),
        1,
        "nothing more was sent there"
    );

    // Bob fixes his mailbox and confirms the address again (the verification link's POST).
    smtp.accept("bob@example.com");
    let confirmed = convos_store::verification::confirm(
        &db,
        bob.id.parse().unwrap(),
        "bob@example.com",
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(confirmed, convos_store::verification::Confirmed::Verified);
    assert!(!bounced(&db, "bob").await);
    let third = api
        .reply(&alice, first["thread_id"].as_str().unwrap(), "welcome back")
        .await;
    eventually(WAIT, "the email after verifying again", || async {
        smtp.delivered() == ["bob@example.com"]
    })
    .await;
    eventually(WAIT, "the third job", || notifications_finished(&db)).await;
    assert_eq!(deliveries(&api, &third, &alice).await["status"], "sent");
    worker.stop().await;
}

/// The stack after alice's first message to bob, whose email our misconfigured relay refused
/// ("5.7.1 Relay access denied"), so its job is dead; with an admin to act on it.
struct RelayRefused {
    smtp: RefusingSmtp,
    api: convos_testkit::TestServer,
    worker: InProcessWorker,
    alice: TestUser,
    bob: TestUser,
    admin: TestUser,
    sent: Value,
}

async fn relay_refused(db: &PgPool) -> RelayRefused {
    let config = StackConfig::new();
    let smtp = RefusingSmtp::serve(config.smtp_port);
    smtp.refuse("bob@example.com", 554, "5.7.1 Relay access denied");
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let admin = api.user("ada").await;
    sqlx::query("update users set is_admin = true where username = 'ada'")
        .execute(db)
        .await
        .unwrap();
    let sent = api.send(&alice, &bob, "Hello", "relay?").await;
    eventually(WAIT, "the job to finish", || notifications_finished(db)).await;
    RelayRefused {
        smtp,
        api,
        worker,
        alice,
        bob,
        admin,
        sent,
    }
}

/// The one dead email job.
async fn dead_email_job(db: &PgPool) -> uuid::Uuid {
    sqlx::query_scalar("select id from jobs where kind = 'notify_email' and state = 'dead'")
        .fetch_one(db)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_refusal_about_our_relay_keeps_the_email_queued_until_an_operator_retries(db: PgPool) {
    // A misconfigured relay refuses every recipient: that is our fault, not the address's, and
    // must neither mark every user bounced nor lose the email.
    let RelayRefused {
        smtp,
        api,
        worker,
        alice,
        bob,
        admin,
        sent,
    } = relay_refused(&db).await;
    let (state, attempts): (String, i32) =
        sqlx::query_as("select state, attempts from jobs where kind = 'notify_email'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), attempts),
        ("dead", 1),
        "not retried by itself: an operator must fix the relay"
    );
    assert_eq!(smtp.asked("bob@example.com"), 1);
    assert!(!bounced(&db, "bob").await, "the address is not blamed");
    assert_eq!(
        deliveries(&api, &sent, &alice).await["status"],
        "pending",
        "the email is still to come"
    );
    let seen_by_bob = deliveries(&api, &sent, &bob).await;
    assert_eq!(seen_by_bob["detail"]["state"], "queued");
    assert_eq!(seen_by_bob["detail"]["reason"], "rejected");
    assert!(
        seen_by_bob["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("5.7.1 Relay access denied"),
        "the recipient and admins see the server's words: {seen_by_bob}"
    );

    // The relay is fixed; the operator retries every dead email job at once, as the board
    // suggests.
    smtp.accept("bob@example.com");
    let retried = api
        .post(
            "/api/v1/admin/jobs/retry",
            &admin,
            serde_json::json!({"queue": "notify_email", "state": "dead"}),
        )
        .await;
    assert_eq!(retried.status, 200, "{retried:?}");
    eventually(WAIT, "the retried email", || async {
        smtp.delivered() == ["bob@example.com"]
    })
    .await;
    eventually(WAIT, "the retried job", || notifications_finished(&db)).await;
    assert_eq!(deliveries(&api, &sent, &alice).await["status"], "sent");
    assert_eq!(
        smtp.delivered(),
        ["bob@example.com"],
        "exactly one email went out"
    );
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn discarding_an_email_job_our_relay_refused_fails_its_deliveries_for_good(db: PgPool) {
    let RelayRefused {
        smtp,
        api,
        worker,
        alice,
        bob,
        admin,
        sent,
    } = relay_refused(&db).await;
    assert_eq!(deliveries(&api, &sent, &alice).await["status"], "pending");
    let dead = dead_email_job(&db).await;

    // The operator gives up on that email: the sender must not see it pending for ever.
    let discarded = api
        .act(&format!("/api/v1/admin/jobs/{dead}/discard"), &admin)
        .await;
    assert_eq!(discarded.body["affected"], 1, "{discarded:?}");
    let seen_by_alice = deliveries(&api, &sent, &alice).await;
    assert_eq!(seen_by_alice["status"], "not_sent", "{seen_by_alice}");
    let seen_by_bob = deliveries(&api, &sent, &bob).await;
    assert_eq!(seen_by_bob["detail"]["state"], "failed", "{seen_by_bob}");
    assert_eq!(seen_by_bob["detail"]["reason"], "rejected", "{seen_by_bob}");

    // Once the relay is fixed, the thread's next message is emailed alone: the discarded one
    // is not taken along behind the operator's back.
    smtp.accept("bob@example.com");
    let next = api
        .reply(&alice, sent["thread_id"].as_str().unwrap(), "and now?")
        .await;
    eventually(WAIT, "the next email", || async {
        smtp.delivered() == ["bob@example.com"]
    })
    .await;
    eventually(WAIT, "the next job", || notifications_finished(&db)).await;
    assert_eq!(deliveries(&api, &next, &alice).await["status"], "sent");
    assert_eq!(deliveries(&api, &sent, &alice).await["status"], "not_sent");

    // Retrying another dead email job of the same thread and recipient queues its own failed
    // deliveries, not the discarded job's: a discard is for good.
    let other = {
        let mut tx = db.begin().await.unwrap();
        convos_store::jobs::enqueue(
            &mut tx,
            convos_core::jobs::JobKind::NotifyEmail,
            "notify_email:another-dead-one",
            None,
            serde_json::json!({
                "thread_id": sent["thread_id"],
                "recipient_id": bob.id,
            }),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let id: uuid::Uuid = sqlx::query_scalar(
            "update jobs set state = 'dead', attempts = 1, finished_at = now() \
             where key = 'notify_email:another-dead-one' returning id",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        id
    };
    let retried = api
        .act(&format!("/api/v1/admin/jobs/{other}/retry"), &admin)
        .await;
    assert_eq!(retried.body["affected"], 1, "{retried:?}");
    eventually(WAIT, "the other job", || notifications_finished(&db)).await;
    assert_eq!(deliveries(&api, &sent, &alice).await["status"], "not_sent");
    assert_eq!(
        smtp.delivered(),
        ["bob@example.com"],
        "nothing more was emailed"
    );
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_discard_leaves_the_deliveries_a_live_job_has_taken_on(db: PgPool) {
    let RelayRefused {
        smtp,
        api,
        worker,
        alice,
        bob,
        admin,
        sent,
    } = relay_refused(&db).await;
    let dead = dead_email_job(&db).await;
    // The relay now refuses for a while only: the thread's next job takes the first message
    // along, fails for now, and waits to try again.
    smtp.refuse("bob@example.com", 451, "4.3.0 try again later");
    let next = api
        .reply(&alice, sent["thread_id"].as_str().unwrap(), "and now?")
        .await;
    eventually(WAIT, "the next job to wait for its retry", || async {
        let retrying: i64 = sqlx::query_scalar(
            "select count(*) from jobs where kind = 'notify_email' and state = 'retry'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        retrying == 1
    })
    .await;

    // Discarding the dead job gives up on nothing the live one is trying to send.
    let discarded = api
        .act(&format!("/api/v1/admin/jobs/{dead}/discard"), &admin)
        .await;
    assert_eq!(discarded.body["affected"], 1, "{discarded:?}");
    for message in [&sent, &next] {
        assert_eq!(deliveries(&api, message, &alice).await["status"], "pending");
        let seen_by_bob = deliveries(&api, message, &bob).await;
        assert_eq!(seen_by_bob["detail"]["reason"], "temporary_failure");
    }
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_plain_550_fails_the_email_without_blaming_the_address(db: PgPool) {
    let config = StackConfig::new();
    let smtp = RefusingSmtp::serve(config.smtp_port);
    // No enhanced status code: this could be the relay, or a spam filter the sender's text
    // tripped; neither says the address is bad.
    smtp.refuse("bob@example.com", 550, "Message rejected as spam");
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let first = api.send(&alice, &bob, "Hello", "buy now!!!").await;
    eventually(WAIT, "the job to finish", || notifications_finished(&db)).await;
    let (state, attempts): (String, i32) =
        sqlx::query_as("select state, attempts from jobs where kind = 'notify_email'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempts), ("dead", 1), "not retried");
    assert_eq!(smtp.asked("bob@example.com"), 1);
    assert!(!bounced(&db, "bob").await, "the address is not blamed");
    assert_eq!(deliveries(&api, &first, &alice).await["status"], "not_sent");
    let seen_by_bob = deliveries(&api, &first, &bob).await;
    assert_eq!(seen_by_bob["detail"]["state"], "failed");
    assert_eq!(seen_by_bob["detail"]["reason"], "rejected");

    // The next message still goes to Bob: his address was never marked.
    smtp.accept("bob@example.com");
    let second = api
        .reply(&alice, first["thread_id"].as_str().unwrap(), "hello again")
        .await;
    eventually(WAIT, "the next email", || async {
        smtp.delivered() == ["bob@example.com"]
    })
    .await;
    eventually(WAIT, "the second job", || notifications_finished(&db)).await;
    assert_eq!(deliveries(&api, &second, &alice).await["status"], "sent");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_unverified_address_gets_no_notification_and_a_verified_one_does(db: PgPool) {
    let config = StackConfig::new();
    let smtp = RefusingSmtp::serve(config.smtp_port);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let carol = api.unverified_user("carol").await;

    let first = api.send(&alice, &carol, "Hi", "welcome").await;
    eventually(WAIT, "the job to finish", || notifications_finished(&db)).await;
    assert_eq!(smtp.asked("carol@example.com"), 0, "nothing went out");
    let seen_by_carol = deliveries(&api, &first, &carol).await;
    assert_eq!(seen_by_carol["detail"]["state"], "skipped");
    assert_eq!(seen_by_carol["detail"]["reason"], "unverified");
    assert_eq!(deliveries(&api, &first, &alice).await["status"], "not_sent");

    convos_store::verification::confirm(
        &db,
        carol.id.parse().unwrap(),
        "carol@example.com",
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let second = api
        .reply(&alice, first["thread_id"].as_str().unwrap(), "now?")
        .await;
    eventually(WAIT, "the email once verified", || async {
        smtp.delivered() == ["carol@example.com"]
    })
    .await;
    eventually(WAIT, "the second job", || notifications_finished(&db)).await;
    assert_eq!(deliveries(&api, &second, &alice).await["status"], "sent");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_digest_refused_for_its_address_stops_email_to_it(db: PgPool) {
    // Per-message emails marked an address the receiving server said does not exist; a digest
    // refused the same way did not, and tried the dead address again every day.
    let config = StackConfig::new();
    let smtp = RefusingSmtp::serve(config.smtp_port);
    smtp.refuse(
        "bob@example.com",
        550,
        "5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
    );
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let daily = api
        .call(
            reqwest::Method::PATCH,
            "/api/v1/me",
            Some(&bob.token),
            Some(serde_json::json!({"settings": {"email_mode": "daily", "digest_hour": 9}})),
        )
        .await;
    assert_eq!(daily.status, reqwest::StatusCode::OK, "{daily:?}");
    api.send(&alice, &bob, "Unread", "waiting").await;
    sqlx::query(
        "update users set next_digest_at = now() - interval '1 minute' where username = 'bob'",
    )
    .execute(&db)
    .await
    .unwrap();

    eventually(WAIT, "the digest refused", || async {
        let states: Vec<String> =
            sqlx::query_scalar("select state from jobs where kind = 'digest_email'")
                .fetch_all(&db)
                .await
                .unwrap();
        states == ["dead"]
    })
    .await;
    assert_eq!(smtp.asked("bob@example.com"), 1, "not retried");
    assert!(
        bounced(&db, "bob").await,
        "the address is marked hard-bounced"
    );
    worker.stop().await;
}
