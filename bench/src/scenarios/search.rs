//! Scenario 7, search: `GET /api/v1/search` in the largest mailbox of the corpus, a realistic
//! query, a word no message holds and the heaviest query the API accepts, beside the same query
//! in the 10-thread mailbox (the baseline, same run) and the HTTP floor; then the search bomb of
//! issue 10 (a body of 2,000 times one word searched with long phrases), refused or answered in
//! bounded time. Plans are explained with the search's own transaction settings.

use crate::report::{Ratio, Report, Row, Target};
use crate::scenarios::inbox::measure_get;
use crate::scenarios::{Tokens, issue_to};
use crate::{Ctx, platform::Server};
use convos_store::search::{self, CANDIDATES, SEARCH_SETTINGS_SQL, SEARCH_SQL, SearchQuery};
use reqwest::StatusCode;
use sqlx::PgPool;

const SCENARIO: &str = "7. Search";

/// Two common words of the corpus: every mailbox has many matches, so the candidate bound and
/// the ranking are exercised, not just an index lookup.
const REALISTIC: &str = "invoice friday";
/// The heaviest query accepted: two phrases of the longest length allowed.
const HEAVIEST: &str = "\"invoice friday lunch order\" \"meeting report draft review\"";
/// A word in no message: the most a search walking the mailbox would read (all of it), found
/// from the word's index entries instead.
const ABSENT: &str = "zanzibar";

/// `q` as a query string value.
fn encoded(q: &str) -> String {
    q.replace(' ', "%20").replace('"', "%22")
}

/// One request, to check the answer before measuring a load of them.
async fn status(server: &Server, path: &str, token: &str) -> anyhow::Result<StatusCode> {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await?;
    Ok(res.status())
}

