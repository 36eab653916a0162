//! Scenario 2, inbox: the first and a deep page of `GET /api/v1/threads?folder=inbox` for
//! mailboxes of 10 to 100,000 threads in a database of a million messages. The goal is a flat
//! curve: the baseline is the 10-thread mailbox, measured the same way in the same run, and the
//! HTTP floor (`/healthz`) shows what the server costs before any query.

use crate::report::{Ratio, Report, Row, Target};
use crate::scenarios::{Bind, Binds, Deep, Tokens, explain};
use crate::stats::Measure;
use crate::wrk::{self, Load, get_script};
use crate::{Ctx, platform::Server};
use convos_core::api::Folder;
use convos_store::threads::list_sql;
use sqlx::PgPool;
use std::time::Duration;

const SCENARIO: &str = "2. Inbox";
/// Connections held by the load generator (requests in flight at once).
pub const CONNECTIONS: u32 = 8;

/// Measures one GET with wrk and returns its figure with the server's peak memory.
pub async fn measure_get(
    ctx: &Ctx,
    server: &Server,
    path: &str,
    token: &str,
) -> anyhow::Result<(Measure, u64, f64)> {
    server.proc.reset_peak();
    let run = wrk::run(
        &Load {
            base: &server.base,
            script: &get_script(path, token),
            connections: CONNECTIONS,
            threads: 2,
            duration: Duration::from_secs(ctx.scale.http_secs),
        },
        &ctx.env.work_dir,
    )?;
    Ok((
        run.measure.with_peak(server.proc.peak_mib()),
        run.errors,
        run.cpu_secs,
    ))
}

pub async fn run(
    ctx: &Ctx,
    server: &Server,
    db: &PgPool,
    tokens: &Tokens,
    report: &mut Report,
) -> anyhow::Result<()> {
    let sizes = ctx.scale.corpus.mailboxes.clone();
    let smallest = sizes[0];
    let largest = *sizes.last().unwrap_or(&smallest);
    // Warm the caches the way a running service has them.
    for n in &sizes {
        measure_warmup(
            server,
            "/api/v1/threads?folder=inbox&limit=25",
            tokens.of(&format!("box{n}")),
        )
        .await?;
    }
    let (floor, ..) = measure_get(ctx, server, "/healthz", tokens.of("box10")).await?;
    report.row(Row {
        scenario: SCENARIO,
        what: "HTTP floor: GET /healthz".into(),
        measured: floor,
        baseline: None,
        ratio: None,
        target: None,
    });
    let first_path = "/api/v1/threads?folder=inbox&limit=25";
    let (base_first, ..) = measure_get(
        ctx,
        server,
        first_path,
        tokens.of(&format!("box{smallest}")),
    )
    .await?;
    let mut errors = 0;
    // First-page medians of full pages (25 threads), to compare like with like.
    let mut full_pages: Vec<(i64, f64)> = Vec::new();
    for n in &sizes {
        let user = format!("box{n}");
        let token = tokens.of(&user);
        let user_id: uuid::Uuid = sqlx::query_scalar("select id from users where username = $1")
            .bind(&user)
            .fetch_one(db)
            .await?;
        let deep = if *n > 50 {
            let (at, id): (chrono::DateTime<chrono::Utc>, uuid::Uuid) = sqlx::query_as(
                "select last_activity_at, thread_id from thread_participants \
                 where user_id = $1 and received_count > 0 and not archived \
                 order by last_activity_at desc, thread_id desc offset $2 limit 1",
            )
            .bind(user_id)
            .bind(n / 2 - 1)
            .fetch_one(db)
            .await?;
            Some(Deep::new(at, id))
        } else {
            None
        };
        let mut pages = vec![("first page".to_owned(), first_path.to_owned(), None)];
        if let Some(deep) = deep {
            pages.push((
                format!("page at thread {}", n / 2),
                format!("{first_path}&cursor={}", deep.cursor),
                Some(deep),
            ));
        }
        for (page, path, deep) in pages {
            let share = crate::procs::CpuShare::start();
            let (measured, e, cpu) = if *n == smallest && deep.is_none() {
                (base_first.clone(), 0, 0.0)
            } else {
                measure_get(ctx, server, &path, token).await?
            };
            if *n == largest && deep.is_none() {
                let cpu = share.finish_with(&[("wrk", cpu)]);
                report.note(SCENARIO, format!("{n}-thread first page: {cpu}"));
            }
            errors += e;
            let ratio = Ratio::of(
                &format!("p50 vs {smallest}-thread"),
                measured.p50_ms,
                base_first.p50_ms,
            );
            let target = (*n == largest).then(|| Target {
                goal: format!("p99 under 10 ms; p50 within 1.5x of the {smallest}-thread mailbox"),
                met: measured.p99_ms.is_some_and(|p| p < 10.0)
                    && ratio.as_ref().is_some_and(|r| r.value <= 1.5),
            });
            if deep.is_none()
                && *n >= 25
                && let Some(p50) = measured.p50_ms
            {
                full_pages.push((*n, p50));
            }
            report.row(Row {
                scenario: SCENARIO,
                what: format!("{n}-thread inbox, {page}"),
                measured,
                baseline: Some((
                    format!("{smallest}-thread inbox, first page"),
                    base_first.clone(),
                )),
                ratio,
                target,
            });
            if *n == smallest || *n == largest {
                let (at, id) = Deep::position(deep.as_ref());
                let plan = explain(
                    db,
                    &list_sql(Folder::Inbox, false),
                    Binds(vec![
                        Bind::Uuid(user_id),
                        Bind::At(at),
                        Bind::Uuid(id),
                        Bind::Int(26),
                    ]),
                )
                .await?;
                report
                    .plans
                    .push((format!("Inbox of {n} threads, {page}"), plan));
            }
        }
    }
    if let (Some((small, a)), Some((big, b))) = (full_pages.first(), full_pages.last())
        && big > small
    {
        report.note(
            SCENARIO,
            format!(
                "the {smallest}-thread page holds {smallest} threads, the others 25: like for \
                 like, the {big}-thread first page p50 is {:.2}x the {small}-thread one",
                b / a
            ),
        );
    }
    report.note(
        SCENARIO,
        format!(
            "wrk held {CONNECTIONS} connections with 2 threads, {} s per figure; {errors} failed requests",
            ctx.scale.http_secs
        ),
    );
    Ok(())
}

/// A few requests so the first measured one does not pay for cold caches.
pub async fn measure_warmup(server: &Server, path: &str, token: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..20 {
        let r = http
            .get(format!("{}{path}", server.base))
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "GET {path} answered {}",
            r.status()
        );
    }
    Ok(())
}
