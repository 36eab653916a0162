//! Scenario 3, thread view: `GET /api/v1/threads/{id}/messages` for a 10,000-message thread,
//! the first page and one 5,000 messages deep, beside a short thread's first page.

use crate::report::{Ratio, Report, Row};
use crate::scenarios::inbox::{measure_get, measure_warmup};
use crate::scenarios::{Bind, Binds, Deep, Tokens, explain};
use crate::{Ctx, platform::Server};
use convos_store::threads::{Order, messages_sql};
use sqlx::PgPool;

const SCENARIO: &str = "3. Thread view";

pub async fn run(
    ctx: &Ctx,
    server: &Server,
    db: &PgPool,
    tokens: &Tokens,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (longa, long): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "select u.id, t.id from threads t join users u on u.id = t.created_by \
         where u.username = 'longa'",
    )
    .fetch_one(db)
    .await?;
    let long_len: i64 = sqlx::query_scalar("select count(*) from messages where thread_id = $1")
        .bind(long)
        .fetch_one(db)
        .await?;
    // The baseline: the box10 user's longest short thread.
    let (short, short_len): (uuid::Uuid, i64) = sqlx::query_as(
        "select tp.thread_id, (tp.received_count + tp.sent_count)::int8 \
         from thread_participants tp join users u on u.id = tp.user_id \
         where u.username = 'box10' order by tp.received_count + tp.sent_count desc limit 1",
    )
    .fetch_one(db)
    .await?;
    let short_path = format!("/api/v1/threads/{short}/messages?limit=25");
    measure_warmup(server, &short_path, tokens.of("box10")).await?;
    let (baseline, ..) = measure_get(ctx, server, &short_path, tokens.of("box10")).await?;
    let (at, id): (chrono::DateTime<chrono::Utc>, uuid::Uuid) = sqlx::query_as(
        "select created_at, id from messages where thread_id = $1 \
         order by created_at desc, id desc offset $2 limit 1",
    )
    .bind(long)
    .bind(long_len / 2 - 1)
    .fetch_one(db)
    .await?;
    let deep = Deep::new(at, id);
    let first = format!("/api/v1/threads/{long}/messages?limit=25");
    measure_warmup(server, &first, tokens.of("longa")).await?;
    for (page, path, cursor) in [
        ("first page", first.clone(), None),
        (
            "page at message 5,000",
            format!("{first}&cursor={}", deep.cursor),
            Some(&deep),
        ),
    ] {
        let (measured, errors, _) = measure_get(ctx, server, &path, tokens.of("longa")).await?;
        if errors > 0 {
            report.note(SCENARIO, format!("{page}: {errors} failed requests"));
        }
        let ratio = Ratio::of("p50 vs short thread", measured.p50_ms, baseline.p50_ms);
        report.row(Row {
            scenario: SCENARIO,
            what: format!("{long_len}-message thread, {page}"),
            measured,
            baseline: Some((
                format!("{short_len}-message thread, first page"),
                baseline.clone(),
            )),
            ratio,
            target: None,
        });
        let (at, id) = Deep::position(cursor);
        let plan = explain(
            db,
            &messages_sql(Order::Desc),
            Binds(vec![
                Bind::Uuid(longa),
                Bind::Uuid(long),
                Bind::At(at),
                Bind::Uuid(id),
                Bind::Int(26),
            ]),
        )
        .await?;
        report
            .plans
            .push((format!("Thread of {long_len} messages, {page}"), plan));
    }
    Ok(())
}
