//! `deliver`: append an event to each user's retained stream and announce it to every server.
//!
//! One Lua script per user makes it atomic and idempotent: a marker per (job, user) means a job
//! that runs twice still appends each event once. The markers are deleted once the ledger
//! records the job done (their two-hour expiry is the fallback). A stream keeps its events for
//! [`RETENTION_SECS`], and no more than [`STREAM_KEEPS`] of them: a user flipping flags at the
//! allowed rate kept 36,000 events, about 10 MB of Redis, of which a replay uses 1,000 at most.
//!
//! What servers receive is core's [`Envelope`], serialised here by serde. Only the stream id
//! is unknown until `XADD` runs inside the script, so the script is handed the envelope's JSON
//! in two pieces and splices the id between them; it writes no JSON of its own.

use super::{JobError, JobResult};
use crate::Ctx;
use convos_core::UserId;
use convos_core::events::{Envelope, Event, RETENTION_SECS, STREAM_KEEPS, channel, stream_key};
use convos_core::jobs::DeliverJob;
use convos_store::jobs::{Outcome, Running};
use serde::Deserialize;
use std::sync::LazyLock;

static APPEND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
        if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then
          local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', 'event', ARGV[2])
          redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[1])
          redis.call('EXPIRE', KEYS[1], ARGV[4])
          redis.call('PUBLISH', ARGV[3], ARGV[5] .. id .. ARGV[6])
          return id
        end
        return false
        "#,
    )
});

/// Stands for the stream id in a serialised [`Envelope`]; no id, user id or event name
/// contains `<`, so it occurs once, where the id goes.
const ID_HOLE: &str = "<stream-id>";

/// One user's [`Envelope`] as JSON, cut where the stream id goes: the script publishes
/// `head`, the id `XADD` assigned, then `tail`.
#[derive(Debug)]
struct Announcement {
    head: String,
    tail: String,
}

impl Announcement {
    /// Serialises `event` for `user` with a hole for the stream id.
    fn new(user: UserId, event: &Event) -> Result<Self, JobError> {
        let envelope = Envelope {
            user,
            id: ID_HOLE.to_owned(),
            event: event.clone(),
        };
        let json = serde_json::to_string(&envelope)
            .map_err(|e| JobError::Permanent(format!("unserialisable event: {e}")))?;
        match json.split_once(ID_HOLE) {
            Some((head, tail)) if !tail.contains(ID_HOLE) => Ok(Self {
                head: head.to_owned(),
                tail: tail.to_owned(),
            }),
            _ => Err(JobError::Permanent(format!(
                "the stream id's place is ambiguous in {json}"
            ))),
        }
    }
}

/// Runs a `deliver` job.
pub async fn run(ctx: &Ctx, job: &Running) -> JobResult {
    run_all(ctx, vec![prepare(ctx, job)])
        .await
        .pop()
        .unwrap_or_else(|| Err(JobError::Permanent("no result".into())))
}

/// A `deliver` job's appends, ready to go to Redis: one script call per user.
///
/// Made before the job holds a slot (decision 66): reading the payload and writing the
/// announcements is work on the worker's CPU that needs nothing a slot guards, and while it
/// ran inside the slots it stretched the time every job of the chunk held one, which at few
/// slots is what bounds a drain.
#[derive(Debug)]
pub struct Appends {
    event: &'static str,
    calls: Vec<redis::Cmd>,
}

/// Reads `job`'s payload and prepares its appends; a payload that cannot be read is a
/// permanent failure of the job alone.
pub fn prepare(ctx: &Ctx, job: &Running) -> Result<Appends, JobError> {
    let prefix = &ctx.settings.redis_prefix;
    let min_id = chrono::Utc::now().timestamp_millis() - (RETENTION_SECS as i64) * 1000;
    let payload: DeliverJob = Deserialize::deserialize(&job.payload)
        .map_err(|e| JobError::Permanent(format!("malformed payload: {e}")))?;
    let event = serde_json::to_string(&payload.event)
        .map_err(|e| JobError::Permanent(format!("unserialisable event: {e}")))?;
    let calls = payload
        .users
        .iter()
        .map(|user| {
            let announcement = Announcement::new(*user, &payload.event)?;
            let mut append = APPEND.prepare_invoke();
            append
                .key(stream_key(prefix, *user))
                .key(marker(prefix, job, *user))
                .arg(min_id)
                .arg(&event)
                .arg(channel(prefix))
                .arg(RETENTION_SECS)
                .arg(&announcement.head)
                .arg(&announcement.tail)
                .arg(STREAM_KEEPS);
            Ok(redis::Cmd::invoke_script(&append))
        })
        .collect::<Result<_, JobError>>()?;
    Ok(Appends {
        event: payload.event.name(),
        calls,
    })
}

