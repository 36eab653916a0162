//! Email both ways, end to end: a notification carries a reply address and a bounce return
//! path; an answer sent to the worker's SMTP listener or to the server's webhook lands in the
//! thread as its author, clean of the quote; forged, foreign, automatic and repeated mail is
//! refused on record; bounce and complaint reports stop email. Real server, worker,
//! PostgreSQL, Redis, SMTP both ways.

use crate::sse::Events;
use crate::stack::{WORKER_BIN, start_api};
use convos_testkit::{
    InProcessWorker, Mail, SmtpSink, StackConfig, TestServer, TestUser, WorkerProcess,
    database_url, eventually, free_port,
};
use lettre::AsyncTransport;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const DOMAIN: &str = "reply.convos.test";
const SECRET: &str = "a-webhook-secret-of-some-length";

/// A running platform that reads email back: the API (with the webhook), the worker (with its
/// SMTP listener) and the SMTP sink notifications go to.
struct Platform {
    api: TestServer,
    worker: Option<InProcessWorker>,
    smtp: SmtpSink,
    listener_port: u16,
    db: PgPool,
    config: StackConfig,
    /// Changes to the worker's settings, kept for its restarts; the server's inbound caps
    /// follow the worker's, as the two count in the same keys.
    tweak: fn(&mut convos_worker::config::WorkerSettings),
}

impl Platform {
    async fn start(db: PgPool) -> Self {
        Self::start_with(db, |_| {}).await
    }

    async fn start_with(db: PgPool, tweak: fn(&mut convos_worker::config::WorkerSettings)) -> Self {
        let config = StackConfig::new();
        let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
        let mut settings = config.server_settings();
        settings.inbound_webhook_secret = Some(SECRET.to_owned().into());
        let mut worker = convos_worker::config::WorkerSettings::default();
        tweak(&mut worker);
        settings.inbound_per_address_per_day = worker.inbound_per_address_per_day;
        settings.inbound_per_user_per_day = worker.inbound_per_user_per_day;
        sqlx::query("insert into queue_controls (kind, paused) values ('verify_email', true)")
            .execute(&db)
            .await
            .unwrap();
        let api = TestServer::start(db.clone(), settings).await;
        let mut platform = Self {
            api,
            worker: None,
            smtp,
            listener_port: free_port(),
            db,
            config,
            tweak,
        };
        platform.start_worker().await;
        platform
    }

