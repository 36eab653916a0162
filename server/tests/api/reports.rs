//! Reports: a recipient shows the operators a message, which keeps its copy; the operators
//! work through the queue and answer, on the record.

use convos_testkit::{TestServer, TestUser};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn report(
    app: &TestServer,
    who: &TestUser,
    message: &Value,
    body: Value,
) -> convos_testkit::Answer {
    let id = message["id"].as_str().unwrap();
    app.post(&format!("/api/v1/messages/{id}/report"), who, body)
        .await
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_reported_message_reaches_the_operators_with_its_copy_until_they_answer(db: PgPool) {
    // A person harassed had nobody to show it to: blocking stops the sender, but nothing
    // reached the operators, who could not know which account to suspend.
    let app = TestServer::spawn(db).await;
    let (vera, mallory) = (app.user("vera").await, app.user("mallory").await);
    let ops = app.admin("opal").await;
    let sent = app
        .send(&mallory, &vera, "hey", "I know where you live")
        .await;

    let made = report(
        &app,
        &vera,
        &sent,
        json!({"reason": "harassment", "note": "third this week"}),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    assert_eq!(made.body["reason"], "harassment");
    assert_eq!(made.body["resolved"], false);
    let again = report(&app, &vera, &sent, json!({"reason": "spam"})).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["id"], made.body["id"], "the first report");
    // Deleting her copy takes nothing from the operators.
    let id = sent["id"].as_str().unwrap();
    let deleted = app.delete(&format!("/api/v1/messages/{id}"), &vera).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    let queue = app.get("/api/v1/admin/reports", &ops).await;
    assert_eq!(queue.status, StatusCode::OK, "{queue:?}");
    let item = &queue.body["items"][0];
    assert_eq!(queue.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(item["reporter"], "vera");
    assert_eq!(item["reported"], "mallory");
    assert_eq!(item["reported_open_reports"], 1);
    assert_eq!(item["reported_suspended"], false);
    assert_eq!(item["subject"], "hey");
    assert_eq!(item["body"], "I know where you live");
    assert_eq!(item["note"], "third this week");
    assert_eq!(item["message_id"], sent["id"]);
    assert_eq!(item["resolution"], Value::Null);
    for outsider in [&vera, &mallory] {
        let hidden = app.get("/api/v1/admin/reports", outsider).await;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND, "admins only");
    }

    let report_id = item["id"].as_str().unwrap();
    let answered = app
        .post(
            &format!("/api/v1/admin/reports/{report_id}/resolve"),
            &ops,
            json!({"resolution": "actioned", "note": "suspended"}),
        )
        .await;
    assert_eq!(answered.status, StatusCode::OK, "{answered:?}");
    assert_eq!(answered.body["resolution"], "actioned");
    assert_eq!(answered.body["resolved_by"], "opal");
    let open = app.get("/api/v1/admin/reports", &ops).await;
    assert_eq!(open.body["items"], json!([]), "out of the open queue");
    let resolved = app.get("/api/v1/admin/reports?state=resolved", &ops).await;
    assert_eq!(resolved.body["items"][0]["id"], report_id);
    let audit = app.get("/api/v1/admin/audit", &ops).await;
    assert_eq!(audit.body["items"][0]["action"], "resolve_report");
    assert_eq!(audit.body["items"][0]["target"], report_id);
    let seen_by_vera = report(&app, &vera, &sent, json!({"reason": "spam"})).await;
    assert_eq!(seen_by_vera.body["resolved"], true);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn only_a_messages_recipient_reports_it_and_says_why(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let (vera, mallory) = (app.user("vera").await, app.user("mallory").await);
    let carol = app.user("carol").await;
    let sent = app.send(&mallory, &vera, "hey", "hello").await;

    for who in [&mallory, &carol] {
        let refused = report(&app, who, &sent, json!({"reason": "spam"})).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{refused:?}");
        assert_eq!(refused.code(), "not_found");
    }
    let unknown = app
        .post(
            "/api/v1/messages/0191d5c6-0000-7000-8000-000000000000/report",
            &vera,
            json!({"reason": "spam"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for (body, field) in [
        (json!({}), "reason"),
        (json!({"reason": "rude"}), "reason"),
        (json!({"reason": "other", "note": "n".repeat(501)}), "note"),
    ] {
        let bad = report(&app, &vera, &sent, body).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert!(!bad.field(field).is_empty(), "{bad:?}");
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from reports")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_read_once_message_is_reported_with_its_body_until_the_purge_erases_it(db: PgPool) {
    // Disappearing messages are a harasser's favourite: once read, the body goes at the next
    // purge. A report made before keeps it; one made after says it was erased.
    let app = TestServer::spawn(db).await;
    let (vera, mallory) = (app.user("vera").await, app.user("mallory").await);
    let ops = app.admin("opal").await;
    let mut sent = Vec::new();
    for n in 0..2 {
        let message = app
            .post(
                "/api/v1/messages",
                &mallory,
                json!({"recipient": "vera", "subject": format!("once {n}"),
                       "body": format!("gone soon {n}"), "read_once": true}),
            )
            .await;
        assert_eq!(message.status, StatusCode::CREATED, "{message:?}");
        let id = message.body["id"].as_str().unwrap().to_owned();
        let opened = app.get(&format!("/api/v1/messages/{id}"), &vera).await;
        assert_eq!(opened.body["body"], format!("gone soon {n}"));
        sent.push(message.body);
    }
    let before = report(&app, &vera, &sent[0], json!({"reason": "harassment"})).await;
    assert_eq!(before.status, StatusCode::CREATED, "{before:?}");
    let purged = convos_store::purge::run(&app.db, 100).await.unwrap();
    assert_eq!(purged.consumed, 2);
    let after = report(&app, &vera, &sent[1], json!({"reason": "harassment"})).await;
    assert_eq!(after.status, StatusCode::CREATED, "{after:?}");

    let queue = app.get("/api/v1/admin/reports", &ops).await;
    let bodies: Vec<&Value> = queue.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["body"])
        .collect();
    assert_eq!(bodies, [&json!("gone soon 0"), &Value::Null]);
    assert_eq!(queue.body["items"][1]["subject"], "once 1");
    assert_eq!(queue.body["items"][0]["reported_open_reports"], 2);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn one_account_makes_at_most_twenty_reports_a_day(db: PgPool) {
    // Each report keeps a copy of up to 64,000 characters for 90 days after its answer, and
    // fills the operators' queue: a free account reporting everything it received would do
    // both without end.
    let app = TestServer::spawn(db).await;
    let (vera, mallory) = (app.user("vera").await, app.user("mallory").await);
    let sent = app.send(&mallory, &vera, "hey", "hello").await;
    sqlx::query(
        "insert into reports (id, reporter_id, reporter_username, reported_id, \
           reported_username, message_id, thread_id, reason, subject, sent_at, created_at) \
         select gen_random_uuid(), u.id, 'vera', u.id, 'x', gen_random_uuid(), \
                gen_random_uuid(), 'spam', 's', now(), now() - interval '23 hours' \
         from users u, generate_series(1, 20) where u.username = 'vera'",
    )
    .execute(&app.db)
    .await
    .unwrap();

    let refused = report(&app, &vera, &sent, json!({"reason": "spam"})).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (3_000..=3_601).contains(&wait),
        "an hour until one is a day old: {wait}"
    );

    sqlx::query("update reports set created_at = created_at - interval '1 hour'")
        .execute(&app.db)
        .await
        .unwrap();
    let made = report(&app, &vera, &sent, json!({"reason": "spam"})).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_resolved_report_and_its_copy_go_ninety_days_after_the_answer(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let (vera, mallory) = (app.user("vera").await, app.user("mallory").await);
    let ops = app.admin("opal").await;
    for n in 0..3 {
        let sent = app.send(&mallory, &vera, &format!("s{n}"), "spam").await;
        let made = report(&app, &vera, &sent, json!({"reason": "spam"})).await;
        assert_eq!(made.status, StatusCode::CREATED);
        if n < 2 {
            let id = made.body["id"].as_str().unwrap();
            let path = format!("/api/v1/admin/reports/{id}/resolve");
            let answered = app
                .post(&path, &ops, json!({"resolution": "dismissed"}))
                .await;
            assert_eq!(answered.status, StatusCode::OK);
        }
    }
    // One answer is 91 days old, the other 89.
    sqlx::query(
        "update reports set resolved_at = now() - make_interval(days => \
           case when subject = 's0' then 91 else 89 end) where resolved_at is not null",
    )
    .execute(&app.db)
    .await
    .unwrap();
    convos_store::purge::old_records(&app.db, Default::default())
        .await
        .unwrap();
    let left: Vec<String> = sqlx::query_scalar("select subject from reports order by subject")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(left, ["s1", "s2"], "the open one stays, whatever its age");
}
