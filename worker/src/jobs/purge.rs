//! `purge_expired`: erase the bodies of expired and consumed ephemeral messages.

use super::JobResult;
use crate::Ctx;
use convos_store::jobs::{Outcome, Running};

/// Messages erased per pass; a run loops until nothing is left.
const BATCH: i64 = 500;

/// Runs a `purge_expired` job.
pub async fn run(ctx: &Ctx, _job: &Running) -> JobResult {
    let (mut expired, mut consumed) = (0, 0);
    loop {
        let purged = convos_store::purge::run(&ctx.db, BATCH).await?;
        expired += purged.expired;
        consumed += purged.consumed;
        if purged.expired < BATCH as u64 && purged.consumed < BATCH as u64 {
            break;
        }
    }
    // The ledger keeps history for operators, not forever.
    let old_jobs = convos_store::purge::old_records(&ctx.db, ctx.settings.keep()).await?;
    Ok(Outcome::Done(format!(
        "purged {expired} expired and {consumed} consumed; deleted {old_jobs} old jobs"
    )))
}
