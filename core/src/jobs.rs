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

    /// Whether a worker claims a job of this kind (a committed write) before running it, so
    /// that two deliveries of one ticket at once run it once (decision 34). Only `deliver`
    /// runs on its lease alone: it is the volume, and its Lua markers already append each
    /// event once however often it runs. An email cannot be unsent.
    pub fn claimed_before_running(self) -> bool {
        self != JobKind::Deliver
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

/// One handed-out attempt of a job: its ledger row, the attempt the relay counted when it
/// dispatched it, and which hand-out of the job this is (decision 34: the dispatch carries the
/// lease, so a worker writes nothing before it runs the job, and a ticket for an attempt the
/// ledger has moved past runs nothing; decision 36: nor does a ticket of a hand-out given
/// back, whose attempt is handed out again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The `jobs` row.
    pub id: uuid::Uuid,
    /// The attempt this ticket is for (1 on the first run).
    pub attempt: i32,
    /// The job's hand-outs so far, this one included; 0 from relays before decision 36, whose
    /// tickets match any hand-out of their attempt.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub handout: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// What travels through Redis to a worker: only ledger row ids and their attempts, one or
/// several jobs of one kind (decision 33: a ticket per job cost a Redis fetch, lock and
/// acknowledgement each).
///
/// A ticket carries its leases and, for workers older than decision 34, the same jobs' ids
/// (`job_id` for one, `job_ids` for several), which those workers claim as before. Tickets
/// from older relays carry ids alone; this worker claims those the old way too.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTicket {
    /// The handed-out attempts (decision 34).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<Lease>,
    /// The `jobs` rows, for older workers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_ids: Vec<uuid::Uuid>,
    /// The one `jobs` row, in the form every worker reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<uuid::Uuid>,
}

/// Most jobs one ticket carries: enough to take a backlog's Redis and apalis costs down by this
/// much, few enough that one worker process does not hoard what another could run.
pub const TICKET_JOBS_MAX: usize = 32;

/// How many tickets a few hundred jobs are spread over (one job each while there are fewer), so
/// they start in parallel across processes.
pub const TICKET_SPREAD: usize = 8;

/// What a worker does with a ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handed {
    /// Run these attempts, as leased by the relay.
    Leased(Vec<Lease>),
    /// A ticket from an older relay: claim these jobs first.
    Claim(Vec<uuid::Uuid>),
}

impl JobTicket {
    /// A ticket for these leases (and their ids, for older workers).
    pub fn of(leases: Vec<Lease>) -> Self {
        let mut ids: Vec<uuid::Uuid> = leases.iter().map(|l| l.id).collect();
        let job_id = if ids.len() == 1 { ids.pop() } else { None };
        Self {
            leases,
            job_ids: ids,
            job_id,
        }
    }

    /// What to do with it: its leases, or, from an older relay, the jobs to claim.
    pub fn handed(&self) -> Handed {
        if self.leases.is_empty() {
            Handed::Claim(self.job_id.iter().chain(&self.job_ids).copied().collect())
        } else {
            Handed::Leased(self.leases.clone())
        }
    }

    /// How many jobs it carries.
    pub fn len(&self) -> usize {
        match self.handed() {
            Handed::Leased(l) => l.len(),
            Handed::Claim(ids) => ids.len(),
        }
    }

    /// Whether it carries none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `leases` cut into tickets: one job each for up to [`TICKET_SPREAD`] jobs, then spread
    /// evenly over that many tickets, then tickets of [`TICKET_JOBS_MAX`].
    pub fn split(leases: &[Lease]) -> Vec<Self> {
        let size = leases
            .len()
            .div_ceil(TICKET_SPREAD)
            .clamp(1, TICKET_JOBS_MAX);
        leases.chunks(size).map(|c| Self::of(c.to_vec())).collect()
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

    fn leases(n: usize) -> Vec<Lease> {
        (0..n)
            .map(|i| Lease {
                id: uuid::Uuid::new_v4(),
                attempt: 1 + (i % 3) as i32,
                handout: 1 + (i % 4) as i32,
            })
            .collect()
    }

    fn carried(ticket: &JobTicket) -> Vec<Lease> {
        match ticket.handed() {
            Handed::Leased(l) => l,
            Handed::Claim(ids) => panic!("a new ticket read as an old one: {ids:?}"),
        }
    }

    #[test]
    fn a_few_jobs_get_a_ticket_each_so_they_start_in_parallel() {
        let tickets = JobTicket::split(&leases(5));
        assert_eq!(tickets.len(), 5);
        assert!(tickets.iter().all(|t| t.len() == 1));
    }

    #[test]
    fn a_backlog_shares_tickets_of_at_most_the_maximum_and_keeps_every_job_once() {
        for n in [9, 100, 200, 1000, 1001] {
            let jobs = leases(n);
            let tickets = JobTicket::split(&jobs);
            let most = TICKET_SPREAD.max(n.div_ceil(TICKET_JOBS_MAX));
            assert!(
                tickets.len() <= most,
                "{n} jobs in {} tickets",
                tickets.len()
            );
            assert!(tickets.iter().all(|t| t.len() <= TICKET_JOBS_MAX));
            let all: Vec<Lease> = tickets.iter().flat_map(carried).collect();
            assert_eq!(all, jobs, "{n} jobs");
        }
        assert!(JobTicket::split(&[]).is_empty());
    }

    #[test]
    fn a_ticket_from_an_older_relay_is_claimed_as_before() {
        let id = uuid::Uuid::new_v4();
        let other = uuid::Uuid::new_v4();
        let one: JobTicket = serde_json::from_value(serde_json::json!({ "job_id": id })).unwrap();
        assert_eq!(one.handed(), Handed::Claim(vec![id]));
        let two: JobTicket =
            serde_json::from_value(serde_json::json!({ "job_ids": [id, other] })).unwrap();
        assert_eq!(two.handed(), Handed::Claim(vec![id, other]));
    }

    #[test]
    fn a_new_ticket_still_names_its_jobs_the_way_older_workers_read_them() {
        let one = leases(1);
        let json = serde_json::to_value(JobTicket::of(one.clone())).unwrap();
        assert_eq!(json["job_id"], serde_json::json!(one[0].id));
        assert_eq!(json["leases"][0]["attempt"], 1);
        let two = leases(2);
        let json = serde_json::to_value(JobTicket::of(two.clone())).unwrap();
        assert_eq!(json["job_ids"], serde_json::json!([two[0].id, two[1].id]));
        let back: JobTicket = serde_json::from_value(json).unwrap();
        assert_eq!(back.handed(), Handed::Leased(two));
    }

    #[test]
    fn a_lease_from_a_relay_before_hand_outs_were_numbered_matches_any_hand_out() {
        let id = uuid::Uuid::new_v4();
        let ticket: JobTicket = serde_json::from_value(serde_json::json!({
            "leases": [{ "id": id, "attempt": 2 }], "job_id": id
        }))
        .unwrap();
        let lease = Lease {
            id,
            attempt: 2,
            handout: 0,
        };
        assert_eq!(ticket.handed(), Handed::Leased(vec![lease]));
        let json = serde_json::to_value(lease).unwrap();
        assert_eq!(json.get("handout"), None, "written as that relay wrote it");
    }
}
