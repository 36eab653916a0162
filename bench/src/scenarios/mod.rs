//! The scenarios, one module each, and what they share: bench users' tokens
//! and a text generator with the corpus's size distribution.

pub mod email;
pub mod engine;
pub mod inbox;
pub mod live;
pub mod search;
pub mod send;
pub mod sustained;
pub mod thread;
pub mod tui;

use rand::Rng;
use rand::rngs::StdRng;
use sqlx::PgPool;
use std::collections::HashMap;

/// Bearer tokens issued for this run to the corpus's special users (`box<N>`, `longa`,
/// `livesender`, `live0000`...), straight into the token table (their passwords are not real).
pub struct Tokens(HashMap<String, String>);

impl Tokens {
    /// Issues one token to each special user of the corpus.
    pub async fn issue(db: &PgPool) -> anyhow::Result<Self> {
        let users: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "select id, username from users where username like 'box%' or username like 'live%' \
             or username like 'long%'",
        )
        .fetch_all(db)
        .await?;
        issue_to(db, users).await
    }

    /// The token of `username`.
    pub fn of(&self, username: &str) -> &str {
        self.0
            .get(username)
            .map_or_else(|| panic!("no bench token for {username}"), String::as_str)
    }
}

/// Issues one token to each of `users`.
pub async fn issue_to(db: &PgPool, users: Vec<(uuid::Uuid, String)>) -> anyhow::Result<Tokens> {
    let mut ids = Vec::new();
    let mut user_ids = Vec::new();
    let mut hashes = Vec::new();
    let mut tokens = HashMap::new();
    for (id, name) in users {
        let token = format!("cvs_bench{}", uuid::Uuid::new_v4().simple());
        ids.push(uuid::Uuid::now_v7());
        user_ids.push(id);
        hashes.push(convos_store::tokens::hash(&token));
        tokens.insert(name, token);
    }
    sqlx::query(
        "insert into api_tokens (id, user_id, token_hash) \
         select * from unnest($1::uuid[], $2::uuid[], $3::bytea[])",
    )
    .bind(&ids)
    .bind(&user_ids)
    .bind(&hashes)
    .execute(db)
    .await?;
    Ok(Tokens(tokens))
}

const WORDS: [&str; 24] = [
    "time", "person", "year", "meeting", "invoice", "shipping", "order", "parcel", "delivery",
    "price", "offer", "lunch", "friday", "report", "draft", "review", "thanks", "please",
    "tomorrow", "world", "company", "problem", "question", "answer",
];

/// Subjects and bodies with the corpus's sizes, from a seeded generator.
pub struct Text {
    blob: String,
}

impl Text {
    /// About 80,000 characters of words to cut from.
    pub fn new(rng: &mut StdRng) -> Self {
        let words: Vec<&str> = (0..14_000)
            .map(|_| WORDS[rng.random_range(0..WORDS.len())])
            .collect();
        Self {
            blob: words.join(" "),
        }
    }

    fn cut(&self, rng: &mut StdRng, len: usize) -> String {
        let start = rng.random_range(0..5000);
        let text = self.blob[start..start + len].trim();
        if text.is_empty() {
            "x".into()
        } else {
            text.into()
        }
    }

    /// 10-140 characters.
    pub fn subject(&self, rng: &mut StdRng) -> String {
        let len = rng.random_range(10..=140);
        self.cut(rng, len)
    }

    /// 90% 20-400 characters, 9.5% 400-4,000, 0.5% 4,000-64,000.
    pub fn body(&self, rng: &mut StdRng) -> String {
        let bucket = rng.random_range(0..1000);
        let len = if bucket < 900 {
            rng.random_range(20..=400)
        } else if bucket < 995 {
            rng.random_range(400..=4000)
        } else {
            rng.random_range(4000..=64_000)
        };
        self.cut(rng, len)
    }
}

/// Lua for wrk with the same generator: `subject()` and `body()`.
pub const LUA_TEXT: &str = r#"
local words = {"time","person","year","meeting","invoice","shipping","order","parcel",
  "delivery","price","offer","lunch","friday","report","draft","review","thanks","please",
  "tomorrow","world","company","problem","question","answer"}
