//! Full-text search over the caller's own convos.

use convos_testkit::TestServer;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, PgPool};

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn search_finds_only_what_the_caller_can_see_best_first_with_highlights(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let ramen = app
        .send(
            &alice,
            &bob,
            "Ramen on Friday",
            "The new ramen place opened near the station.",
        )
        .await;
    app.send(
        &alice,
        &bob,
        "Budget",
        "Numbers for the quarter; lunch maybe ramen later.",
    )
    .await;
    app.send(&alice, &carol, "Ramen for carol", "carol's ramen")
        .await;
    app.post(
        "/api/v1/messages",
        &alice,
        json!({"recipient": "bob", "subject": "Secret", "body": "ramen recipe", "read_once": true}),
    )
    .await;
    let deleted = app
        .send(&alice, &bob, "Gone", "ramen that bob deleted")
        .await;
    app.delete(
        &format!("/api/v1/messages/{}", deleted["id"].as_str().unwrap()),
        &bob,
    )
    .await;

    let res = app.get("/api/v1/search?q=ramen", &bob).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let hits = res.body["items"].as_array().unwrap();
    let subjects: Vec<&str> = hits
        .iter()
        .map(|h| h["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["Ramen on Friday", "Budget"],
        "bob's visible matches, subject match first"
    );
    assert_eq!(hits[0]["message_id"], ramen["id"]);
    assert!(
        hits[0]["excerpt"].as_str().unwrap().contains("«ramen»"),
        "{}",
        hits[0]["excerpt"]
    );

    let secret = app.get("/api/v1/search?q=recipe", &bob).await;
    assert!(
        secret.body["items"].as_array().unwrap().is_empty(),
        "read-once bodies are not searched"
    );
    let by_subject = app.get("/api/v1/search?q=secret", &bob).await;
    assert_eq!(
        by_subject.body["items"][0]["excerpt"],
        serde_json::Value::Null,
        "nor shown"
    );

    let page = app.get("/api/v1/search?q=ramen&limit=1", &bob).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(
            &format!("/api/v1/search?q=ramen&limit=1&cursor={cursor}"),
            &bob,
        )
        .await;
    assert_eq!(next.body["items"][0]["subject"], "Budget");

    for bad in [
        "/api/v1/search",
        "/api/v1/search?q=%20",
        "/api/v1/search?q=a%00b",
        "/api/v1/search?q=ramen&cursor=nope",
    ] {
        let res = app.get(bad, &bob).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let hostile = app
        .get(
            "/api/v1/search?q=%27%29%3B%20drop%20table%20users%3B%20--%20%22%20or",
            &bob,
        )
        .await;
    assert_eq!(hostile.status, StatusCode::OK, "any text is just words");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_run_of_negations_is_taken_as_words_not_a_server_error(db: PgPool) {
    // PostgreSQL's query parser stacks one NOT per `-` before a word, and fails past 32 of
    // them ("tsquery stack too small"): a 500 for a query of 33 dashes.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.send(
        &alice,
        &bob,
        "Forwarded",
        "----- Original message ----- about ramen",
    )
    .await;
    let dashes = "-".repeat(40);
    let spaced = "- ".repeat(40);
    let mixed = "-!-(-|-&-<-)".repeat(6);
    for q in [
        dashes.clone(),
        format!("{dashes}ramen"),
        format!("ramen {dashes}"),
        format!("{spaced}ramen"),
        format!("ramen {mixed}ramen"),
        format!("ramen \t{dashes}\nramen"),
    ] {
        let res = app
            .get(&format!("/api/v1/search?q={}", encoded(&q)), &bob)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{q:?}: {res:?}");
    }
    // An even run of negations cancels out, an odd one excludes, as PostgreSQL reads them.
    let even = app
        .get(
            &format!("/api/v1/search?q={}", encoded(&format!("{dashes}ramen"))),
            &bob,
        )
        .await;
    assert_eq!(even.body["items"].as_array().unwrap().len(), 1, "{even:?}");
    let odd = format!("message {}ramen", "-".repeat(41));
    let odd = app
        .get(&format!("/api/v1/search?q={}", encoded(&odd)), &bob)
        .await;
    assert!(odd.body["items"].as_array().unwrap().is_empty(), "{odd:?}");
}

/// A query string value with its spaces and quotes escaped.
fn encoded(q: &str) -> String {
    q.replace('%', "%25")
        .replace(' ', "%20")
        .replace('\t', "%09")
        .replace('\n', "%0A")
        .replace('|', "%7C")
        .replace('<', "%3C")
        .replace('"', "%22")
        .replace('&', "%26")
}

async fn postmaster_started(db: &PgPool) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("select pg_postmaster_start_time()")
        .fetch_one(db)
        .await
        .expect("postgres answers")
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_search_bomb_is_refused_and_the_longest_searches_allowed_stay_harmless(db: PgPool) {
    // Arrange: the reproducer of issue 10 (a body of 2,000 times one word), and the largest
    // body there is (64,000 characters: 32,000 one-letter words).
    let app = TestServer::spawn(db.clone()).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.send(&alice, &bob, "Words", &["word"; 2_000].join(" "))
        .await;
    app.send(&alice, &bob, "Letters", &["a"; 32_000].join(" "))
        .await;
    let started = postmaster_started(&db).await;

    // Act and assert: the original bomb, a 12-word phrase, is refused with what to shorten.
    let bomb = format!("\"{}\"", ["word"; 12].join(" "));
    let res = app
        .get(&format!("/api/v1/search?q={}", encoded(&bomb)), &bob)
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{res:?}");
    assert!(res.field("q").contains("at most 4 words"), "{res:?}");
    let wordy = ["word"; 9].join(" ");
    let res = app
        .get(&format!("/api/v1/search?q={}", encoded(&wordy)), &bob)
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{res:?}");
    assert!(res.field("q").contains("at most 8"), "{res:?}");

    // The heaviest queries allowed answer, each with a short excerpt.
    for (q, subject, mark) in [
        (
            "\"word word word word\" \"word word word word\"",
            "Words",
            "«word»",
        ),
        ("\"a a a a\" \"a a a a\"", "Letters", "«a»"),
        ("a a a a a a a a", "Letters", "«a»"),
        ("word or a", "Letters", "«a»"),
    ] {
        let res = app
            .get(&format!("/api/v1/search?q={}", encoded(q)), &bob)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{q}: {res:?}");
        let hit = res.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["subject"] == subject)
            .unwrap_or_else(|| panic!("{q}: no hit for {subject}: {res:?}"));
        let excerpt = hit["excerpt"].as_str().unwrap();
        assert!(excerpt.contains(mark), "{q}: {excerpt}");
        assert!(excerpt.chars().count() < 300, "{q}: {excerpt}");
    }

    // PostgreSQL did not restart, and a new connection still works.
    assert_eq!(postmaster_started(&db).await, started, "postgres restarted");
    let mut fresh = sqlx::PgConnection::connect_with(&db.connect_options())
        .await
        .expect("a new connection is accepted");
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut fresh)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn searches_beyond_the_servers_share_wait_their_turn_then_are_refused(db: PgPool) {
    // Several accounts, each within its own share of requests, searching at once, could still
    // hold most of the pool: searches are the costliest reads. Here one search may run at once,
    // and another may wait a fifth of a second for it.
    let one_place = one_search_place_taken(&db, 200).await;
    let OneSearchPlace { app, alice, .. } = &one_place;

    let second = app.get("/api/v1/search?q=ramen", alice).await;
    let other = app.get("/api/v1/me", alice).await;

    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS, "{second:?}");
    assert_eq!(second.headers["retry-after"], "1");
    assert_eq!(
        other.status,
        StatusCode::OK,
        "the rest of the API is served"
    );
    let (app, alice) = one_place.free().await;
    let again = app.get("/api/v1/search?q=ramen", &alice).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_search_finding_every_place_taken_waits_and_is_served_when_one_frees(db: PgPool) {
    // Accounts looping searches kept every place taken: another user's search, refused at once
    // whenever it came, could not get one. It now waits, and is served before those who hold
    // places already (decision 79).
    let one_place = one_search_place_taken(&db, 30_000).await;

    let second = search_in_background(&one_place.app, &one_place.alice, "ramen");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "waiting, not refused");
    one_place.free().await;

    let second = second.await.unwrap();
    assert_eq!(second.status, StatusCode::OK, "{second:?}");
    assert_eq!(second.body["items"][0]["subject"], "Ramen");
}

