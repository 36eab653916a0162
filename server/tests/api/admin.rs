//! Operator routes: admins only, audited, and telling the truth about the ledger.

use convos_testkit::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

/// Inserts a job row directly, in a given state.
async fn job(app: &TestServer, kind: &str, state: &str, sql_extra: &str) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "insert into jobs (id, kind, key, payload, state, max_attempts, attempts, last_error, \
           next_run_at, finished_at) \
         values ($1, $2, $1::text, '{}', $3, 3, 0, null, now(), null)",
    )
    .bind(id)
    .bind(kind)
    .bind(state)
    .execute(&app.db)
    .await
    .unwrap();
    if !sql_extra.is_empty() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "update jobs set {sql_extra} where id = $1"
        )))
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap();
    }
    id
}

/// What a worker counted for the queue board when `succeeded` jobs of `kind` ended and
/// `failed` attempts failed, `age` ago (decision 49).
async fn counted(app: &TestServer, kind: &str, age: &str, succeeded: i64, failed: i64) {
    sqlx::query(
        "insert into job_outcome_counts (kind, minute, counted_by, succeeded, failed) \
         values ($1, date_trunc('minute', now() - $2::interval), 'w', $3, $4) \
         on conflict (kind, minute, counted_by) do update \
           set succeeded = job_outcome_counts.succeeded + excluded.succeeded, \
               failed = job_outcome_counts.failed + excluded.failed",
    )
    .bind(kind)
    .bind(age)
    .bind(succeeded)
    .bind(failed)
    .execute(&app.db)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn everyone_but_admins_gets_404_on_every_admin_route(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let bob = app.user("bob").await;
    let id = "0191d5c6-0000-7000-8000-000000000000";
    let routes = [
        (Method::GET, "/api/v1/admin/queues".to_owned()),
        (
            Method::POST,
            "/api/v1/admin/queues/deliver/pause".to_owned(),
        ),
        (
            Method::POST,
            "/api/v1/admin/queues/deliver/resume".to_owned(),
        ),
        (Method::GET, "/api/v1/admin/jobs".to_owned()),
        (Method::GET, format!("/api/v1/admin/jobs/{id}")),
        (Method::POST, format!("/api/v1/admin/jobs/{id}/retry")),
        (Method::POST, format!("/api/v1/admin/jobs/{id}/discard")),
        (Method::POST, "/api/v1/admin/jobs/retry".to_owned()),
        (Method::POST, "/api/v1/admin/jobs/discard".to_owned()),
        (Method::GET, "/api/v1/admin/audit".to_owned()),
    ];
    let missing = app
        .call(Method::GET, "/api/v1/no-such-route", Some(&bob.token), None)
        .await;
    for (method, path) in &routes {
        let body = (method == Method::POST).then(|| json!({"queue": "deliver", "state": "dead"}));
        let res = app.call(method.clone(), path, Some(&bob.token), body).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(
            res.body, missing.body,
            "looks like a route that does not exist"
        );
    }
    let paused: i64 = sqlx::query_scalar("select count(*) from queue_controls")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(paused, 0, "nothing was paused");
    let audited: i64 = sqlx::query_scalar("select count(*) from audit_log")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(audited, 0);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_board_counts_a_scripted_mix_of_jobs(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let root = app.admin("rooney").await;
    job(
        &app,
        "notify_email",
        "pending",
        "next_run_at = now() - interval '90 seconds'",
    )
    .await;
    job(&app, "notify_email", "pending", "").await;
    job(
        &app,
        "notify_email",
        "pending",
        "next_run_at = now() + interval '2 minutes'",
    )
    .await;
    job(
        &app,
        "notify_email",
        "retry",
        "next_run_at = now() + interval '30 seconds', attempts = 1",
    )
    .await;
    job(&app, "notify_email", "running", "attempts = 1").await;
    job(
        &app,
        "notify_email",
        "done",
        "finished_at = now() - interval '10 minutes'",
    )
    .await;
    job(
        &app,
        "notify_email",
        "skipped",
        "finished_at = now() - interval '3 hours'",
    )
    .await;
    job(
        &app,
        "notify_email",
        "done",
        "finished_at = now() - interval '3 days'",
    )
    .await;
    let dead = job(
        &app,
        "notify_email",
        "dead",
        "attempts = 3, last_error = 'smtp: refused'",
    )
    .await;
    for (attempt, age) in [(1, "2 minutes"), (2, "2 hours"), (3, "2 days")] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "insert into job_attempts (job_id, attempt, worker, started_at, finished_at, error) \
             values ($1, $2, 'w', now() - interval '{age}', now() - interval '{age}', 'smtp: refused')"
        )))
        .bind(dead)
        .bind(attempt)
        .execute(&app.db)
        .await
        .unwrap();
    }
    job(&app, "deliver", "done", "finished_at = now()").await;
    // What the workers counted as those ended: the board sums these, not the rows.
    counted(&app, "notify_email", "10 minutes", 1, 0).await;
    counted(&app, "notify_email", "3 hours", 1, 0).await;
    counted(&app, "notify_email", "3 days", 1, 0).await;
    for age in ["2 minutes", "2 hours", "2 days"] {
        counted(&app, "notify_email", age, 0, 1).await;
    }
    counted(&app, "deliver", "0 minutes", 1, 0).await;

    let res = app.get("/api/v1/admin/queues", &root).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let queues = res.body["queues"].as_array().unwrap();
    let notify = queues.iter().find(|q| q["name"] == "notify_email").unwrap();
    assert_eq!(notify["pending"], 2);
    assert_eq!(notify["scheduled"], 2);
    assert_eq!(notify["running"], 1);
    assert_eq!(notify["succeeded_1h"], 1);
    assert_eq!(notify["succeeded_24h"], 2);
    assert_eq!(notify["failed_1h"], 1);
    assert_eq!(notify["failed_24h"], 2);
    assert_eq!(notify["dead"], 1);
    let age = notify["oldest_pending_secs"].as_f64().unwrap();
    assert!((89.0..120.0).contains(&age), "{age}");
    assert_eq!(notify["paused"], false);
    let deliver = queues.iter().find(|q| q["name"] == "deliver").unwrap();
    assert_eq!(deliver["succeeded_1h"], 1);
    assert_eq!(deliver["pending"], 0);
    assert!(queues.iter().any(|q| q["name"] == "purge_expired"));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn retry_and_discard_touch_exactly_what_they_name_and_are_audited(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let root = app.admin("rooney").await;
    let dead_mail: Vec<_> = [
        job(&app, "notify_email", "dead", "attempts = 3").await,
        job(&app, "notify_email", "dead", "attempts = 3").await,
        job(&app, "notify_email", "dead", "attempts = 3").await,
    ]
    .to_vec();
    let dead_event = job(&app, "deliver", "dead", "attempts = 3").await;
    let done_mail = job(&app, "notify_email", "done", "finished_at = now()").await;

    let one = app
        .act(&format!("/api/v1/admin/jobs/{}/retry", dead_mail[0]), &root)
        .await;
    assert_eq!(one.body["affected"], 1);
    let detail = app
        .get(&format!("/api/v1/admin/jobs/{}", dead_mail[0]), &root)
        .await;
    assert_eq!(detail.body["state"], "retry");
    assert_eq!(
        detail.body["max_attempts"],
        3 + 8,
        "a fresh notify_email budget on top of the attempts used"
    );

    let discarded = app
        .act(
            &format!("/api/v1/admin/jobs/{}/discard", dead_mail[1]),
            &root,
        )
        .await;
    assert_eq!(discarded.body["affected"], 1);
    let board = app.get("/api/v1/admin/queues", &root).await;
    let notify = board.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "notify_email")
        .unwrap()
        .clone();
    assert_eq!(notify["dead"], 1, "discarding leaves the dead count");

    let bulk = app
        .post(
            "/api/v1/admin/jobs/retry",
            &root,
            json!({"queue": "notify_email", "state": "dead"}),
        )
        .await;
    assert_eq!(
        bulk.body["affected"], 1,
        "only the remaining dead notify_email job"
    );
    let states: Vec<(uuid::Uuid, String)> = sqlx::query_as("select id, state from jobs")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let state = |id: uuid::Uuid| states.iter().find(|(i, _)| *i == id).unwrap().1.clone();
    assert_eq!(state(dead_mail[2]), "retry");
    assert_eq!(state(dead_event), "dead", "another queue is untouched");
    assert_eq!(state(done_mail), "done");
    assert_eq!(state(dead_mail[1]), "discarded");

    let bad = app
        .post("/api/v1/admin/jobs/retry", &root, json!({"state": "dead"}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.field("queue").contains("required"));

    let audit = app.get("/api/v1/admin/audit", &root).await;
    let actions: Vec<(String, String, i64)> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["actor"].as_str().unwrap().to_owned(),
                a["action"].as_str().unwrap().to_owned(),
                a["affected"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("rooney".to_owned(), "retry".to_owned(), 1),
            ("rooney".to_owned(), "discard".to_owned(), 1),
            ("rooney".to_owned(), "retry".to_owned(), 1),
        ]
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn pausing_and_resuming_a_queue_shows_on_the_board_and_in_the_audit(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let root = app.admin("rooney").await;
    let paused = app
        .act("/api/v1/admin/queues/notify_email/pause", &root)
        .await;
    assert_eq!(paused.status, StatusCode::OK);
    assert_eq!(paused.body["paused"], true);
    let resumed = app
        .act("/api/v1/admin/queues/notify_email/resume", &root)
        .await;
    assert_eq!(resumed.body["paused"], false);
    let unknown = app.act("/api/v1/admin/queues/nonsense/pause", &root).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let audit = app.get("/api/v1/admin/audit", &root).await;
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(audit.body["items"][0]["action"], "resume");
    assert_eq!(audit.body["items"][0]["target"], "queue notify_email");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn every_job_for_one_message_or_one_recipient_in_one_call(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let root = app.admin("rooney").await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let m = app.send(&alice, &bob, "Why no email?", "hello").await;
    app.send(&alice, &carol, "Other", "x").await;
    let id = m["id"].as_str().unwrap();
    let for_message = app
        .get(&format!("/api/v1/admin/jobs?message_id={id}"), &root)
        .await;
    let mut kinds: Vec<&str> = for_message.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["deliver", "notify_email"]);
    let for_bob = app
        .get("/api/v1/admin/jobs?user=bob&queue=notify_email", &root)
        .await;
    assert_eq!(for_bob.ids().len(), 1, "bob's email job only");
    let detail = app
        .get(&format!("/api/v1/admin/jobs/{}", for_bob.ids()[0]), &root)
        .await;
    assert_eq!(detail.body["payload"]["recipient_id"], bob.id);
    assert_eq!(detail.body["attempts_history"], json!([]));
    let bad = app.get("/api/v1/admin/jobs?state=sleeping", &root).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let nobody = app.get("/api/v1/admin/jobs?user=nobody", &root).await;
    assert_eq!(nobody.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn metrics_parse_as_prometheus_text_and_the_queue_gauges_match_the_board(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.server_metrics_addr = Some("127.0.0.1:0".parse().unwrap())
    })
    .await;
    let root = app.admin("rooney").await;
    job(&app, "notify_email", "dead", "attempts = 3").await;
    job(
        &app,
        "notify_email",
        "pending",
        "next_run_at = now() + interval '1 minute'",
    )
    .await;
    job(&app, "deliver", "done", "finished_at = now()").await;
    let board = app.get("/api/v1/admin/queues", &root).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.metrics_base.as_ref().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = convos_testkit::parse_metrics(&text);
    for q in board.body["queues"].as_array().unwrap() {
        let name = q["name"].as_str().unwrap();
        for state in ["pending", "scheduled", "running", "dead"] {
            let series = format!("convos_queue_jobs{{queue=\"{name}\",state=\"{state}\"}}");
            assert_eq!(
                metrics.get(&series),
                Some(&q[state].as_f64().unwrap()),
                "{series}"
            );
        }
        let ok = format!("convos_queue_succeeded{{queue=\"{name}\",window=\"1h\"}}");
        assert_eq!(metrics[&ok], q["succeeded_1h"].as_f64().unwrap());
    }
    let route =
        r#"convos_http_requests_total{method="GET",route="/api/v1/admin/queues",status="200"}"#;
    assert_eq!(metrics.get(route), Some(&1.0), "{text}");
    assert!(metrics.contains_key(
        r#"convos_http_request_duration_seconds_count{method="GET",route="/api/v1/admin/queues"}"#
    ));
    assert_eq!(metrics.get("convos_sse_connections_open"), Some(&0.0));
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_bulk_filter_with_an_unknown_field_is_refused_rather_than_widened(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let root = app.admin("rooney").await;
    let dead = job(&app, "notify_email", "dead", "attempts = 3").await;
    let res = app
        .post(
            "/api/v1/admin/jobs/retry",
            &root,
            json!({"queue": "notify_email", "user": "bob"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{res:?}");
    let state: String = sqlx::query_scalar("select state from jobs where id = $1")
        .bind(dead)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(state, "dead", "nothing was retried");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_job_text_filter_matches_percent_and_underscore_literally(db: PgPool) {
    // Arrange: errors that differ only where `%` and `_` would act as wildcards.
    let app = TestServer::spawn(db).await;
    let root = app.admin("rooney").await;
    let literal = job(
        &app,
        "notify_email",
        "dead",
        "last_error = 'disk 100% full'",
    )
    .await;
    job(
        &app,
        "notify_email",
        "dead",
        "last_error = 'disk 1000 full'",
    )
    .await;
    let underscore = job(&app, "notify_email", "dead", "last_error = 'no_such_user'").await;
    job(&app, "notify_email", "dead", "last_error = 'noXsuchXuser'").await;
    let backslash = job(&app, "notify_email", "dead", r"last_error = 'path a\b'").await;

    // Act and assert
    for (q, expected) in [
        ("100%25%20full", literal),
        ("no_such", underscore),
        ("a%5Cb", backslash),
    ] {
        let res = app.get(&format!("/api/v1/admin/jobs?q={q}"), &root).await;
        assert_eq!(res.status, StatusCode::OK, "{q}: {res:?}");
        assert_eq!(res.ids(), [expected.to_string()], "{q}");
    }
    let percent = app.get("/api/v1/admin/jobs?q=%25", &root).await;
    assert_eq!(
        percent.ids(),
        [literal.to_string()],
        "a lone % is a character, not 'anything'"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_bulk_action_walks_every_window_and_goes_on_from_a_cursor(db: PgPool) {
    // More dead emails than two windows of a bulk action (decision 67).
    let app = TestServer::spawn(db).await;
    let root = app.admin("rooney").await;
    sqlx::query(
        "insert into jobs (id, kind, key, payload, state, max_attempts, attempts, next_run_at) \
         select convos_uuidv7(now() - g * interval '1 ms'), 'notify_email', 'dead:' || g, '{}', \
                'dead', 3, 3, now() \
         from generate_series(1, 12000) g",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let page = app
        .get(
            "/api/v1/admin/jobs?queue=notify_email&state=dead&limit=100",
            &root,
        )
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();

    // From a cursor (here a page's): only the jobs older than it, every window of them, in as
    // many requests as the time each may take allows (one, on an idle machine).
    let (mut discarded, mut cursor) = (0, Value::from(cursor));
    while !cursor.is_null() {
        let older = app
            .post(
                "/api/v1/admin/jobs/discard",
                &root,
                json!({"queue": "notify_email", "state": "dead", "cursor": cursor}),
            )
            .await;
        assert_eq!(older.status, StatusCode::OK, "{older:?}");
        discarded += older.body["affected"].as_u64().unwrap();
        cursor = older.body["next_cursor"].clone();
    }
    assert_eq!(discarded, 11_900);
    let rest = app
        .post(
            "/api/v1/admin/jobs/retry",
            &root,
            json!({"queue": "notify_email", "state": "dead"}),
        )
        .await;
    assert_eq!(rest.body["affected"], 100, "the newest, before the cursor");
    assert_eq!(rest.body["next_cursor"], Value::Null);

    let forged = app
        .post(
            "/api/v1/admin/jobs/retry",
            &root,
            json!({"queue": "notify_email", "state": "dead", "cursor": "not-ours"}),
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        forged.field("cursor").contains("not a cursor"),
        "{forged:?}"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn an_unknown_queue_is_refused_naming_every_queue(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let root = app.admin("rooney").await;
    let res = app.get("/api/v1/admin/jobs?queue=nope", &root).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A probe found two of the six queues missing from the list.
    for kind in convos_core::jobs::JobKind::ALL {
        assert!(res.field("queue").contains(kind.as_str()), "{res:?}");
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_job_text_filter_with_nul_or_too_long_is_refused_on_field_q(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let root = app.admin("rooney").await;
    job(&app, "notify_email", "dead", "last_error = 'boom'").await;

    let nul = app.get("/api/v1/admin/jobs?q=bo%00om", &root).await;
    assert_eq!(nul.status, StatusCode::UNPROCESSABLE_ENTITY, "{nul:?}");
    assert!(nul.field("q").contains("without NUL"), "{nul:?}");
    let long = app
        .get(&format!("/api/v1/admin/jobs?q={}", "x".repeat(201)), &root)
        .await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY, "{long:?}");
    assert!(long.field("q").contains("at most 200"), "{long:?}");
    let bulk = app
        .post(
            "/api/v1/admin/jobs/discard",
            &root,
            json!({"queue": "notify_email", "state": "dead", "q": "bo\u{0}om"}),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::UNPROCESSABLE_ENTITY, "{bulk:?}");
    assert_eq!(bulk.code(), "validation_failed");

    let fine = app.get("/api/v1/admin/jobs?q=boom", &root).await;
    assert_eq!(fine.ids().len(), 1, "{fine:?}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn an_operator_suspends_an_account_which_then_cannot_log_in_until_lifted(db: PgPool) {
    // Against an abusive account an operator had nothing short of SQL (a trust and safety
    // probe): no suspension, no way to end its sessions.
    let app = TestServer::spawn(db).await;
    let rooney = app.admin("rooney").await;
    let mallory = app.user("mallory").await;
    let bob = app.user("bob").await;
    let login = |password: &'static str| {
        let client = app.client.clone();
        async move {
            client
                .call(
                    reqwest::Method::POST,
                    "/api/v1/sessions",
                    None,
                    Some(json!({"username": "mallory", "password": password})),
                )
                .await
        }
    };

    let refused = app.act("/api/v1/admin/users/mallory/suspend", &bob).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "admins only");
    let done = app
        .act("/api/v1/admin/users/Mallory/suspend", &rooney)
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert_eq!(done.body["sessions_ended"], 1);

    assert_eq!(
        app.get("/api/v1/me", &mallory).await.status,
        StatusCode::UNAUTHORIZED
    );
    let right = login("password-mallory").await;
    assert_eq!(right.status, StatusCode::FORBIDDEN, "{right:?}");
    assert!(
        right.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("suspended")
    );
    let wrong = login("not her password").await;
    assert_eq!(
        wrong.status,
        StatusCode::UNAUTHORIZED,
        "nothing told without the password"
    );
    let own = app.act("/api/v1/admin/users/rooney/suspend", &rooney).await;
    assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{own:?}");
    let audit = app.get("/api/v1/admin/audit", &rooney).await;
    assert_eq!(audit.body["items"][0]["action"], "suspend");
    assert_eq!(audit.body["items"][0]["target"], "mallory");

    let lifted = app
        .act("/api/v1/admin/users/mallory/unsuspend", &rooney)
        .await;
    assert_eq!(lifted.status, StatusCode::OK, "{lifted:?}");
    assert_eq!(login("password-mallory").await.status, StatusCode::CREATED);
}