    async fn start_worker(&mut self) {
        let mut settings = self.config.worker_settings(&database_url(&self.db).await);
        settings.reply_domain = Some(DOMAIN.into());
        settings.inbound_smtp_addr = Some(([127, 0, 0, 1], self.listener_port).into());
        (self.tweak)(&mut settings);
        self.worker = Some(InProcessWorker::start(settings));
        let port = self.listener_port;
        eventually(WAIT, "the SMTP listener", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
    }

    /// Waits for the `n`th email (1-based) to reach the sink and returns it.
    async fn nth_mail(&self, n: usize) -> Mail {
        eventually(WAIT, &format!("email {n}"), || async {
            self.smtp.mails().len() >= n
        })
        .await;
        self.smtp.mails()[n - 1].clone()
    }

    /// Sends `raw` to the worker's SMTP listener from `from` to `to`.
    async fn send_smtp(&self, from: &str, to: &str, raw: impl AsRef<[u8]>) {
        self.try_smtp(from, to, raw)
            .await
            .expect("the listener takes the message");
    }

    /// Sends `raw` to the worker's SMTP listener; the listener's refusal, if it refused.
    async fn try_smtp(&self, from: &str, to: &str, raw: impl AsRef<[u8]>) -> Result<(), String> {
        let transport =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(self.listener_port)
                .build();
        let envelope = lettre::address::Envelope::new(
            if from.is_empty() {
                None
            } else {
                Some(from.parse().unwrap())
            },
            vec![to.parse().unwrap()],
        )
        .unwrap();
        transport
            .send_raw(&envelope, raw.as_ref())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Posts `raw` to the webhook with `secret`.
    async fn post_webhook(&self, secret: &str, raw: impl AsRef<[u8]>) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/api/v1/inbound/email", self.api.client.base))
            .bearer_auth(secret)
            .header("content-type", "message/rfc822")
            .body(raw.as_ref().to_vec())
            .send()
            .await
            .unwrap()
    }

    /// What became of every received email, oldest first: (status, reason).
    async fn received(&self) -> Vec<(String, Option<String>)> {
        sqlx::query_as("select status, reason from inbound_mail order by id")
            .fetch_all(&self.db)
            .await
            .unwrap()
    }

    async fn wait_decided(&self, count: usize) -> Vec<(String, Option<String>)> {
        eventually(
            WAIT,
            &format!("{count} received emails decided"),
            || async {
                let rows = self.received().await;
                rows.len() == count && rows.iter().all(|(s, _)| s != "received")
            },
        )
        .await;
        self.received().await
    }

    async fn thread_bodies(&self, user: &TestUser, thread: &str) -> Vec<(String, String)> {
        let page = self
            .api
            .get(
                &format!("/api/v1/threads/{thread}/messages?order=asc"),
                user,
            )
            .await;
        page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["sender"]["username"].as_str().unwrap().to_owned(),
                    m["body"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

/// A reply as Gmail writes it: new text on top, a wrapped attribution, the quote.
fn gmail_reply(from: &str, to: &str, message_id: &str, in_reply_to: &str, text: &str) -> String {
    format!(
        "From: Bob <{from}>\r\nTo: {to}\r\nSubject: Re: [Convos] Lunch on Friday?\r\n\
         Message-ID: <{message_id}>\r\nIn-Reply-To: {in_reply_to}\r\n\
         Date: Wed, 02 Dec 2026 10:05:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=\"UTF-8\"\r\n\r\n\
         {text}\r\n\r\nOn Wed, Dec 2, 2026 at 10:00 AM alice via Convos <\r\n\
         notify@convos.test> wrote:\r\n\r\n> alice sent you a message on Convos.\r\n>\r\n\
         > Are you free at noon?\r\n>\r\n"
    )
}

/// The address in the `Reply-To` of `mail`.
fn reply_address_of(mail: &Mail) -> String {
    let reply_to = mail.header("Reply-To").expect("a reply address");
    reply_to
        .rsplit('<')
        .next()
        .unwrap()
        .trim_end_matches('>')
        .to_owned()
}

struct Notified {
    thread: String,
    reply_to: String,
    message_id: String,
    mail: Mail,
}

/// Alice writes to Bob and Bob gets the notification.
async fn alice_writes_to_bob(p: &Platform, alice: &TestUser, bob: &TestUser, n: usize) -> Notified {
    let sent = p
        .api
        .send(alice, bob, "Lunch on Friday?", "Are you free at noon?")
        .await;
    Notified::of(p, sent, n).await
}

impl Notified {
    /// The message `sent` answered with, and the notification about it, the `n`th email.
    async fn of(p: &Platform, sent: Value, n: usize) -> Self {
        let mail = p.nth_mail(n).await;
        Self {
            thread: sent["thread_id"].as_str().unwrap().to_owned(),
            reply_to: reply_address_of(&mail),
            message_id: mail.header("Message-ID").unwrap(),
            mail,
        }
    }
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_reply_by_email_lands_in_the_thread_clean_and_its_reader_sees_it_live(db: PgPool) {
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let mut alice_events = Events::connect(&p.api.client, &alice, None).await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    assert!(
        n.reply_to.starts_with("reply+") && n.reply_to.ends_with(&format!("@{DOMAIN}")),
        "{}",
        n.reply_to
    );
    assert!(
        n.mail.from.starts_with("bounce+") && n.mail.from.ends_with(&format!("@{DOMAIN}")),
        "the return path names the message: {}",
        n.mail.from
    );
    assert!(
        n.mail.part("text/plain").contains("Reply to this email"),
        "the footer says a reply works"
    );

    let raw = gmail_reply(
        "bob@example.com",
        &n.reply_to,
        "CAB1@mail.gmail.com",
        &n.message_id,
        "Noon works. See you at the ramen place.",
    );
    p.send_smtp("bob@example.com", &n.reply_to, &raw).await;
    assert_eq!(p.wait_decided(1).await, [("posted".into(), None)]);
    assert_eq!(
        p.thread_bodies(&alice, &n.thread).await,
        [
            ("alice".into(), "Are you free at noon?".into()),
            (
                "bob".into(),
                "Noon works. See you at the ramen place.".into()
            )
        ],
        "exactly the new text, from its author"
    );
    // Alice, who has the app open, sees it live: her own send's event, then Bob's reply.
    let mut created = 0;
    while let Some(frame) = alice_events.next_event(WAIT).await {
        if frame.event == "message.created" {
            created += 1;
            if created == 2 {
                break;
            }
        }
    }
    assert_eq!(created, 2, "the reply reached the open stream");
    // And she gets the email about it, as for any reply.
    let to_alice = p.nth_mail(2).await;
    assert_eq!(to_alice.to, ["alice@example.com"]);
    // Answering by email read the thread for Bob.
    let thread = p
        .api
        .get(&format!("/api/v1/threads/{}", n.thread), &bob)
        .await;
    assert_eq!(thread.body["unread_count"], 0, "{:?}", thread.body);

    // The same email again, by the webhook this time (an MTA retry, a second route): not
    // posted twice.
    let res = p.post_webhook(SECRET, &raw).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let decided = p.wait_decided(2).await;
    assert_eq!(decided[1], ("refused".into(), Some("duplicate".into())));
    assert_eq!(p.thread_bodies(&alice, &n.thread).await.len(), 2);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn replies_by_email_to_long_threads_read_them_one_at_a_time(db: PgPool) {
    // Answering by email reads the thread up to the message answered: on a long thread a walk
    // of all of it, seconds at hundreds of thousands of messages. In the app such an action
    // takes one of a few places (decision 55); by email each reply ran it at once on the
    // worker's pool, so replies to long threads held a connection each for as long (an audit).
    let p = Platform::start(db).await;
    let (alice, bob) = (p.api.user("alice").await, p.api.user("bob").await);
    let carol = p.api.user("carol").await;
    let first = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let sent = p
        .api
        .send(&carol, &bob, "Minutes", "From today's meeting")
        .await;
    let second = Notified::of(&p, sent, 2).await;
    let mut held = p.db.begin().await.unwrap();
    for thread in [&first.thread, &second.thread] {
        lengthen(
            &p.db,
            thread,
            convos_store::threads::LONG_THREAD_MESSAGES + 1,
        )
        .await;
        // One of the messages a reply reads is held, as a slow walk would hold it.
        sqlx::query(
            "select 1 from messages where thread_id = $1::uuid and recipient_read = false \
             order by created_at limit 1 for update",
        )
        .bind(thread)
        .execute(&mut *held)
        .await
        .unwrap();
    }

    for (i, n) in [&first, &second].into_iter().enumerate() {
        let id = format!("CAB-long-{i}@mail.gmail.com");
        let raw = gmail_reply("bob@example.com", &n.reply_to, &id, &n.message_id, "Noted.");
        p.send_smtp("bob@example.com", &n.reply_to, &raw).await;
    }
    assert_eq!(p.wait_decided(2).await.len(), 2, "both posted");
    convos_testkit::fixtures::until_a_lock_is_awaited(&p.db, || false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(lock_waits(&p.db).await, 1, "one long thread read at a time");
    held.rollback().await.unwrap();
    for n in [&first, &second] {
        eventually(WAIT, "the thread read for Bob", || async {
            let path = format!("/api/v1/threads/{}", n.thread);
            p.api.get(&path, &bob).await.body["unread_count"] == 0
        })
        .await;
    }
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_reply_waiting_behind_a_long_action_on_its_thread_gives_its_connection_back(db: PgPool) {
    // A reply by email is posted under its thread's lock, which a long action in the app (a
    // mark-read or delete of a long thread) holds for seconds. Each reply waited for it holding
    // one of the worker's connections, with no limit: a burst of replies held the pool, and
    // every user's email jobs waited for connections (an audit). A job now waits for a lock so
    // long, then is retried.
    let p = Platform::start_with(db, |w| {
        w.job_lock_timeout_ms = 300;
        w.retry_base_ms = 100;
    })
    .await;
    let (alice, bob) = (p.api.user("alice").await, p.api.user("bob").await);
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let mut held = p.db.begin().await.unwrap();
    sqlx::query("select 1 from threads where id = $1::uuid for update")
        .bind(&n.thread)
        .execute(&mut *held)
        .await
        .unwrap();

    for i in 0..3 {
        let id = format!("CAB-wait-{i}@mail.gmail.com");
        let raw = gmail_reply("bob@example.com", &n.reply_to, &id, &n.message_id, "Noted.");
        p.send_smtp("bob@example.com", &n.reply_to, &raw).await;
    }
    convos_testkit::fixtures::until_a_lock_is_awaited(&p.db, || false).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let longest: f64 = sqlx::query_scalar(
        "select coalesce(max(extract(epoch from clock_timestamp() - query_start)), 0)::float8 \
         from pg_stat_activity where wait_event_type = 'Lock' \
         and datname = current_database()",
    )
    .fetch_one(&p.db)
    .await
    .unwrap();

    assert!(
        longest < 1.0,
        "a reply has waited {longest} s for the thread"
    );
    held.rollback().await.unwrap();
    assert_eq!(
        p.wait_decided(3).await,
        vec![("posted".to_owned(), None); 3],
        "each posted once the action ended"
    );
}

/// Statements of the test database waiting for a lock now.
async fn lock_waits(db: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity where wait_event_type = 'Lock' \
         and datname = current_database()",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

/// Bob answers notification `n` from Gmail, with message id `id`, saying `text`.
async fn bob_replies(p: &Platform, n: &Notified, id: &str, text: &str) {
    let raw = gmail_reply("bob@example.com", &n.reply_to, id, &n.message_id, text);
    p.send_smtp("bob@example.com", &n.reply_to, &raw).await;
}

/// Adds `count` messages from Alice to Bob, unread, to `thread`, counted as the store counts.
async fn lengthen(db: &PgPool, thread: &str, count: i64) {
    sqlx::query(
        "insert into messages (id, thread_id, sender_id, recipient_id, body, created_at) \
         select gen_random_uuid(), m.thread_id, m.sender_id, m.recipient_id, 'more ' || g, \
                m.created_at - g * interval '1 millisecond' \
         from (select * from messages where thread_id = $1::uuid limit 1) m, \
              generate_series(1, $2) g",
    )
    .bind(thread)
    .bind(count)
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "update thread_participants set \
           received_count = received_count + case when received_count > 0 then $2 else 0 end, \
           sent_count = sent_count + case when sent_count > 0 then $2 else 0 end, \
           unread_count = unread_count + case when received_count > 0 then $2 else 0 end \
         where thread_id = $1::uuid",
    )
    .bind(thread)
    .bind(count)
    .execute(db)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_reply_quoting_the_notification_in_an_unknown_layout_posts_none_of_it(db: PgPool) {
    // Outlook in Polish quotes without `>`, under a header block whose names the quote stripper
    // does not know: the whole notification was posted to the other person, with the
    // replier's address and signed links, and a probe's sender paused the replier's email with
    // one of them.
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let quoted = n.mail.part("text/plain");
    let body = format!(
        "Przestań do mnie pisać.\r\n\r\n________________________________\r\n\
         Od: {}\r\nWysłano: sobota, 6 grudnia 2026 02:45\r\n\
         Do: Bob <bob@example.com>\r\nTemat: [Convos] Lunch on Friday?\r\n\r\n{}",
        n.mail.header("From").unwrap(),
        quoted.replace('\n', "\r\n"),
    );
    let raw = format!(
        "From: Bob <bob@example.com>\r\nTo: {}\r\nSubject: RE: [Convos] Lunch on Friday?\r\n\
         Message-ID: <outlook-pl-1@example.com>\r\nIn-Reply-To: {}\r\n\
         Date: Sun, 06 Dec 2026 02:45:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}",
        n.reply_to, n.message_id,
    );
    assert!(
        quoted.contains("/api/v1/email-links/"),
        "the notification has signed links"
    );

    p.send_smtp("bob@example.com", &n.reply_to, &raw).await;

    assert_eq!(p.wait_decided(1).await, [("posted".into(), None)]);
    let bodies = p.thread_bodies(&alice, &n.thread).await;
    assert_eq!(
        bodies[1],
        ("bob".into(), "Przestań do mnie pisać.".into()),
        "the answer alone reaches Alice"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_reply_by_email_to_someone_who_blocked_you_is_refused_on_record(db: PgPool) {
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let blocked = p
        .api
        .call(
            reqwest::Method::PUT,
            "/api/v1/me/blocks/bob",
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(blocked.status, StatusCode::OK, "{blocked:?}");

    bob_replies(
        &p,
        &n,
        "CAB-blocked@mail.gmail.com",
        "Why won't you answer?",
    )
    .await;

    assert_eq!(
        p.wait_decided(1).await,
        [("refused".into(), Some("blocked".into()))]
    );
    assert_eq!(p.thread_bodies(&alice, &n.thread).await.len(), 1);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_suspended_accounts_reply_by_email_is_not_posted(db: PgPool) {
    // A suspension ends an account's sessions; its reply addresses must stop too, or it posts
    // by email what it can no longer post in the app (decision 88).
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let ada = p.api.admin("ada").await;
    let before = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let suspended = p.api.act("/api/v1/admin/users/bob/suspend", &ada).await;
    assert_eq!(suspended.status, StatusCode::OK, "{suspended:?}");
    // A notification sent after the suspension carries a fresh address: it must not work
    // either (a probe posted through one).
    let sent = p.api.send(&alice, &bob, "Please stop", "please stop").await;
    let after = Notified::of(&p, sent, 2).await;

    bob_replies(
        &p,
        &before,
        "CAB-suspended@mail.gmail.com",
        "You can't stop me.",
    )
    .await;
    bob_replies(&p, &after, "CAB-suspended-2@mail.gmail.com", "Nor now.").await;

    // Told so, not "revoked": a newer notification would not work either.
    assert_eq!(
        p.wait_decided(2).await,
        vec![("refused".to_owned(), Some("suspended".to_owned())); 2]
    );
    assert_eq!(p.thread_bodies(&alice, &before.thread).await.len(), 1);
    assert_eq!(p.thread_bodies(&alice, &after.thread).await.len(), 1);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_reply_with_a_stray_nul_is_posted_without_it_not_refused_as_too_long(db: PgPool) {
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    // A NUL cannot be stored as text, and no mail client means one: a probe's 30-byte reply
    // holding one was refused as longer than 64,000 characters, and its author told so.
    let raw = format!(
        "From: Bob <bob@example.com>\r\nTo: {to}\r\nSubject: Re: [Convos] Lunch on Friday?\r\n\
         Message-ID: <nul1@example.com>\r\nIn-Reply-To: {id}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n\
         Noon=00 works.\r\n",
        to = n.reply_to,
        id = n.message_id,
    );
    p.send_smtp("bob@example.com", &n.reply_to, &raw).await;
    assert_eq!(p.wait_decided(1).await, [("posted".into(), None)]);
    assert_eq!(
        p.thread_bodies(&alice, &n.thread).await[1],
        ("bob".into(), "Noon works.".into())
    );
}

/// The corpus of replies as real mail clients write them (`mail/tests/replies`): each raw
/// message, its `Message-ID` and the new text it holds.
fn corpus() -> Vec<(Vec<u8>, String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mail/tests/replies");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|path| {
            let raw = std::fs::read(&path).unwrap();
            let parsed = convos_mail::parsed::parse(&raw).unwrap();
            let expected = std::fs::read_to_string(path.with_extension("expected.txt")).unwrap();
            (
                raw.clone(),
                parsed
                    .message_id
                    .expect("every corpus reply has a Message-ID"),
                expected.strip_suffix('\n').unwrap_or(&expected).to_owned(),
            )
        })
        .collect()
}

/// `raw` as Bob's answer to `reply_to`: his address in `From` (the header and its folded
/// lines replaced) and the real reply address for the corpus's placeholder.
fn as_bobs_answer(raw: &[u8], reply_to: &str) -> Vec<u8> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let (head, body) = (String::from_utf8_lossy(&raw[..split]), &raw[split..]);
    let mut lines = Vec::new();
    let mut in_from = false;
    for line in head.split("\r\n") {
        if line.len() >= 5 && line[..5].eq_ignore_ascii_case("from:") {
            lines.push("From: Bob <bob@example.com>".to_owned());
            in_from = true;
        } else if in_from && line.starts_with([' ', '\t']) {
            continue;
        } else {
            in_from = false;
            lines.push(line.replace("reply+REPLYTOKEN@reply.convos.test", reply_to));
        }
    }
    [lines.join("\r\n").as_bytes(), body].concat()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn replies_from_every_corpus_client_land_with_exactly_their_new_text(db: PgPool) {
    // Every client's reply goes to the one notification's address: more than it takes a day.
    let p = Platform::start_with(db.clone(), |s| s.inbound_per_address_per_day = 1_000).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let cases = corpus();
    assert!(cases.len() >= 30);
    // Half by the SMTP listener, half by the webhook.
    for (i, (raw, _, _)) in cases.iter().enumerate() {
        let answer = as_bobs_answer(raw, &n.reply_to);
        if i % 2 == 0 {
            p.send_smtp("bob@example.com", &n.reply_to, &answer).await;
        } else {
            let res = p.post_webhook(SECRET, &answer).await;
            assert_eq!(res.status(), StatusCode::ACCEPTED);
        }
    }
    let decided = p.wait_decided(cases.len()).await;
    assert!(
        decided.iter().all(|(status, _)| status == "posted"),
        "{decided:?}"
    );
    let posted: std::collections::HashMap<String, String> = sqlx::query_as(
        "select i.message_id, m.body from inbound_mail i join messages m on m.id = i.posted_id",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    for (_, message_id, expected) in &cases {
        assert_eq!(
            posted.get(message_id),
            Some(expected),
            "the reply {message_id} holds exactly its new text"
        );
    }
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_email_written_after_a_revocation_carries_a_reply_address_that_works(db: PgPool) {
    // Bob revokes his reply addresses while the email about Alice's message still waits (the
    // notification delay, a paused queue, a retry). The email goes out after the revocation,
    // so its reply address is a new one: a probe found it dead on arrival, judged by the
    // message's time, while the same email's links worked.
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    sqlx::query("insert into queue_controls (kind, paused) values ('notify_email', true)")
        .execute(&p.db)
        .await
        .unwrap();
    let sent = p
        .api
        .send(&alice, &bob, "Lunch on Friday?", "Are you free at noon?")
        .await;
    let revoked = p.api.delete("/api/v1/me/reply-addresses", &bob).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{revoked:?}");
    sqlx::query("update queue_controls set paused = false where kind = 'notify_email'")
        .execute(&p.db)
        .await
        .unwrap();
    let mail = p.nth_mail(1).await;
    let address = reply_address_of(&mail);

    let raw = gmail_reply(
        "bob@example.com",
        &address,
        "after-revoke@mail.gmail.com",
        &mail.header("Message-ID").unwrap(),
        "Noon works.",
    );
    p.send_smtp("bob@example.com", &address, &raw).await;
    assert_eq!(p.wait_decided(1).await, [("posted".into(), None)]);
    let thread = sent["thread_id"].as_str().unwrap();
    assert_eq!(p.thread_bodies(&alice, thread).await.len(), 2);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn replies_to_a_deleted_thread_or_a_revoked_address_are_refused_and_explained(db: PgPool) {
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let first = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let deleted = p
        .api
        .delete(&format!("/api/v1/threads/{}", first.thread), &bob)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    let answer = |n: &Notified, id: &str| {
        gmail_reply(
            "bob@example.com",
            &n.reply_to,
            id,
            &n.message_id,
            "Too late?",
        )
    };
    p.send_smtp("bob@example.com", &first.reply_to, answer(&first, "g1@x"))
        .await;
    let decided = p.wait_decided(1).await;
    assert_eq!(decided[0], ("refused".into(), Some("thread_gone".into())));
    let told = p.nth_mail(2).await;
    assert!(told.raw.contains("no longer available"), "{}", told.raw);

    let second = alice_writes_to_bob(&p, &alice, &bob, 3).await;
    let revoked = p.api.delete("/api/v1/me/reply-addresses", &bob).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{revoked:?}");
    p.send_smtp("bob@example.com", &second.reply_to, answer(&second, "g2@x"))
        .await;
    let decided = p.wait_decided(2).await;
    assert_eq!(decided[1], ("refused".into(), Some("revoked".into())));
    assert_eq!(p.thread_bodies(&alice, &second.thread).await.len(), 1);

    // The next notification's address works again.
    let third = alice_writes_to_bob(&p, &alice, &bob, 5).await;
    p.send_smtp("bob@example.com", &third.reply_to, answer(&third, "g3@x"))
        .await;
    let decided = p.wait_decided(3).await;
    assert_eq!(decided[2], ("posted".into(), None));
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_run_of_soft_bounces_suppresses_the_address(db: PgPool) {
    let p = Platform::start(db.clone()).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    for i in 1..=5 {
        p.send_smtp(
            "",
            &n.mail.from,
            dsn(&n.mail.from, &n.message_id, "4.2.2", "failed"),
        )
        .await;
        p.wait_decided(i).await;
        let bounced = user_row(&db, "bob").await.0;
        assert_eq!(bounced, i == 5, "after {i} soft bounces");
    }
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn forged_foreign_and_automatic_mail_is_refused_on_record(db: PgPool) {
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let reply =
        |from: &str, to: &str, id: &str| gmail_reply(from, to, id, &n.message_id, "Sounds good.");

    // A forged token, "from" Bob's own address: refused, and nobody is told. `From` is
    // anyone's to write: answering it let a stranger make Convos email any user a subject of
    // their choosing, five times an hour. The listener refuses it at `RCPT TO` (decision 69);
    // the webhook drops it unkept, with a 2xx so the provider does not post it again
    // (decision 70).
    let (local, _) = n.reply_to.split_once('@').unwrap();
    let forged = format!(
        "{}{}@{DOMAIN}",
        &local[..local.len() - 1],
        if local.ends_with('a') { 'b' } else { 'a' }
    );
    let phishing = reply("bob@example.com", &forged, "f1@x").replacen(
        "Subject: Re: [Convos] Lunch on Friday?",
        "Subject: URGENT your Convos password expires - reset at http://evil.example/",
        1,
    );
    let refused = p.try_smtp("bob@example.com", &forged, &phishing).await;
    assert!(refused.unwrap_err().contains("550"), "refused at RCPT TO");
    let res = p.post_webhook(SECRET, &phishing).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "dropped");
    // The right address from someone else: refused, and nobody is emailed.
    p.send_smtp(
        "mallory@example.net",
        &n.reply_to,
        &reply("mallory@example.net", &n.reply_to, "f2@x"),
    )
    .await;
    // The right address, "from" Alice (a user, but not the address's owner): nobody is told.
    p.send_smtp(
        "alice@example.com",
        &n.reply_to,
        &reply("alice@example.com", &n.reply_to, "f5@x"),
    )
    .await;
    // Bob's out-of-office robot.
    let ooo = reply("bob@example.com", &n.reply_to, "f3@x").replacen(
        "Subject: Re:",
        "Auto-Submitted: auto-replied\r\nSubject: Automatic reply: Re:",
        1,
    );
    p.send_smtp("bob@example.com", &n.reply_to, &ooo).await;
    // Our own notification coming back (a forwarding loop).
    let looped = n
        .mail
        .raw
        .replacen("To: ", &format!("To: {}, ", n.reply_to), 1);
    p.send_smtp("notify@convos.test", &n.reply_to, &looped)
        .await;

    let decided = p.wait_decided(4).await;
    let reasons: Vec<&str> = decided
        .iter()
        .map(|(status, reason)| {
            assert_eq!(status, "refused");
            reason.as_deref().unwrap()
        })
        .collect();
    assert_eq!(
        reasons,
        ["wrong_sender", "wrong_sender", "auto_submitted", "our_own"]
    );
    assert_eq!(p.thread_bodies(&alice, &n.thread).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        p.smtp.mails().len(),
        1,
        "nobody was emailed but the notification: not Bob, not Alice, not the stranger, not a \
         robot"
    );
}

/// A stranger's email to `to` of 770 KB, the `i`th (its Message-ID).
fn big(to: &str, i: usize) -> String {
    format!(
        "From: m@evil.test\r\nTo: {to}\r\nSubject: fill\r\nMessage-ID: <fill{i}@evil.test>\r\n\r\n{}",
        format!("{}\r\n", "x".repeat(76)).repeat(10_000)
    )
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn nobody_fills_the_database_through_the_listener(db: PgPool) {
    // A probe with no account sent 200 megabyte emails to made-up reply addresses in 6.5 s:
    // each was kept whole, with its job, for a week (206 MB). Here an address takes three a
    // day, and all of a user's four.
    let p = Platform::start_with(db, |s| {
        s.inbound_per_address_per_day = 3;
        s.inbound_per_user_per_day = 4;
    })
    .await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;

    // A made-up address is refused before any of the message is sent.
    let made_up = format!("reply+{}@{DOMAIN}", "a".repeat(52));
    let refused = p.try_smtp("m@evil.test", &made_up, big(&made_up, 0)).await;
    assert!(refused.unwrap_err().contains("550"));

    // A genuine one takes three a day, then is told to come back tomorrow.
    for i in 1..=3 {
        p.send_smtp("m@evil.test", &n.reply_to, big(&n.reply_to, i))
            .await;
    }
    let over = p
        .try_smtp("m@evil.test", &n.reply_to, big(&n.reply_to, 4))
        .await;
    assert!(over.unwrap_err().contains("452"));
    // Addresses never expire, so every day's emails bring more: all of one user's take four
    // a day here.
    let sent = p.api.send(&alice, &bob, "Another", "2").await;
    assert!(sent["thread_id"].is_string());
    let address = reply_address_of(&p.nth_mail(2).await);
    p.send_smtp("m@evil.test", &address, big(&address, 5)).await;
    let over = p.try_smtp("m@evil.test", &address, big(&address, 6)).await;
    assert!(over.unwrap_err().contains("452"), "the owner's fifth");

    // What is kept of each refused one (not its owner's) is its head, not its 770 KB.
    let decided = p.wait_decided(4).await;
    assert!(
        decided
            .iter()
            .all(|(s, r)| s == "refused" && r.as_deref() == Some("wrong_sender"))
    );
    let kept: Vec<i32> = sqlx::query_scalar("select octet_length(raw) from inbound_mail")
        .fetch_all(&p.db)
        .await
        .unwrap();
    assert_eq!(kept, [convos_store::inbound::KEPT_BYTES; 4]);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn nobody_fills_the_database_through_the_webhook(db: PgPool) {
    // The provider in front of the webhook takes mail for every address at the reply domain,
    // and the webhook kept each message it posted, up to a megabyte, with its job: made-up
    // addresses filled PostgreSQL there as they did through the listener. Here an address
    // takes three a day, however they arrive, and all of a user's ten.
    let p = Platform::start_with(db, |s| {
        s.inbound_per_address_per_day = 3;
        s.inbound_per_user_per_day = 10;
    })
    .await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    // As Mailgun posts: the envelope recipient in a field of its own, the message in another.
    let mailgun = |recipient: &str, raw: &str| {
        let part = |name: &str, value: &str| {
            format!("--b0\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
        };
        let form = format!(
            "{}{}--b0--\r\n",
            part("recipient", recipient),
            part("body-mime", raw)
        );
        reqwest::Client::new()
            .post(format!("{}/api/v1/inbound/email", p.api.client.base))
            .bearer_auth(SECRET)
            .header("content-type", "multipart/form-data; boundary=b0")
            .body(form)
            .send()
    };

    // Made-up addresses, in the headers or as the envelope recipient: nothing kept, and a 2xx
    // so that the provider does not post them again.
    let made_up = format!("reply+{}@{DOMAIN}", "a".repeat(52));
    for raw in [big(&made_up, 0), big("someone@elsewhere.test", 0)] {
        let res = p.post_webhook(SECRET, &raw).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "dropped");
        assert_eq!(body["reason"], "no_genuine_address");
    }
    let res = mailgun(&made_up, &big("x@elsewhere.test", 0))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(p.received().await.is_empty(), "nothing kept");

    // A genuine address takes three a day, by the listener or the webhook, each message
    // counted once however often it names the address (Mailgun's field and `To`).
    p.send_smtp("m@evil.test", &n.reply_to, big(&n.reply_to, 1))
        .await;
    let res = mailgun(&n.reply_to, &big(&n.reply_to, 2)).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = p.post_webhook(SECRET, big(&n.reply_to, 3)).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);

    // Then a 503, which every provider retries later (SendGrid retries nothing else), and the
    // listener's 452. The refused message costs the other address it names nothing.
    let sent = p.api.send(&alice, &bob, "Another", "2").await;
    assert!(sent["thread_id"].is_string());
    let fresh = reply_address_of(&p.nth_mail(2).await);
    let over = p
        .post_webhook(SECRET, big(&format!("{fresh}, {}", n.reply_to), 4))
        .await;
    assert_eq!(over.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    let body: Value = over.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let over = p
        .try_smtp("m@evil.test", &n.reply_to, big(&n.reply_to, 5))
        .await;
    assert!(over.unwrap_err().contains("452"));
    for i in 6..=8 {
        let res = p.post_webhook(SECRET, big(&fresh, i)).await;
        assert_eq!(
            res.status(),
            StatusCode::ACCEPTED,
            "the fresh address's message {i}"
        );
    }
    assert_eq!(p.wait_decided(6).await.len(), 6, "the six, and no more");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn mail_nested_thousands_deep_is_refused_and_the_worker_lives_on(db: PgPool) {
    // 300 KB of multiparts, 6,000 deep, to a reply address: parsing it overflowed the
    // stack of the runtime thread, which aborted the worker (every queue with it), and again
    // after each restart, once the job's lease ran out.
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let mut bomb = format!(
        "From: a@evil.test\r\nTo: {}\r\nSubject: s\r\nMessage-ID: <deep@x>\r\n",
        n.reply_to
    );
    for level in 0..6_000 {
        bomb.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{level}\r\n\r\n--b{level}\r\n"
        ));
    }
    bomb.push_str("Content-Type: text/plain\r\n\r\nhi\r\n");
    p.send_smtp("a@evil.test", &n.reply_to, &bomb).await;

    let decided = p.wait_decided(1).await;
    assert_eq!(decided[0], ("refused".into(), Some("unreadable".into())));
    // The worker still delivers: Alice's next message to Bob is emailed.
    alice_writes_to_bob(&p, &alice, &bob, 2).await;
}

/// An SMTP session opened from `host` to the listener on `port`, and its greeting.
async fn greeted(host: [u8; 4], port: u16) -> (tokio::net::TcpStream, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((host, 0).into()).unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let mut greeting = vec![0; 512];
    let n = tokio::time::timeout(
        WAIT,
        tokio::io::AsyncReadExt::read(&mut stream, &mut greeting),
    )
    .await
    .expect("a greeting")
    .unwrap();
    (stream, String::from_utf8_lossy(&greeting[..n]).into_owned())
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn one_network_cannot_hold_every_smtp_session(db: PgPool) {
    // The listener may be the reply domain's MX, open to the internet: one host opening the
    // sessions allowed (64) and keeping each alive with a line a minute, for ten minutes each,
    // kept every other sender's replies out. Here a network may hold two sessions.
    let p = Platform::start_with(db, |s| s.inbound_max_connections_per_addr = 2).await;
    let port = p.listener_port;
    let from = |host: [u8; 4]| greeted(host, port);
    let (_first, one) = from([127, 0, 0, 2]).await;
    let (_second, two) = from([127, 0, 0, 2]).await;

    let (_third, refused) = from([127, 0, 0, 2]).await;
    let (_other, elsewhere) = from([127, 0, 0, 3]).await;

    assert!(
        one.starts_with("220 ") && two.starts_with("220 "),
        "{one} {two}"
    );
    assert!(
        refused.starts_with("421 "),
        "a third session from one network: {refused}"
    );
    assert!(
        elsewhere.starts_with("220 "),
        "another network is served: {elsewhere}"
    );
    // This machine is a relay (a local Postfix), whose sessions carry everyone's mail.
    let mut relayed = Vec::new();
    for _ in 0..3 {
        relayed.push(from([127, 0, 0, 1]).await);
    }
    assert!(
        relayed
            .iter()
            .all(|(_, greeting)| greeting.starts_with("220 "))
    );
    drop((_first, _second));
    // Their places come back once they end.
    eventually(WAIT, "a session from the first network again", || async {
        from([127, 0, 0, 2]).await.1.starts_with("220 ")
    })
    .await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn strangers_filling_every_session_do_not_shut_out_the_relay(db: PgPool) {
    // A probe held all 64 sessions from four addresses (16 each, none of them a relay, no
    // account needed): the MX relay was told `421 busy` for as long as they kept it up, and
    // every reply and report waited at the MX. Here 2 sessions in all, 1 per network.
    let p = Platform::start_with(db, |s| {
        s.inbound_max_connections = 2;
        s.inbound_max_connections_per_addr = 1;
    })
    .await;
    let port = p.listener_port;
    let from = |host: [u8; 4]| greeted(host, port);
    let (_a, a) = from([127, 0, 0, 6]).await;
    let (_b, b) = from([127, 0, 0, 7]).await;
    let (_c, c) = from([127, 0, 0, 8]).await;
    assert!(a.starts_with("220 ") && b.starts_with("220 "), "{a} {b}");
    assert!(
        c.starts_with("421 "),
        "every stranger's place is taken: {c}"
    );
    // This machine is the relay: it has places of its own.
    let (_relay, relay) = from([127, 0, 0, 1]).await;
    assert!(relay.starts_with("220 "), "the relay is served: {relay}");
}

/// A delivery status notification as a receiving server sends it to the return path.
fn dsn(to: &str, original_id: &str, status: &str, action: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\nTo: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn.{status}@mx.example.com>\r\n\
         Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.example.com\r\n\r\n\
         Final-Recipient: rfc822; bob@example.com\r\nAction: {action}\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; 550 {status} mailbox unavailable\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\n\
         From: alice via Convos <notify@convos.test>\r\nTo: bob@example.com\r\n\
         Message-ID: {original_id}\r\n\r\n--B--\r\n"
    )
}

async fn user_row(db: &PgPool, username: &str) -> (bool, bool, bool) {
    sqlx::query_as(
        "select email_bounced_at is not null, email_notifications, \
                email_complained_at is not null from users where username = $1",
    )
    .bind(username)
    .fetch_one(db)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn bounces_and_complaints_at_the_return_path_stop_email(db: PgPool) {
    let p = Platform::start(db.clone()).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let bounce_to = n.mail.from.clone();

    // A mailbox-full delay is recorded, nothing more.
    p.send_smtp(
        "",
        &bounce_to,
        &dsn(&bounce_to, &n.message_id, "4.2.2", "delayed"),
    )
    .await;
    let decided = p.wait_decided(1).await;
    assert_eq!(decided[0], ("bounce".into(), Some("delayed".into())));
    assert_eq!(user_row(&db, "bob").await, (false, true, false));

    // A soft bounce (a mailbox still full when the server gave up) is counted, not final.
    p.send_smtp(
        "",
        &bounce_to,
        dsn(&bounce_to, &n.message_id, "4.2.2", "failed"),
    )
    .await;
    let decided = p.wait_decided(2).await;
    assert_eq!(decided[1], ("bounce".into(), Some("soft_bounce".into())));
    assert_eq!(user_row(&db, "bob").await, (false, true, false));

    // A hard bounce suppresses the address: the next message is not emailed.
    p.send_smtp(
        "",
        &bounce_to,
        &dsn(&bounce_to, &n.message_id, "5.1.1", "failed"),
    )
    .await;
    let decided = p.wait_decided(3).await;
    assert_eq!(decided[2], ("bounce".into(), Some("hard_bounce".into())));
    assert_eq!(user_row(&db, "bob").await, (true, true, false));
    let me = p.api.get("/api/v1/me", &bob).await;
    assert_eq!(me.body["email_stopped"], "bounced", "Bob is shown why");

    // Carol marks her notification as spam: her email is turned off.
    let carol = p.api.user("carol").await;
    p.api.send(&alice, &carol, "Offer", "Hello Carol").await;
    let to_carol = p.nth_mail(2).await;
    assert_eq!(to_carol.to, ["carol@example.com"]);
    let arf = format!(
        "From: feedback@isp.example\r\nTo: {to}\r\nSubject: complaint\r\n\
         Message-ID: <arf1@isp.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
         --F\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n\r\n\
         --F\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n\
         Original-Rcpt-To: carol@example.com\r\n\r\n\
         --F\r\nContent-Type: text/rfc822-headers\r\n\r\n\
         From: alice via Convos <notify@convos.test>\r\nMessage-ID: {id}\r\n\r\n--F--\r\n",
        to = to_carol.from,
        id = to_carol.header("Message-ID").unwrap()
    );
    p.send_smtp("", &to_carol.from, &arf).await;
    let decided = p.wait_decided(4).await;
    assert_eq!(decided[3], ("complaint".into(), Some("complaint".into())));
    assert_eq!(user_row(&db, "carol").await, (false, false, true));
    let me = p.api.get("/api/v1/me", &carol).await;
    assert_eq!(me.body["email_stopped"], "complaint", "Carol is shown why");
    assert_eq!(me.body["settings"]["email_notifications"], false);

    p.api.send(&alice, &bob, "Again", "Still there?").await;
    p.api.send(&alice, &carol, "Again", "Still there?").await;
    eventually(WAIT, "both skipped", || async {
        let skipped: i64 = sqlx::query_scalar(
            "select count(*) from deliveries where status = 'skipped' \
             and reason in ('bounced', 'email_off')",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        skipped == 2
    })
    .await;
    assert_eq!(p.smtp.mails().len(), 2, "no email to either");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_webhook_keeps_mail_while_the_worker_is_down_and_only_with_the_secret(db: PgPool) {
    let mut p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    p.worker.take().unwrap().stop().await;

    let raw = gmail_reply(
        "bob@example.com",
        &n.reply_to,
        "CAB2@mail.gmail.com",
        &n.message_id,
        "Posted while the worker was away.",
    );
    let res = p.post_webhook("wrong-secret", &raw).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The webhook takes its secret as a bearer token or a basic-auth password; the refusal
    // says which secret, not "a valid bearer token".
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Basic"), "{challenge}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("webhook secret"), "{message}");
    // A body of a type it does not take: the refusal names the ones it does.
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/inbound/email", p.api.client.base))
        .bearer_auth(SECRET)
        .header("content-type", "image/png")
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = res.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("message/rfc822"), "{message}");
    let res = p.post_webhook(SECRET, &raw).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    assert_eq!(p.received().await, [("received".into(), None)], "kept");

    p.start_worker().await;
    assert_eq!(p.wait_decided(1).await, [("posted".into(), None)]);
    let bodies = p.thread_bodies(&alice, &n.thread).await;
    assert_eq!(
        bodies.last().unwrap(),
        &(
            "bob".to_owned(),
            "Posted while the worker was away.".to_owned()
        )
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_reply_accepted_by_a_worker_killed_before_reading_it_is_posted_once(db: PgPool) {
    let mut p = Platform::start(db.clone()).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    p.worker.take().unwrap().stop().await;
    // A worker process of its own receives the reply; its inbound queue is paused, so it has
    // accepted (250) but not read the message when it is killed.
    sqlx::query("insert into queue_controls (kind, paused) values ('inbound_mail', true)")
        .execute(&db)
        .await
        .unwrap();
    let url = database_url(&db).await;
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let extra = [
        ("CONVOS_REPLY_DOMAIN", DOMAIN),
        ("CONVOS_INBOUND_SMTP_ADDR", listen.as_str()),
        ("CONVOS_NOTIFY_DELAY_SECS", "0"),
    ];
    let mut doomed = WorkerProcess::spawn(WORKER_BIN, &p.config, &url, &extra);
    let listener_port: u16 = port.parse().unwrap();
    eventually(WAIT, "the doomed worker's listener", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", listener_port))
            .await
            .is_ok()
    })
    .await;
    let raw = gmail_reply(
        "bob@example.com",
        &n.reply_to,
        "CAB3@mail.gmail.com",
        &n.message_id,
        "Sent just before the crash.",
    );
    let saved = p.listener_port;
    p.listener_port = listener_port;
    p.send_smtp("bob@example.com", &n.reply_to, &raw).await;
    p.listener_port = saved;
    doomed.0.kill().expect("SIGKILL");
    doomed.0.wait().unwrap();
    assert_eq!(p.received().await, [("received".into(), None)], "kept");

    sqlx::query("delete from queue_controls where kind = 'inbound_mail'")
        .execute(&db)
        .await
        .unwrap();
    p.start_worker().await;
    assert_eq!(p.wait_decided(1).await, [("posted".into(), None)]);
    let bodies = p.thread_bodies(&alice, &n.thread).await;
    assert_eq!(
        bodies
            .iter()
            .filter(|(_, body)| body == "Sent just before the crash.")
            .count(),
        1,
        "posted exactly once: {bodies:?}"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_webhook_is_not_there_unless_configured(db: PgPool) {
    let config = StackConfig::new();
    let api = start_api(db, &config).await;
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/inbound/email", api.client.base))
        .bearer_auth(SECRET)
        .header("content-type", "message/rfc822")
        .body("From: a@b.c\r\n\r\nhi\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_email_the_worker_stopped_on_twice_waits_for_an_operator(db: PgPool) {
    // Whatever in a received email stops the worker (nothing catches a stack overflow) would
    // stop it again at each attempt, up to eight. Two attempts lost, the third reads nothing:
    // the job is dead and the email kept, for an operator to retry.
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    sqlx::query("insert into queue_controls (kind, paused) values ('inbound_mail', true)")
        .execute(&p.db)
        .await
        .unwrap();
    let reply = gmail_reply(
        "bob@example.com",
        &n.reply_to,
        "twice@x",
        &n.message_id,
        "Sounds good.",
    );
    assert_eq!(p.post_webhook(SECRET, &reply).await.status(), 202);
    // As the lost-job sweep leaves a job whose worker stopped twice.
    sqlx::query(
        "with job as (update jobs set state = 'retry', attempts = 2, next_run_at = now() \
                      where kind = 'inbound_mail' returning id) \
         insert into job_attempts (job_id, attempt, worker, started_at, finished_at, error) \
         select id, a, 'gone', now(), now(), \
                'lost: no outcome before the deadline (worker stopped?)' \
         from job cross join generate_series(1, 2) a",
    )
    .execute(&p.db)
    .await
    .unwrap();
    sqlx::query("update queue_controls set paused = false where kind = 'inbound_mail'")
        .execute(&p.db)
        .await
        .unwrap();

    let dead = || async {
        sqlx::query_scalar::<_, String>(
            "select last_error from jobs where kind = 'inbound_mail' and state = 'dead'",
        )
        .fetch_optional(&p.db)
        .await
        .unwrap()
    };
    eventually(WAIT, "the job dead", || async { dead().await.is_some() }).await;
    assert!(dead().await.unwrap().contains("stopped twice"));
    assert_eq!(p.received().await, [("received".into(), None)], "kept");
    assert_eq!(
        p.thread_bodies(&alice, &n.thread).await.len(),
        1,
        "not posted"
    );

    // An operator retries it (as `ops::retry` does a dead job): read as any other, and posted.
    sqlx::query(
        "update jobs set state = 'retry', next_run_at = now(), max_attempts = attempts + 8 \
         where kind = 'inbound_mail'",
    )
    .execute(&p.db)
    .await
    .unwrap();
    let decided = p.wait_decided(1).await;
    assert_eq!(decided[0].0, "posted");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn replies_by_email_count_against_the_days_volume(db: PgPool) {
    // One budget however one sends (decision 72): here a day's volume of 5,000, which a
    // short reply (about 2,100) fits and a second of 3,000 characters does not.
    let p = Platform::start_with(db, |s| s.send_bytes_per_day = 5_000).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let reply =
        |id: &str, text: &str| gmail_reply("bob@example.com", &n.reply_to, id, &n.message_id, text);
    p.send_smtp(
        "bob@example.com",
        &n.reply_to,
        reply("v1@x", "Sounds good."),
    )
    .await;
    assert_eq!(p.wait_decided(1).await, [("posted".into(), None)]);
    let long = "word ".repeat(600);
    p.send_smtp("bob@example.com", &n.reply_to, reply("v2@x", long.trim()))
        .await;
    assert_eq!(
        p.wait_decided(2).await,
        [
            ("posted".into(), None),
            ("refused".into(), Some("rate_limited".into()))
        ]
    );
    assert_eq!(p.thread_bodies(&alice, &n.thread).await.len(), 2);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_burst_of_refused_replies_gets_five_explanations_an_hour(db: PgPool) {
    // Thirty empty replies from Bob at once: each is refused and explainable, and the claims
    // of their explanations ran at once; each counted Bob's hour before any was written. (An
    // address takes 20 a day by default, by the webhook as by the listener.)
    let p = Platform::start_with(db, |s| s.inbound_per_address_per_day = 100).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let platform = &p;
    let posts = (0..30).map(|i| {
        let empty = gmail_reply(
            "bob@example.com",
            &n.reply_to,
            &format!("empty{i}@x"),
            &n.message_id,
            "",
        );
        async move { platform.post_webhook(SECRET, &empty).await.status() }
    });
    for status in futures::future::join_all(posts).await {
        assert_eq!(status, 202);
    }

    let decided = p.wait_decided(30).await;
    assert!(decided.iter().all(|(_, r)| r.as_deref() == Some("empty")));
    p.nth_mail(6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        p.smtp.mails().len(),
        6,
        "the notification and five explanations"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn someone_who_turned_email_off_gets_no_explanation(db: PgPool) {
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    // Bob turns email off, then answers the notification he had, with nothing in it.
    sqlx::query("update users set email_notifications = false where username = 'bob'")
        .execute(&p.db)
        .await
        .unwrap();
    let empty = gmail_reply("bob@example.com", &n.reply_to, "off@x", &n.message_id, "");
    p.send_smtp("bob@example.com", &n.reply_to, &empty).await;

    let decided = p.wait_decided(1).await;
    assert_eq!(decided[0], ("refused".into(), Some("empty".into())));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.smtp.mails().len(), 1, "only the notification");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn hostile_message_ids_and_reports_are_decided_never_left_dying(db: PgPool) {
    // PostgreSQL text holds no NUL: one in a reply's Message-ID (raw or encoded) or in a
    // bounce's diagnostic failed every attempt of its job, which died and left the email
    // undecided, never purged; one in the webhook's recipient field answered 500. A Message-ID
    // of 6,000 characters was posted, then could not be recorded (over the unique index's row
    // size) on every retry.
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let reply =
        |id: &str, text: &str| gmail_reply("bob@example.com", &n.reply_to, id, &n.message_id, text);
    let mut seed = 7u64;
    let long_id: String = (0..6_000)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(seed >> 33) as usize % 36])
        })
        .collect();
    let raw_nul = reply("a\0b@example.com", "One.");
    let encoded_nul = reply("c@example.com", "Two.").replace(
        "Message-ID: <c@example.com>",
        "Message-ID: =?utf-8?q?c=00d?=",
    );
    let long = reply(&format!("{long_id}@example.com"), "Three.");
    for raw in [&raw_nul, &encoded_nul, &long] {
        p.send_smtp("bob@example.com", &n.reply_to, raw).await;
    }
    let posted = ("posted".to_owned(), None);
    assert_eq!(p.wait_decided(3).await, vec![posted.clone(); 3]);

    // As Mailgun posts, with a NUL in its recipient field: kept for the genuine `To`.
    let form = format!(
        "--b0\r\nContent-Disposition: form-data; name=\"recipient\"\r\n\r\na\0b@x.test\r\n\
         --b0\r\nContent-Disposition: form-data; name=\"body-mime\"\r\n\r\n{}\r\n--b0--\r\n",
        reply("webhook@example.com", "Four.")
    );
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/inbound/email", p.api.client.base))
        .bearer_auth(SECRET)
        .header("content-type", "multipart/form-data; boundary=b0")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(p.wait_decided(4).await[3], posted);
    let bodies: Vec<String> = p
        .thread_bodies(&alice, &n.thread)
        .await
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(bodies[1..], ["One.", "Two.", "Three.", "Four."]);

    // A hard bounce whose diagnostic holds a NUL is recorded, and stops email.
    let bounce_to = n.mail.from.clone();
    let bounce = dsn(&bounce_to, &n.message_id, "5.1.1", "failed")
        .replace("mailbox unavailable", "mailbox\0unavailable");
    p.send_smtp("", &bounce_to, &bounce).await;
    assert_eq!(
        p.wait_decided(5).await[4],
        ("bounce".into(), Some("hard_bounce".into()))
    );
    assert!(
        user_row(&p.db, "bob").await.0,
        "the address is marked bounced"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn answering_an_email_reads_the_thread_up_to_the_message_it_answers(db: PgPool) {
    // Answering by email marked the whole thread read: a message written after the email
    // being answered, which its reader never saw, was marked read and its notification
    // skipped as already read.
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let later = p.api.reply(&alice, &n.thread, "Or at one?").await;
    let raw = gmail_reply(
        "bob@example.com",
        &n.reply_to,
        "answer@example.com",
        &n.message_id,
        "Noon works.",
    );
    p.send_smtp("bob@example.com", &n.reply_to, &raw).await;
    assert_eq!(p.wait_decided(1).await, [("posted".into(), None)]);
    // The thread is read after the reply is recorded posted.
    let page = format!("/api/v1/threads/{}/messages?order=asc", n.thread);
    eventually(WAIT, "the answered message read", || async {
        p.api.get(&page, &bob).await.body["items"][0]["is_read"] == true
    })
    .await;

    let thread = p
        .api
        .get(&format!("/api/v1/threads/{}", n.thread), &bob)
        .await;
    assert_eq!(thread.body["unread_count"], 1, "{:?}", thread.body);
    let unseen = p
        .api
        .get(
            &format!("/api/v1/messages/{}", later["id"].as_str().unwrap()),
            &bob,
        )
        .await;
    assert_eq!(unseen.body["is_read"], false, "{:?}", unseen.body);
    let page = p
        .api
        .get(
            &format!("/api/v1/threads/{}/messages?order=asc", n.thread),
            &bob,
        )
        .await;
    assert_eq!(
        page.body["items"][0]["is_read"], true,
        "the message answered"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_reply_posted_by_an_attempt_that_could_not_record_it_is_recorded_posted(db: PgPool) {
    // The post and its record are two statements. An attempt that posted and then failed to
    // record ran every check again on its retry: after a revocation in between it recorded
    // "refused: revoked" and told the author "not posted" about a reply in the thread.
    let p = Platform::start(db.clone()).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    // Recording a reply as posted fails while the flag is there.
    for statement in [
        "create table fail_posted_records (on_ bool)",
        "insert into fail_posted_records values (true)",
        "create function fail_posted_record() returns trigger language plpgsql as $$ \
         begin if new.status = 'posted' and exists (select 1 from fail_posted_records) then \
         raise exception 'the record fails'; end if; return new; end $$",
        "create trigger fail_posted_record before update on inbound_mail \
         for each row execute function fail_posted_record()",
    ] {
        sqlx::query(statement).execute(&db).await.unwrap();
    }
    let raw = gmail_reply(
        "bob@example.com",
        &n.reply_to,
        "posted-once@example.com",
        &n.message_id,
        "Noon works.",
    );
    p.send_smtp("bob@example.com", &n.reply_to, &raw).await;
    eventually(WAIT, "the reply posted", || async {
        p.thread_bodies(&alice, &n.thread).await.len() == 2
    })
    .await;
    let revoked = p.api.delete("/api/v1/me/reply-addresses", &bob).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{revoked:?}");
    sqlx::query("delete from fail_posted_records")
        .execute(&db)
        .await
        .unwrap();

    assert_eq!(p.wait_decided(1).await, [("posted".into(), None)]);
    assert_eq!(
        p.thread_bodies(&alice, &n.thread).await.len(),
        2,
        "posted once"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let told: Vec<_> = p
        .smtp
        .mails()
        .into_iter()
        .filter(|m| m.to == ["bob@example.com"] && m.raw.contains("Not posted"))
        .collect();
    assert!(told.is_empty(), "bob was told \"not posted\": {told:?}");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_reply_whose_text_cannot_be_decoded_is_explained_as_such(db: PgPool) {
    // Broken base64 was read as an empty text: the reply was refused as empty, and its author
    // told that nothing was left once the quote was removed.
    let p = Platform::start(db).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let raw = format!(
        "From: Bob <bob@example.com>\r\nTo: {to}\r\nSubject: Re: [Convos] Lunch on Friday?\r\n\
         Message-ID: <broken64@example.com>\r\nIn-Reply-To: {id}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         !!!! this is not base64 ????\r\n",
        to = n.reply_to,
        id = n.message_id,
    );
    p.send_smtp("bob@example.com", &n.reply_to, &raw).await;
    assert_eq!(
        p.wait_decided(1).await,
        [("refused".into(), Some("undecodable".into()))]
    );
    let told = p.nth_mail(2).await;
    assert!(told.raw.contains("could not be decoded"), "{}", told.raw);
}

/// `PUT /api/v1/me/email` as `user`, whose password is the test kit's.
async fn move_address(p: &Platform, user: &TestUser, email: &str) {
    let moved = p
        .api
        .call(
            reqwest::Method::PUT,
            "/api/v1/me/email",
            Some(&user.token),
            Some(serde_json::json!({
                "email": email,
                "password": format!("password-{}", user.username),
            })),
        )
        .await;
    assert_eq!(moved.status, StatusCode::ACCEPTED, "{moved:?}");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn reports_about_mail_to_an_address_the_account_left_are_ignored(db: PgPool) {
    // Decision 77: a late bounce or a complaint about the old mailbox marked the new address
    // bounced or turned email off, and whoever reads the old mailbox later could forge one.
    let p = Platform::start(db.clone()).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    let n = alice_writes_to_bob(&p, &alice, &bob, 1).await;
    let bounce_to = n.mail.from.clone();
    // An earlier soft bounce about the old mailbox is on record.
    p.send_smtp(
        "",
        &bounce_to,
        dsn(&bounce_to, &n.message_id, "4.2.2", "failed"),
    )
    .await;
    p.wait_decided(1).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    move_address(&p, &bob, "bob@new.example").await;
    p.api.verify_email(&bob).await;

    p.send_smtp(
        "",
        &bounce_to,
        &dsn(&bounce_to, &n.message_id, "5.1.1", "failed"),
    )
    .await;
    let decided = p.wait_decided(2).await;
    assert_eq!(decided[1], ("ignored".into(), Some("old_address".into())));
    assert_eq!(user_row(&db, "bob").await, (false, true, false));
    let recent: i64 =
        convos_store::inbound::recent_soft_bounces(&db, bob.id.parse().unwrap(), None)
            .await
            .unwrap();
    assert_eq!(
        recent, 0,
        "the old mailbox's soft bounces count for nothing now"
    );

    // The new mailbox still gets its email.
    p.api.send(&alice, &bob, "Again", "New address?").await;
    let mail = p.nth_mail(2).await;
    assert_eq!(mail.to, ["bob@new.example"]);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn what_someone_writes_while_moving_address_is_still_emailed_to_others(db: PgPool) {
    // A moved account's address is unconfirmed until its link is followed, but the account
    // proved one before: its messages are not held back as an unverified sender's.
    let p = Platform::start(db.clone()).await;
    let alice = p.api.user("alice").await;
    let bob = p.api.user("bob").await;
    move_address(&p, &bob, "bob@new.example").await;
    p.api
        .send(&bob, &alice, "Hello", "Writing from my new address")
        .await;
    let mail = p.nth_mail(1).await;
    assert_eq!(mail.to, ["alice@example.com"]);
}