/// A server with one search place, which Bob's search of "ramen" holds, waiting on a lock
/// (as a slow search would), while Alice has a message to find; searches wait `wait_ms`.
struct OneSearchPlace {
    app: TestServer,
    alice: convos_testkit::TestUser,
    blocker: sqlx::Transaction<'static, sqlx::Postgres>,
    first: tokio::task::JoinHandle<convos_testkit::Answer>,
}

async fn one_search_place_taken(db: &PgPool, wait_ms: u64) -> OneSearchPlace {
    let app = TestServer::spawn_with(db.clone(), |s| {
        s.max_searches = 1;
        s.costly_wait_ms = wait_ms;
    })
    .await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.send(&alice, &bob, "Ramen", "the ramen place").await;
    let blocker = lock_out_searches(db).await;
    let first = search_in_background(&app, &bob, "ramen");
    crate::until_statements_wait(db, 1).await;
    OneSearchPlace {
        app,
        alice,
        blocker,
        first,
    }
}

impl OneSearchPlace {
    /// Lets Bob's search finish (it is served), freeing the place.
    async fn free(self) -> (TestServer, convos_testkit::TestUser) {
        self.blocker.rollback().await.unwrap();
        assert_eq!(self.first.await.unwrap().status, StatusCode::OK);
        (self.app, self.alice)
    }
}

