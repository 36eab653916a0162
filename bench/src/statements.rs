//! Where PostgreSQL's time goes: the statements of a load, from `pg_stat_statements` (loaded by
//! the bench's PostgreSQL), ranked by their total execution time.

use sqlx::PgPool;
use std::fmt;

/// One normalised statement's share of a load.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Statement {
    /// The normalised text, whitespace collapsed and cut short.
    pub query: String,
    pub calls: i64,
    /// Execution time in all (planning not included), in milliseconds.
    pub total_ms: f64,
    /// The longest execution, in milliseconds.
    pub max_ms: f64,
    /// This statement's part of every statement's execution time in the database.
    pub share: f64,
}

/// The statements of one load, most expensive first.
#[derive(Clone, Debug, Default)]
pub struct Profile(pub Vec<Statement>);

/// Makes sure the view exists in `db` and forgets every statement counted so far (in every
/// database: the bench runs one scenario at a time).
pub async fn reset(db: &PgPool) -> anyhow::Result<()> {
    sqlx::query("create extension if not exists pg_stat_statements")
        .execute(db)
        .await?;
    sqlx::query("select pg_stat_statements_reset()")
        .execute(db)
        .await?;
    Ok(())
}

/// The `top` statements of `db`'s database since the last [`reset`], by execution time.
pub async fn top(db: &PgPool, top: i64) -> anyhow::Result<Profile> {
    let statements = sqlx::query_as(
        "with mine as ( \
           select query, calls, total_exec_time, max_exec_time \
           from pg_stat_statements s \
           join pg_database d on d.oid = s.dbid where d.datname = current_database()) \
         select left(regexp_replace(query, '\\s+', ' ', 'g'), 110) as query, calls, \
                total_exec_time as total_ms, max_exec_time as max_ms, \
                total_exec_time / nullif(sum(total_exec_time) over (), 0) as share \
         from mine order by total_exec_time desc limit $1",
    )
    .bind(top)
    .fetch_all(db)
    .await?;
    Ok(Profile(statements))
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "{:.0}% {} calls {:.3} ms each (longest {:.1} ms) `{}`",
                s.share * 100.0,
                s.calls,
                s.total_ms / s.calls.max(1) as f64,
                s.max_ms,
                s.query.replace('`', "'")
            )?;
        }
        Ok(())
    }
}