/// The plan of the search statement for `q` as `caller`, explained (and run) in a transaction
/// with the settings the server gives it (a custom plan, no JIT).
async fn explain_search(db: &PgPool, caller: uuid::Uuid, q: &str) -> anyhow::Result<String> {
    let mut tx = db.begin().await?;
    sqlx::query(SEARCH_SETTINGS_SQL)
        .bind("60000")
        .execute(&mut *tx)
        .await?;
    let query = SearchQuery::parse(q).map_err(|e| anyhow::anyhow!("{q:?}: {e}"))?;
    let rows: Vec<(String,)> = sqlx::query_as_with(
        sqlx::AssertSqlSafe(format!("explain (analyze, buffers) {SEARCH_SQL}")),
        search::arguments(caller.into(), &query, 26, 0)?,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok(rows
        .into_iter()
        .map(|(l,)| l)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The two users of the bomb thread, created once (the corpus keeps them) with one message of
/// 2,000 times the same word, the reproducer of issue 10.
async fn bomb_users(db: &PgPool) -> anyhow::Result<Tokens> {
    let mut tx = db.begin().await?;
    for name in ["bomba", "bombb"] {
        sqlx::query(
            "insert into users (id, username, email, display_name, password_hash) \
             values (md5($1)::uuid, $1, $1 || '@bench.example', $1, 'x') \
             on conflict do nothing",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }
    let created = sqlx::query(
        "insert into threads (id, subject, created_by) \
         values (md5('bombthread')::uuid, 'Words', md5('bomba')::uuid) on conflict do nothing",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if created == 1 {
        sqlx::query(
            "insert into messages (id, thread_id, sender_id, recipient_id, body) \
             values (md5('bombmessage')::uuid, md5('bombthread')::uuid, md5('bomba')::uuid, \
                     md5('bombb')::uuid, btrim(repeat('word ', 2000)))",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "insert into thread_participants \
               (thread_id, user_id, peer_id, received_count, sent_count, unread_count, \
                last_activity_at) \
             values (md5('bombthread')::uuid, md5('bombb')::uuid, md5('bomba')::uuid, 1, 0, 1, \
                     now()), \
                    (md5('bombthread')::uuid, md5('bomba')::uuid, md5('bombb')::uuid, 0, 1, 0, \
                     now())",
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let users: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("select id, username from users where username = 'bombb'")
            .fetch_all(db)
            .await?;
    issue_to(db, users).await
}

pub async fn run(
    ctx: &Ctx,
    server: &Server,
    db: &PgPool,
    tokens: &Tokens,
    report: &mut Report,
) -> anyhow::Result<()> {
    let sizes = &ctx.scale.corpus.mailboxes;
    let smallest = sizes[0];
    let largest = *sizes.last().unwrap_or(&smallest);
    let mut notes = Vec::new();

    let (floor, ..) = measure_get(ctx, server, "/healthz", tokens.of("box10")).await?;
    report.row(Row {
        scenario: SCENARIO,
        what: "HTTP floor: GET /healthz".into(),
        measured: floor,
        baseline: None,
        ratio: None,
        target: None,
    });

    let mut errors = 0;
    for (name, q) in [
        ("realistic", REALISTIC),
        ("absent word", ABSENT),
        ("heaviest accepted", HEAVIEST),
    ] {
        let path = format!("/api/v1/search?q={}&limit=25", encoded(q));
        let small = tokens.of(&format!("box{smallest}"));
        let big = tokens.of(&format!("box{largest}"));
        for (who, token) in [(smallest, small), (largest, big)] {
            let got = status(server, &path, token).await?;
            anyhow::ensure!(
                got == StatusCode::OK || got == StatusCode::SERVICE_UNAVAILABLE,
                "search {q:?} in the {who}-thread mailbox answered {got}"
            );
            if got != StatusCode::OK {
                notes.push(format!(
                    "{name} query in the {who}-thread mailbox: {got} (past search_timeout_ms)"
                ));
            }
        }
        let (baseline, e1, _) = measure_get(ctx, server, &path, small).await?;
        let (measured, e2, _) = measure_get(ctx, server, &path, big).await?;
        errors += e1 + e2;
        let ratio = Ratio::of(
            &format!("p50 vs {smallest}-thread"),
            measured.p50_ms,
            baseline.p50_ms,
        );
        report.row(Row {
            scenario: SCENARIO,
            what: format!("{largest}-thread mailbox, {name} query `{q}`"),
            measured,
            baseline: Some((format!("{smallest}-thread mailbox, same query"), baseline)),
            ratio,
            target: Some(Target {
                goal: "every answer a 200 (no 503 past search_timeout_ms)".into(),
                met: e2 == 0,
            }),
        });
        let user_id: uuid::Uuid = sqlx::query_scalar("select id from users where username = $1")
            .bind(format!("box{largest}"))
            .fetch_one(db)
            .await?;
        let plan = explain_search(db, user_id, q).await?;
        report.plans.push((
            format!("Search `{q}` in the {largest}-thread mailbox"),
            plan,
        ));
    }

    // The bomb: refused as the issue sent it, answered at the longest phrases allowed.
    let bomb = bomb_users(db).await?;
    let token = bomb.of("bombb");
    let refused = format!(
        "/api/v1/search?q={}",
        encoded(&format!("\"{}\"", ["word"; 12].join(" ")))
    );
    let got = status(server, &refused, token).await?;
    anyhow::ensure!(
        got == StatusCode::UNPROCESSABLE_ENTITY,
        "the 12-word phrase answered {got}, not 422"
    );
    let (refused_measure, ..) = measure_get(ctx, server, &refused, token).await?;
    report.row(Row {
        scenario: SCENARIO,
        what: "search bomb as sent in issue 10 (12-word phrase): 422".into(),
        measured: refused_measure,
        baseline: None,
        ratio: None,
        target: None,
    });
    let allowed = format!(
        "/api/v1/search?q={}",
        encoded("\"word word word word\" \"word word word word\"")
    );
    let got = status(server, &allowed, token).await?;
    anyhow::ensure!(
        got == StatusCode::OK,
        "the bomb at the longest phrases allowed answered {got}"
    );
    let (measured, e, _) = measure_get(ctx, server, &allowed, token).await?;
    errors += e;
    let small_path = format!("/api/v1/search?q={}", encoded(REALISTIC));
    let (baseline, ..) = measure_get(
        ctx,
        server,
        &small_path,
        tokens.of(&format!("box{smallest}")),
    )
    .await?;
    let ratio = Ratio::of(
        &format!("p50 vs realistic in {smallest}-thread"),
        measured.p50_ms,
        baseline.p50_ms,
    );
    let met = e == 0 && ratio.as_ref().is_some_and(|r| r.value <= 10.0);
    report.row(Row {
        scenario: SCENARIO,
        what: "search bomb at the limits (two 4-word phrases over 2,000 times `word`)".into(),
        measured,
        baseline: Some((
            format!("{smallest}-thread mailbox, realistic query"),
            baseline,
        )),
        ratio,
        target: Some(Target {
            goal: "answered, within 10x of an ordinary small search".into(),
            met,
        }),
    });
    for note in notes {
        report.note(SCENARIO, note);
    }
    report.note(
        SCENARIO,
        format!(
            "wrk held {} connections with 2 threads, {} s per figure; {errors} failed requests \
             (the refused bomb's 422s not counted); only the newest {CANDIDATES} matches are \
             ranked",
            crate::scenarios::inbox::CONNECTIONS,
            ctx.scale.http_secs
        ),
    );
    Ok(())
}