/// Searches for `q` as `user`, in a task of its own.
fn search_in_background(
    app: &TestServer,
    user: &convos_testkit::TestUser,
    q: &str,
) -> tokio::task::JoinHandle<convos_testkit::Answer> {
    let (client, user) = (app.client.clone(), user.clone());
    let path = format!("/api/v1/search?q={}", encoded(q));
    tokio::spawn(async move { client.get(&path, &user).await })
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_search_past_its_time_limit_answers_503_timed_out_and_the_next_one_works(db: PgPool) {
    // Arrange: a search that cannot finish in time, because another session holds a lock
    // every search must wait for.
    let app = TestServer::spawn_with(db.clone(), |s| s.search_timeout_ms = 300).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.send(&alice, &bob, "Ramen", "the ramen place").await;
    let blocker = lock_out_searches(&db).await;

    // Act
    let res = app.get("/api/v1/search?q=ramen", &bob).await;

    // Assert: a clear, retryable 503, not a 500 and not a hung request.
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{res:?}");
    assert_eq!(res.code(), "timed_out");
    assert_eq!(res.headers["retry-after"], "1");
    blocker.rollback().await.unwrap();
    let res = app.get("/api/v1/search?q=ramen", &bob).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(res.body["items"].as_array().unwrap().len(), 1);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn search_finds_sent_and_received_messages_once_each_and_honours_each_sides_delete(
    db: PgPool,
) {
    // Arrange: one message matching by subject and by body, one sent by each side, and a
    // read-once message whose subject matches.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let both = app.send(&alice, &bob, "Ramen plans", "ramen at noon").await;
    let reply = app
        .reply(&bob, both["thread_id"].as_str().unwrap(), "fine, noon")
        .await;
    app.post(
        "/api/v1/messages",
        &bob,
        json!({"recipient": "alice", "subject": "Ramen secret", "body": "the broth", "read_once": true}),
    )
    .await;

    // Act
    let ids = |res: &convos_testkit::Answer| -> Vec<String> {
        res.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let as_alice = app.get("/api/v1/search?q=ramen", &alice).await;
    let as_bob = app.get("/api/v1/search?q=ramen", &bob).await;

    // Assert: each side finds its sent and received matches, a message matching twice once,
    // and the read-once message by its subject (its body is never searched or shown).
    let mut alice_ids = ids(&as_alice);
    alice_ids.sort();
    assert_eq!(alice_ids.len(), 3, "{as_alice:?}");
    assert!(alice_ids.contains(&both["id"].as_str().unwrap().to_owned()));
    assert!(alice_ids.contains(&reply["id"].as_str().unwrap().to_owned()));
    alice_ids.dedup();
    assert_eq!(alice_ids.len(), 3, "no message twice");
    let first = &as_alice.body["items"][0];
    assert_eq!(
        first["message_id"], both["id"],
        "the subject and body match ranks first"
    );
    assert_eq!(ids(&as_bob).len(), 3, "{as_bob:?}");
    let broth = app.get("/api/v1/search?q=broth", &alice).await;
    assert!(ids(&broth).is_empty(), "a read-once body is not searched");

    // A delete hides the message from the side that deleted it only.
    app.delete(
        &format!("/api/v1/messages/{}", both["id"].as_str().unwrap()),
        &alice,
    )
    .await;
    let as_alice = app.get("/api/v1/search?q=noon", &alice).await;
    assert_eq!(ids(&as_alice), [reply["id"].as_str().unwrap()]);
    let as_bob = app.get("/api/v1/search?q=noon", &bob).await;
    assert_eq!(ids(&as_bob).len(), 2, "{as_bob:?}");
}

/// The plan of the search statement for `q` as `caller`, with the settings search uses.
async fn search_plan(db: &PgPool, caller: uuid::Uuid, q: &str) -> String {
    let mut tx = db.begin().await.unwrap();
    sqlx::query(convos_store::search::SEARCH_SETTINGS_SQL)
        .bind("10000")
        .execute(&mut *tx)
        .await
        .unwrap();
    let query = convos_store::search::SearchQuery::parse(q).unwrap();
    let rows: Vec<(String,)> = sqlx::query_as_with(
        sqlx::AssertSqlSafe(format!("explain {}", convos_store::search::SEARCH_SQL)),
        convos_store::search::arguments(caller.into(), &query, 26, 0).unwrap(),
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(l,)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_search_reads_the_callers_own_messages_never_the_whole_table(db: PgPool) {
    // Arrange: 60,000 messages between 200 other users, and a mailbox of 2,000, each message
    // in its own thread; `common` is in every body, `rare` in one of the caller's and a few
    // hundred of the others', `report` in one subject in 20.
    let app = TestServer::spawn(db.clone()).await;
    let me = app.user("mine").await;
    let me_id: uuid::Uuid = me.id.parse().unwrap();
    for sql in [
        "insert into users (id, username, email, display_name, password_hash) \
         select md5('u' || g)::uuid, 'user' || g, 'user' || g || '@example.com', 'U', 'x' \
         from generate_series(1, 200) g",
        "insert into threads (id, subject, created_by) \
         select md5('t' || g)::uuid, \
                case when g % 20 = 0 then 'weekly report' else 'note ' || g end, \
                md5('u' || (g % 200 + 1))::uuid \
         from generate_series(1, 62000) g",
        "insert into messages (id, thread_id, sender_id, recipient_id, body, created_at) \
         select md5('m' || g)::uuid, md5('t' || g)::uuid, md5('u' || (g % 200 + 1))::uuid, \
                case when g <= 2000 then $1 else md5('u' || ((g + 7) % 200 + 1))::uuid end, \
                'common words ' || case when g = 1500 or (g > 2000 and g % 200 = 3) then 'rare' else 'usual' end, \
                now() - g * interval '1 minute' \
         from generate_series(1, 62000) g",
        "analyze",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(me_id)
            .execute(&db)
            .await
            .unwrap();
    }

    for q in [
        "common",
        "rare",
        "report or nothing",
        "\"common words\" -usual",
    ] {
        // Act
        let plan = search_plan(&db, me_id, q).await;

        // Assert: messages are read through index paths over the caller's messages (or the
        // word's), never all of them; subjects too, as each message holds its subject's words.
        assert!(!plan.contains("Seq Scan on messages"), "{q}:\n{plan}");
    }
    let rare = app.get("/api/v1/search?q=rare", &me).await;
    assert_eq!(rare.status, StatusCode::OK, "{rare:?}");
    assert_eq!(rare.body["items"].as_array().unwrap().len(), 1, "{rare:?}");
    let common = app.get("/api/v1/search?q=common&limit=100", &me).await;
    assert_eq!(common.body["items"].as_array().unwrap().len(), 100);
    assert!(common.body["next_cursor"].is_string());
}

/// Locks a table every search reads, in a transaction of the test's: searches wait on it, as
/// slow ones would, until the transaction ends.
async fn lock_out_searches(db: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut blocker = db.begin().await.unwrap();
    sqlx::query("lock table threads in access exclusive mode")
        .execute(&mut *blocker)
        .await
        .unwrap();
    blocker
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_hit_is_excerpted_from_a_window_of_its_body_never_the_whole_body(db: PgPool) {
    // A page of 100 hits of 64,000 characters each was read whole from PostgreSQL and walked
    // word by word on the request's thread: one account's searches stalled every request.
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let body = format!("{}zanzibar is where we meet", "filler ".repeat(9_000));
    app.send(&alice, &bob, "Plans", &body).await;

    let deep = app.get("/api/v1/search?q=zanzibar", &bob).await;
    let excerpt = deep.body["items"][0]["excerpt"].as_str().unwrap();
    assert!(excerpt.starts_with('…'), "{excerpt}");
    assert!(excerpt.contains("«zanzibar» is where we meet"), "{excerpt}");
    let by_subject = app.get("/api/v1/search?q=plans", &bob).await;
    let excerpt = by_subject.body["items"][0]["excerpt"].as_str().unwrap();
    assert!(excerpt.starts_with("filler filler"), "{excerpt}");
    assert!(excerpt.ends_with('…'), "{excerpt}");

    // What PostgreSQL hands the server for each hit is a window around the first match.
    let bob_id: uuid::Uuid = bob.id.parse().unwrap();
    for q in ["zanzibar", "plans"] {
        let query = convos_store::search::SearchQuery::parse(q).unwrap();
        let mut tx = app.db.begin().await.unwrap();
        let lengths: Vec<Option<i32>> = sqlx::query_scalar_with(
            sqlx::AssertSqlSafe(format!(
                "select char_length(body) from ({}) hits",
                convos_store::search::SEARCH_SQL
            )),
            convos_store::search::arguments(bob_id.into(), &query, 26, 0).unwrap(),
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert_eq!(lengths.len(), 1, "{q}");
        assert!(
            lengths[0].unwrap() as usize <= convos_store::search::EXCERPT_SOURCE,
            "{q}: {lengths:?}"
        );
    }
}