/// Runs prepared `deliver` jobs together (decision 41): every append of every job goes to Redis
/// in one pipeline, one round trip however many jobs and users. Returns each job's result, in
/// order. A job that could not be prepared fails alone; if the pipeline fails, every job in it
/// fails (transiently), and those that appended anyway append nothing when run again (their
/// markers).
pub async fn run_all(ctx: &Ctx, jobs: Vec<Result<Appends, JobError>>) -> Vec<JobResult> {
    let mut pipe = redis::pipe();
    let planned: Vec<Result<(&'static str, usize), JobError>> = jobs
        .into_iter()
        .map(|appends| {
            let appends = appends?;
            let users = appends.calls.len();
            for call in appends.calls {
                pipe.add_command(call);
            }
            Ok((appends.event, users))
        })
        .collect();
    let answers = if planned.iter().any(|p| matches!(p, Ok((_, n)) if *n > 0)) {
        appended(ctx, &pipe).await
    } else {
        Ok(Vec::new())
    };
    let mut answers = match answers {
        Ok(ids) => Ok(ids.into_iter()),
        Err(e) => Err(e.to_string()),
    };
    planned
        .into_iter()
        .map(|plan| {
            let (name, users) = plan?;
            let ids = answers
                .as_mut()
                .map_err(|e| JobError::Transient(format!("redis: {e}")))?;
            let appended = ids.by_ref().take(users).filter(Option::is_some).count();
            Ok(Outcome::Done(format!("{name} to {appended} stream(s)")))
        })
        .collect()
}

/// Runs the appends of `pipe`: the stream id each appended, or none where the marker said
/// the event was there already. Loads the script once if Redis does not have it.
async fn appended(ctx: &Ctx, pipe: &redis::Pipeline) -> redis::RedisResult<Vec<Option<String>>> {
    let mut conn = ctx.redis.clone();
    match pipe.query_async(&mut conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            APPEND.prepare_invoke().load_async(&mut conn).await?;
            pipe.query_async(&mut conn).await
        }
        answer => answer,
    }
}

/// The marker saying `job`'s event is in `user`'s stream.
fn marker(prefix: &str, job: &Running, user: UserId) -> String {
    format!("{prefix}delivered:{}:{user}", job.id)
}

/// Deletes the markers of `jobs`, in one call; called once the ledger records them done.
///
/// A marker only guards against a second run of the same job appending again, and a job the
/// ledger holds as done never runs again (`jobs::take` runs only leases the ledger still holds,
/// and only dead or retrying jobs are ever made due again). The ledger write happens within the
/// job's time limit, itself inside its lease, so no lost-job re-dispatch can be under way. Kept
/// for their full two hours, the markers were most of the Redis memory a drain left behind (one
/// key per recipient per event). Best effort: if this fails, they still expire.
pub async fn forget(ctx: &Ctx, jobs: &[Running]) {
    let prefix = &ctx.settings.redis_prefix;
    let keys: Vec<String> = jobs
        .iter()
        .filter_map(|job| {
            let payload = DeliverJob::deserialize(&job.payload).ok()?;
            Some(
                payload
                    .users
                    .into_iter()
                    .map(|user| marker(prefix, job, user))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    if keys.is_empty() {
        return;
    }
    let mut conn = ctx.redis.clone();
    if let Err(e) = redis::cmd("DEL")
        .arg(&keys)
        .query_async::<i64>(&mut conn)
        .await
    {
        tracing::debug!(error = %e, jobs = jobs.len(), "delivery markers left to expire");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convos_core::{MessageId, ThreadId};

    #[test]
    fn an_announcement_with_the_stream_id_spliced_in_is_cores_envelope() {
        let user = UserId::generate();
        let event = Event::MessageRead {
            message_id: MessageId::generate(),
            thread_id: ThreadId::generate(),
            is_read: false,
        };
        let announcement = Announcement::new(user, &event).unwrap();

        // The splice the script does: head, the id XADD assigned, tail.
        let published = format!("{}1733155200000-7{}", announcement.head, announcement.tail);

        let envelope: Envelope = serde_json::from_str(&published).unwrap();
        assert_eq!(
            envelope,
            Envelope {
                user,
                id: "1733155200000-7".into(),
                event
            }
        );
    }
}