local blob
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  math.randomseed(1000 + (tid or 0))
  local t = {}
  for i = 1, 14000 do t[i] = words[math.random(#words)] end
  blob = table.concat(t, " ")
end
local function cut(n)
  local off = math.random(1, 5000)
  return string.sub(blob, off, off + n - 1)
end
function subject() return cut(math.random(10, 140)) end
function body()
  local r = math.random(1000)
  if r <= 900 then return cut(math.random(20, 400))
  elseif r <= 995 then return cut(math.random(400, 4000))
  else return cut(math.random(4000, 64000)) end
end
"#;

/// `EXPLAIN (ANALYZE, BUFFERS)` of `sql` with uuid/timestamp/limit binds, as text.
pub async fn explain(db: &PgPool, sql: &str, binds: Binds) -> anyhow::Result<String> {
    let sql = format!("explain (analyze, buffers) {sql}");
    let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
    for bind in binds.0 {
        query = match bind {
            Bind::Uuid(u) => query.bind(u),
            Bind::At(t) => query.bind(t),
            Bind::Int(i) => query.bind(i),
        };
    }
    let rows = query.fetch_all(db).await?;
    Ok(rows
        .into_iter()
        .map(|(l,)| l)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// A bind parameter of [`explain`].
pub enum Bind {
    /// An id.
    Uuid(uuid::Uuid),
    /// A time.
    At(chrono::DateTime<chrono::Utc>),
    /// A number.
    Int(i64),
}

/// The binds of one statement, in order.
pub struct Binds(pub Vec<Bind>);

/// Where a keyset page starts `offset` rows into a listing, as the wire cursor and its parts.
pub struct Deep {
    /// The cursor to pass as `?cursor=`.
    pub cursor: String,
    /// Its time.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Its id.
    pub id: uuid::Uuid,
}

impl Deep {
    /// Where a page starts: after `deep`, or at the top of the listing (the position the store
    /// starts from when no cursor is given).
    pub fn position(deep: Option<&Self>) -> (chrono::DateTime<chrono::Utc>, uuid::Uuid) {
        deep.map_or(
            (
                chrono::DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default(),
                uuid::Uuid::max(),
            ),
            |d| (d.at, d.id),
        )
    }

    /// From a `(time, id)` row.
    pub fn new(at: chrono::DateTime<chrono::Utc>, id: uuid::Uuid) -> Self {
        Self {
            cursor: convos_store::cursor::Cursor { at, id }.encode(),
            at,
            id,
        }
    }
}

/// PostgreSQL's clock now, which stamps the jobs: the ledger's times are compared with it.
pub async fn db_now(db: &PgPool) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    Ok(sqlx::query_scalar("select clock_timestamp()")
        .fetch_one(db)
        .await?)
}

/// Whether any `deliver` or `notify_email` job is still owed (due or waiting, or in flight):
/// the drains' probe. Each kind and state is read from the high end of its partial index, where
/// live jobs are, and stops at the first: an `exists` over the two kinds planned a sequential
/// scan of the ledger whenever its statistics still counted the jobs as pending (20–30 ms a
/// probe in the sustained scenario, 3–5% of PostgreSQL's time in what it measured, and
/// 130–170 ms after a 300,000-job drain).
pub async fn jobs_owed(db: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from (select 1 from jobs where kind = 'deliver' \
                   and state in ('pending', 'retry') order by kind desc, next_run_at desc limit 1) d) \
             or exists (select 1 from (select 1 from jobs where kind = 'notify_email' \
                   and state in ('pending', 'retry') order by kind desc, next_run_at desc limit 1) e) \
             or exists (select 1 from (select 1 from jobs where kind = 'deliver' \
                   and state in ('dispatched', 'running') order by kind desc, deadline_at desc limit 1) f) \
             or exists (select 1 from (select 1 from jobs where kind = 'notify_email' \
                   and state in ('dispatched', 'running') order by kind desc, deadline_at desc limit 1) g)",
    )
    .fetch_one(db)
    .await?)
}
