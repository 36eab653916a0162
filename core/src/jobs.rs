//! Background job kinds and their payloads: one definition for the producer and the consumer.

use crate::events::Event;
use crate::ids::{ThreadId, UserId};
use serde::{Deserialize, Serialize};

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Publish a live event to users' event streams.
    Deliver,
    /// Email a recipient about new messages in a thread.
    NotifyEmail,
    /// Erase the bodies of expired and consumed ephemeral messages.
    PurgeExpired,
    /// Email a new (or re-claimed) address the link that proves its owner wants it.
    VerifyEmail,
    /// Read one received email (a reply, a bounce, a complaint) and act on it.
    InboundMail,
    /// Email a user in digest mode the day's unread threads.
    DigestEmail,
}

impl JobKind {
    /// Every kind, e.g. for one worker per queue.
    pub const ALL: [JobKind; 6] = [
        JobKind::Deliver,
        JobKind::NotifyEmail,
        JobKind::PurgeExpired,
        JobKind::VerifyEmail,
        JobKind::InboundMail,
        JobKind::DigestEmail,
    ];

    /// The stored name, which is also the queue's name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Deliver => "deliver",
            JobKind::NotifyEmail => "notify_email",
            JobKind::PurgeExpired => "purge_expired",
            JobKind::VerifyEmail => "verify_email",
            JobKind::InboundMail => "inbound_mail",
            JobKind::DigestEmail => "digest_email",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// Attempts before a job of this kind is dead.
    pub fn max_attempts(self) -> i32 {
        match self {
            JobKind::Deliver => 10,
            JobKind::NotifyEmail => 8,
            JobKind::PurgeExpired => 3,
            JobKind::VerifyEmail => 6,
            JobKind::InboundMail => 8,
            JobKind::DigestEmail => 6,
        }
    }
}

/// Payload of a `deliver` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverJob {
    /// The event.
    pub event: Event,
    /// Everyone it goes to.
    pub users: Vec<UserId>,
}

/// Payload of a `notify_email` job: every queued delivery of the thread to the recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEmailJob {
    /// The thread.
    pub thread_id: ThreadId,
    /// Who may get the email.
    pub recipient_id: UserId,
}

/// Payload of a `verify_email` job: the address as it was claimed. At send time the worker
/// skips it if the account's address changed, was verified, or another account verified it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyEmailJob {
    /// The account (named like notify_email's, so the operators' "jobs about this user"
    /// filter finds it).
    pub recipient_id: UserId,
    /// The address to verify.
    pub email: String,
    /// Hours the link in the email works.
    pub valid_hours: u64,
}

/// Payload of an `inbound_mail` job: the received email's row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMailJob {
    /// The `inbound_mail` row.
    pub inbound_id: uuid::Uuid,
}

/// Payload of a `digest_email` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEmailJob {
    /// Whose digest (named like notify_email's, for the operators' filter).
    pub recipient_id: UserId,
}

/// Payload of a `purge_expired` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeExpiredJob {
    /// The period this run belongs to (seconds since the epoch divided by the period).
    pub period: i64,
}

/// What travels through Redis to a worker: only ledger row ids, one or several of one kind
/// (decision 33: a ticket per job cost a Redis fetch, lock and acknowledgement each).
///
/// Tickets written before several jobs could share one carry `job_id` alone; both forms read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTicket {
    /// The `jobs` rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_ids: Vec<uuid::Uuid>,
    /// The one `jobs` row of a ticket from before `job_ids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<uuid::Uuid>,
}

/// Most jobs one ticket carries: enough to take a backlog's Redis and apalis costs down by this
/// much, few enough that one worker process does not hoard what another could run.
pub const TICKET_JOBS_MAX: usize = 32;

/// How many tickets a few hundred jobs are spread over (one job each while there are fewer), so
/// they start in parallel across processes.
pub const TICKET_SPREAD: usize = 8;

impl JobTicket {
    /// A ticket for these jobs. One job is written in the older form (`job_id`), which every
    /// worker reads, so live traffic keeps working across a rolling upgrade; only a backlog's
    /// tickets need every worker on this version.
    pub fn of(mut job_ids: Vec<uuid::Uuid>) -> Self {
        if job_ids.len() == 1 {
            return Self {
                job_id: job_ids.pop(),
                job_ids,
            };
        }
        Self {
            job_ids,
            job_id: None,
        }
    }

    /// The jobs it carries, in order.
    pub fn jobs(&self) -> impl Iterator<Item = uuid::Uuid> + '_ {
        self.job_id.iter().chain(&self.job_ids).copied()
    }

    /// `jobs` cut into tickets: one job each for up to [`TICKET_SPREAD`] jobs, then spread
    /// evenly over that many tickets, then tickets of [`TICKET_JOBS_MAX`].
    pub fn split(jobs: &[uuid::Uuid]) -> Vec<Self> {
        let size = jobs.len().div_ceil(TICKET_SPREAD).clamp(1, TICKET_JOBS_MAX);
        jobs.chunks(size).map(|c| Self::of(c.to_vec())).collect()
    }
}

/// The Redis pub/sub channel, after the key prefix, on which servers announce that they
/// committed jobs: `convos:jobs:wake` with the default prefix. A message there is only a hint
/// to run a relay pass now; its payload means nothing and a lost one costs one relay interval.
pub const WAKE_CHANNEL: &str = "jobs:wake";

/// The wake-up channel under `prefix` (see [`WAKE_CHANNEL`]).
pub fn wake_channel(prefix: &str) -> String {
    format!("{prefix}{WAKE_CHANNEL}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<uuid::Uuid> {
        (0..n).map(|_| uuid::Uuid::new_v4()).collect()
    }

    #[test]
    fn a_few_jobs_get_a_ticket_each_so_they_start_in_parallel() {
        let jobs = ids(5);
        let tickets = JobTicket::split(&jobs);
        assert_eq!(tickets.len(), 5);
        assert!(tickets.iter().all(|t| t.jobs().count() == 1));
    }

    #[test]
    fn a_backlog_shares_tickets_of_at_most_the_maximum_and_keeps_every_job_once() {
        for n in [9, 100, 200, 1000, 1001] {
            let jobs = ids(n);
            let tickets = JobTicket::split(&jobs);
            let most = TICKET_SPREAD.max(n.div_ceil(TICKET_JOBS_MAX));
            assert!(
                tickets.len() <= most,
                "{n} jobs in {} tickets",
                tickets.len()
            );
            assert!(tickets.iter().all(|t| t.jobs().count() <= TICKET_JOBS_MAX));
            let carried: Vec<_> = tickets.iter().flat_map(JobTicket::jobs).collect();
            assert_eq!(carried, jobs, "{n} jobs");
        }
        assert!(JobTicket::split(&[]).is_empty());
    }

    #[test]
    fn a_ticket_from_before_several_jobs_still_reads() {
        let id = uuid::Uuid::new_v4();
        let old: JobTicket = serde_json::from_value(serde_json::json!({ "job_id": id })).unwrap();
        assert_eq!(old.jobs().collect::<Vec<_>>(), vec![id]);
        let one = serde_json::to_value(JobTicket::of(vec![id])).unwrap();
        assert_eq!(
            one,
            serde_json::json!({ "job_id": id }),
            "what older workers read"
        );
        let other = uuid::Uuid::new_v4();
        let two = serde_json::to_value(JobTicket::of(vec![id, other])).unwrap();
        assert_eq!(two, serde_json::json!({ "job_ids": [id, other] }));
    }
}
