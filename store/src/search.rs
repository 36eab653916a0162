//! Full-text search over the caller's own convos: subjects and bodies of the messages they can
//! see (never a read-once body), ranked, with the matching words marked.

use crate::Result;
use crate::visibility::visible_to_caller;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use convos_core::UserId;
use convos_core::api::{Page, SearchHit, UserSummary};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct HitRow {
    id: Uuid,
    thread_id: Uuid,
    subject: String,
    sender_id: Uuid,
    sender_username: String,
    sender_display_name: String,
    excerpt: Option<String>,
    read_once: bool,
    created_at: DateTime<Utc>,
    rank: f32,
}

/// Encodes a result offset as an opaque cursor (ranked results have no stable key to page by).
pub fn cursor(offset: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("search:{offset}"))
}

/// Decodes a search cursor.
pub fn offset(cursor: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("search:")?
        .parse()
        .ok()
        .filter(|o| *o >= 0)
}

/// One page of results for `query` (web-search syntax: words, "phrases", -exclusions, or).
pub async fn search(
    db: &PgPool,
    caller: UserId,
    query: &str,
    limit: i64,
    offset: i64,
) -> Result<Page<SearchHit>> {
    let rows: Vec<HitRow> = sqlx::query_as(concat!(
        "select m.id, m.thread_id, t.subject, s.id as sender_id, s.username as sender_username, \
                s.display_name as sender_display_name, m.read_once, m.created_at, \
                case when m.read_once then null else ts_headline('simple', m.body, q, \
                  'StartSel=«, StopSel=», MaxWords=24, MinWords=8, MaxFragments=1') end as excerpt, \
                (ts_rank(t.search, q) * 2 \
                  + case when m.read_once then 0 else ts_rank(m.search, q) end)::float4 as rank \
         from messages m \
         join threads t on t.id = m.thread_id \
         join users s on s.id = m.sender_id, \
         websearch_to_tsquery('simple', $2) q \
         where (t.search @@ q or (not m.read_once and m.search @@ q)) \
           and (m.sender_id = $1 or m.recipient_id = $1) and ",
        visible_to_caller!(),
        " order by rank desc, m.created_at desc, m.id desc limit $3 offset $4"
    ))
    .bind(caller.as_uuid())
    .bind(query)
    .bind(limit + 1)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let more = rows.len() as i64 > limit;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| SearchHit {
            message_id: r.id.into(),
            thread_id: r.thread_id.into(),
            subject: r.subject,
            sender: UserSummary {
                id: r.sender_id.into(),
                username: r.sender_username,
                display_name: r.sender_display_name,
            },
            excerpt: if r.read_once { None } else { r.excerpt },
            created_at: r.created_at,
            rank: r.rank,
        })
        .collect();
    Ok(Page {
        items,
        next_cursor: more.then(|| cursor(offset + limit)),
    })
}
