//! Reports of messages to the operators (decision 89): a recipient's copy of what they were
//! sent, kept for the operators until they answer it, and 90 days after.

use crate::cursor::{Cursor, split_page};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use convos_core::api::{NewReport, Page, Report, ReportDetail, ReportReason, Resolution};
use convos_core::{MessageId, UserId};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// Reports one account makes at most in a day; one more is refused until the oldest is a day
/// old.
pub const REPORTS_PER_DAY: i64 = 20;

/// Days a resolved report is kept after its resolution.
pub const KEEP_RESOLVED_DAYS: i32 = 90;

/// What reporting a message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Made {
    /// A new report.
    Created(Report),
    /// The caller had reported this message already: that report.
    Existing(Report),
    /// The caller made [`REPORTS_PER_DAY`] reports in the last day; one more fits in this
    /// long.
    TooMany(Duration),
}

/// The advisory lock class of a reporter's reports ("rprt"): two reports at once cannot both
/// see room under the day's cap.
const REPORTER_LOCK_CLASS: i32 = 0x7270_7274;

/// `reporter` reports message `message`, which they received, for `new.reason`: the report
/// keeps a copy of its subject, body (as long as it has not been erased) and sender.
/// [`StoreError::NotFound`] unless `reporter` is its recipient.
pub async fn report(
    db: &PgPool,
    reporter: UserId,
    message: MessageId,
    new: &NewReport,
) -> Result<Made> {
    let mut tx = db.begin().await?;
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind(REPORTER_LOCK_CLASS)
        .bind(reporter.as_uuid())
        .execute(&mut *tx)
        .await?;
    let earlier: Option<ReportRow> = sqlx::query_as(
        "select id, message_id, reason, created_at, resolved_at is not null as resolved \
         from reports where reporter_id = $1 and message_id = $2",
    )
    .bind(reporter.as_uuid())
    .bind(message.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(earlier) = earlier {
        return Ok(Made::Existing(earlier.into()));
    }
    let (today, wait): (i64, Option<f64>) = sqlx::query_as(
        "select count(*), \
                extract(epoch from min(created_at) + interval '1 day' - now())::float8 \
         from reports where reporter_id = $1 and created_at > now() - interval '1 day'",
    )
    .bind(reporter.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    if today >= REPORTS_PER_DAY {
        let wait = wait.unwrap_or(0.0).max(1.0);
        return Ok(Made::TooMany(Duration::from_secs_f64(wait)));
    }
    let made: ReportRow = sqlx::query_as(
        "insert into reports (id, reporter_id, reporter_username, reported_id, \
                reported_username, message_id, thread_id, reason, note, subject, body, sent_at) \
         select $3, r.id, r.username, s.id, s.username, m.id, m.thread_id, $4, $5, t.subject, \
                m.body, m.created_at \
         from messages m \
         join threads t on t.id = m.thread_id \
         join users s on s.id = m.sender_id \
         join users r on r.id = m.recipient_id \
         where m.id = $2 and m.recipient_id = $1 \
         returning id, message_id, reason, created_at, false as resolved",
    )
    .bind(reporter.as_uuid())
    .bind(message.as_uuid())
    .bind(Uuid::now_v7())
    .bind(new.reason.as_str())
    .bind(&new.note)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok(Made::Created(made.into()))
}

/// Open reports, oldest first (`open`), or resolved ones, most recently resolved first; `limit`
/// a page, after `cursor`.
pub async fn for_operators(
    db: &PgPool,
    open: bool,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Page<ReportDetail>> {
    let (at, id) = cursor.map(|c| (c.at, c.id)).unzip();
    let sql = if open {
        concat!(
            detail_select!(),
            "where r.resolved_at is null \
               and ($1::timestamptz is null or (r.created_at, r.id) > ($1, $2)) \
             order by r.created_at, r.id limit $3"
        )
    } else {
        concat!(
            detail_select!(),
            "where r.resolved_at is not null \
               and ($1::timestamptz is null or (r.resolved_at, r.id) < ($1, $2)) \
             order by r.resolved_at desc, r.id desc limit $3"
        )
    };
    let rows: Vec<DetailRow> = sqlx::query_as(sql)
        .bind(at)
        .bind(id)
        .bind(limit + 1)
        .fetch_all(db)
        .await?;
    let (rows, next_cursor) = split_page(rows, limit, |r| Cursor {
        at: if open {
            r.created_at
        } else {
            r.resolved_at.unwrap_or(r.created_at)
        },
        id: r.id,
    });
    Ok(Page {
        items: rows.into_iter().map(DetailRow::into_detail).collect(),
        next_cursor,
    })
}

/// Operator `actor` answers report `id`: it leaves the open queue, and the answer is recorded
/// with it and in the audit log. Answering it again replaces the answer (audited again) and
/// keeps the report's place among the resolved ones (`resolved_at` is the first answer's), so
/// an operator paging through them meanwhile neither misses nor repeats it.
pub async fn resolve(
    db: &PgPool,
    actor: UserId,
    id: Uuid,
    resolution: Resolution,
    note: &str,
) -> Result<ReportDetail> {
    let mut tx = db.begin().await?;
    let updated: Option<Uuid> = sqlx::query_scalar(
        "update reports set resolved_at = coalesce(resolved_at, now()), \
           resolved_by = (select username from users where id = $2), \
           resolution = $3, resolution_note = $4 \
         where id = $1 returning id",
    )
    .bind(id)
    .bind(actor.as_uuid())
    .bind(resolution.as_str())
    .bind(note)
    .fetch_optional(&mut *tx)
    .await?;
    if updated.is_none() {
        return Err(StoreError::NotFound);
    }
    // The answer itself is the report's (`resolution`); the log says who gave it, and when.
    crate::ops::audit(
        &mut *tx,
        actor.as_uuid(),
        "resolve_report",
        &id.to_string(),
        1,
    )
    .await?;
    let row: DetailRow = sqlx::query_as(concat!(detail_select!(), "where r.id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.into_detail())
}

/// Deletes reports resolved more than [`KEEP_RESOLVED_DAYS`] ago, a batch at a time; returns
/// how many.
pub async fn forget_resolved(db: &PgPool) -> Result<u64> {
    let done = sqlx::query(
        "delete from reports where id in \
           (select id from reports \
            where resolved_at < now() - make_interval(days => $1) \
            order by resolved_at limit 1000)",
    )
    .bind(KEEP_RESOLVED_DAYS)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The columns of [`DetailRow`], from `reports r`; the sender's open reports are counted by
/// the `reports_reported_open` index, up to 1,000 (a page of 100 reports about one much-reported
/// sender would otherwise count all of theirs 100 times).
macro_rules! detail_select {
    () => {
        "select r.id, r.reporter_username, r.reported_username, \
                coalesce(s.suspended_at is not null, false) as reported_suspended, \
                (select count(*) from (select from reports o \
                  where o.reported_id = r.reported_id and o.resolved_at is null \
                  limit 1000) o) as reported_open_reports, \
                r.message_id, r.thread_id, r.reason, r.note, r.subject, r.body, r.sent_at, \
                r.created_at, r.resolved_at, r.resolved_by, r.resolution, r.resolution_note \
         from reports r left join users s on s.id = r.reported_id "
    };
}
use detail_select;

#[derive(sqlx::FromRow)]
struct ReportRow {
    id: Uuid,
    message_id: Uuid,
    reason: String,
    created_at: DateTime<Utc>,
    resolved: bool,
}

impl From<ReportRow> for Report {
    fn from(r: ReportRow) -> Self {
        Report {
            id: r.id,
            message_id: r.message_id.into(),
            reason: reason(&r.reason),
            created_at: r.created_at,
            resolved: r.resolved,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    id: Uuid,
    reporter_username: String,
    reported_username: String,
    reported_suspended: bool,
    reported_open_reports: i64,
    message_id: Uuid,
    thread_id: Uuid,
    reason: String,
    note: String,
    subject: String,
    body: Option<String>,
    sent_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    resolved_by: Option<String>,
    resolution: Option<String>,
    resolution_note: String,
}

impl DetailRow {
    fn into_detail(self) -> ReportDetail {
        ReportDetail {
            id: self.id,
            reporter: self.reporter_username,
            reported: self.reported_username,
            reported_suspended: self.reported_suspended,
            reported_open_reports: self.reported_open_reports,
            message_id: self.message_id.into(),
            thread_id: self.thread_id.into(),
            reason: reason(&self.reason),
            note: self.note,
            subject: self.subject,
            body: self.body,
            sent_at: self.sent_at,
            created_at: self.created_at,
            resolved_at: self.resolved_at,
            resolved_by: self.resolved_by,
            resolution: self.resolution.as_deref().and_then(Resolution::parse),
            resolution_note: self.resolution_note,
        }
    }
}

/// A stored reason (the table's check allows only the three).
fn reason(stored: &str) -> ReportReason {
    ReportReason::parse(stored).unwrap_or(ReportReason::Other)
}
