//! What operators see of the job queues: the board, jobs, attempts and the audit log. Shared
//! by the server (which answers `/api/v1/admin`), the worker (`convos-worker queues`) and the
//! terminal client's Ops screen.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One queue's line on the board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct QueueStats {
    /// The queue (job kind).
    pub name: String,
    /// Due now and waiting to be handed to a worker.
    pub pending: i64,
    /// Waiting for their time: a delay window or a retry backoff.
    pub scheduled: i64,
    /// Handed to a worker: waiting in Redis or for a slot, or being run (the ledger does not
    /// tell these apart, decision 34).
    pub running: i64,
    /// Finished (done or skipped) in the last hour.
    pub succeeded_1h: i64,
    /// Finished (done or skipped) in the last 24 hours.
    pub succeeded_24h: i64,
    /// Failed attempts in the last hour.
    pub failed_1h: i64,
    /// Failed attempts in the last 24 hours.
    pub failed_24h: i64,
    /// Out of attempts, waiting for an operator.
    pub dead: i64,
    /// Seconds the oldest due job has waited; 0 when none.
    pub oldest_pending_secs: f64,
    /// Whether workers are held from starting its jobs.
    pub paused: bool,
    /// Where the live counts (`pending`, `scheduled`, `running`, `dead`) stop: a count that
    /// reached it means at least that many, so a refresh costs the same however deep the
    /// backlog (decision 57). Absent from servers that count everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_limit: Option<i64>,
}

/// A column of the queue board, as `convos-worker queues` and the client's Ops screen draw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardColumn {
    /// The queue's name.
    Queue,
    /// `running` or `paused`.
    State,
    /// [`QueueStats::pending`].
    Pending,
    /// [`QueueStats::scheduled`].
    Scheduled,
    /// [`QueueStats::running`].
    Running,
    /// [`QueueStats::succeeded_1h`].
    Ok1h,
    /// [`QueueStats::succeeded_24h`].
    Ok24h,
    /// [`QueueStats::failed_1h`].
    Failed1h,
    /// [`QueueStats::failed_24h`].
    Failed24h,
    /// [`QueueStats::dead`].
    Dead,
    /// [`QueueStats::oldest_pending_secs`], as a short duration.
    Oldest,
}

impl BoardColumn {
    /// Every column, left to right.
    pub const ALL: [BoardColumn; 11] = [
        BoardColumn::Queue,
        BoardColumn::State,
        BoardColumn::Pending,
        BoardColumn::Scheduled,
        BoardColumn::Running,
        BoardColumn::Ok1h,
        BoardColumn::Ok24h,
        BoardColumn::Failed1h,
        BoardColumn::Failed24h,
        BoardColumn::Dead,
        BoardColumn::Oldest,
    ];

    /// The columns that fit a terminal window: the last hour's counts only.
    pub const COMPACT: [BoardColumn; 9] = [
        BoardColumn::Queue,
        BoardColumn::State,
        BoardColumn::Pending,
        BoardColumn::Scheduled,
        BoardColumn::Running,
        BoardColumn::Ok1h,
        BoardColumn::Failed1h,
        BoardColumn::Dead,
        BoardColumn::Oldest,
    ];

    /// Its heading.
    pub fn header(self) -> &'static str {
        match self {
            BoardColumn::Queue => "QUEUE",
            BoardColumn::State => "STATE",
            BoardColumn::Pending => "PENDING",
            BoardColumn::Scheduled => "SCHEDULED",
            BoardColumn::Running => "RUNNING",
            BoardColumn::Ok1h => "OK 1H",
            BoardColumn::Ok24h => "OK 24H",
            BoardColumn::Failed1h => "FAILED 1H",
            BoardColumn::Failed24h => "FAILED 24H",
            BoardColumn::Dead => "DEAD",
            BoardColumn::Oldest => "OLDEST",
        }
    }

    /// Characters its cells are padded to (a longer value widens its line, never truncates).
    pub fn width(self) -> usize {
        match self {
            BoardColumn::Queue => 14,
            BoardColumn::State | BoardColumn::Running | BoardColumn::Ok1h => 7,
            BoardColumn::Pending | BoardColumn::Ok24h | BoardColumn::Oldest => 8,
            BoardColumn::Scheduled | BoardColumn::Failed1h => 9,
            BoardColumn::Failed24h => 10,
            BoardColumn::Dead => 5,
        }
    }

    /// `text` padded to the column: names to the left, everything else to the right.
    fn pad(self, text: &str) -> String {
        let width = self.width();
        match self {
            BoardColumn::Queue => format!("{text:<width$}"),
            _ => format!("{text:>width$}"),
        }
    }
}

impl QueueStats {
    /// What this queue shows under `column`.
    pub fn cell(&self, column: BoardColumn) -> String {
        match column {
            BoardColumn::Queue => self.name.clone(),
            BoardColumn::State => if self.paused { "paused" } else { "running" }.to_owned(),
            BoardColumn::Pending => self.count(self.pending),
            BoardColumn::Scheduled => self.count(self.scheduled),
            BoardColumn::Running => self.count(self.running),
            BoardColumn::Ok1h => self.succeeded_1h.to_string(),
            BoardColumn::Ok24h => self.succeeded_24h.to_string(),
            BoardColumn::Failed1h => self.failed_1h.to_string(),
            BoardColumn::Failed24h => self.failed_24h.to_string(),
            BoardColumn::Dead => self.count(self.dead),
            BoardColumn::Oldest => short_duration(self.oldest_pending_secs),
        }
    }

    /// A live count as shown: `100000+` once it reached [`QueueStats::count_limit`].
    fn count(&self, n: i64) -> String {
        match self.count_limit {
            Some(limit) if n >= limit => format!("{n}+"),
            _ => n.to_string(),
        }
    }
}

/// The heading line of a board showing `columns`, one space between columns.
pub fn board_header(columns: &[BoardColumn]) -> String {
    line(columns, |column| column.header().to_owned())
}

/// `queue`'s line on a board showing `columns`, aligned under [`board_header`].
pub fn board_row(columns: &[BoardColumn], queue: &QueueStats) -> String {
    line(columns, |column| queue.cell(column))
}

fn line(columns: &[BoardColumn], text: impl Fn(BoardColumn) -> String) -> String {
    columns
        .iter()
        .map(|&column| column.pad(&text(column)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Seconds as a short duration (`-` for none, `45s`, `2m05s`, `3h07m`).
pub fn short_duration(secs: f64) -> String {
    let s = secs.round() as i64;
    match s {
        0 => "-".into(),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A worker process that reported recently.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WorkerInfo {
    /// Its unique name.
    pub name: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_seen_at: DateTime<Utc>,
}

/// The whole board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Board {
    /// One line per queue.
    pub queues: Vec<QueueStats>,
    /// Workers seen in the last minute.
    pub workers: Vec<WorkerInfo>,
}

/// A job in a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobSummary {
    /// The job.
    pub id: Uuid,
    /// Its queue.
    pub kind: String,
    /// Its state.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it runs next (pending, retry).
    pub next_run_at: DateTime<Utc>,
    /// The last error.
    pub last_error: Option<String>,
    /// What it did, when finished.
    pub outcome: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// One attempt in a job's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Attempt {
    /// Its number (1 first).
    pub attempt: i32,
    /// The worker that ran it (or runs it).
    pub worker: String,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished; null while it runs. An attempt whose worker never reported is finished when
    /// the relay finds it past its deadline, with a `lost: …` error.
    pub finished_at: Option<DateTime<Utc>>,
    /// Milliseconds it took.
    pub duration_ms: Option<f64>,
    /// Its error, if it failed.
    pub error: Option<String>,
}

/// A job with its payload and history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobDetail {
    /// The ledger row.
    #[serde(flatten)]
    pub job: JobSummary,
    /// Its idempotency key.
    pub key: String,
    /// Its payload (ids only).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// Every attempt, oldest first.
    pub attempts_history: Vec<Attempt>,
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditEntry {
    /// The record.
    pub id: Uuid,
    /// Who did it.
    pub actor: String,
    /// What (`retry`, `discard`, `pause`, `resume`).
    pub action: String,
    /// On what (a job id, a queue, a filter).
    pub target: String,
    /// How many jobs it touched.
    pub affected: i64,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// How many jobs an operator action touched, and, for a bulk action that is not finished,
/// where to continue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Affected {
    /// Jobs changed.
    pub affected: u64,
    /// A bulk action works through its jobs a window at a time for at most about two seconds
    /// a request (decision 67): when it stopped before the end, send the same filter again
    /// with this as `cursor`. `null` once it is done (always, for one job).
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// An operator action on one job or one queue, as the client's Ops screen asks it:
/// `POST /api/v1/admin/...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpsCommand {
    /// Runs a dead job again.
    Retry(Uuid),
    /// Gives up on a dead job for good.
    Discard(Uuid),
    /// Stops workers from starting a queue's jobs.
    Pause(String),
    /// Lets them start again.
    Resume(String),
}

impl OpsCommand {
    /// The path of its request.
    pub fn path(&self) -> String {
        match self {
            OpsCommand::Retry(id) => format!("/api/v1/admin/jobs/{id}/retry"),
            OpsCommand::Discard(id) => format!("/api/v1/admin/jobs/{id}/discard"),
            OpsCommand::Pause(queue) => format!("/api/v1/admin/queues/{queue}/pause"),
            OpsCommand::Resume(queue) => format!("/api/v1/admin/queues/{queue}/resume"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_commands_name_their_path() {
        let id = Uuid::nil();
        assert_eq!(
            OpsCommand::Discard(id).path(),
            format!("/api/v1/admin/jobs/{id}/discard")
        );
        assert_eq!(
            OpsCommand::Resume("notify_email".into()).path(),
            "/api/v1/admin/queues/notify_email/resume"
        );
    }

    fn queue() -> QueueStats {
        QueueStats {
            name: "notify_email".into(),
            pending: 3,
            scheduled: 1,
            running: 2,
            succeeded_1h: 10,
            succeeded_24h: 99,
            failed_1h: 4,
            failed_24h: 5,
            dead: 7,
            oldest_pending_secs: 125.0,
            paused: true,
            count_limit: Some(100_000),
        }
    }

    #[test]
    fn a_count_that_reached_the_limit_reads_as_at_least() {
        let deep = QueueStats {
            pending: 100_000,
            dead: 99_999,
            ..queue()
        };
        assert_eq!(deep.cell(BoardColumn::Pending), "100000+");
        assert_eq!(deep.cell(BoardColumn::Dead), "99999");
        let exact = QueueStats {
            count_limit: None,
            ..deep
        };
        assert_eq!(
            exact.cell(BoardColumn::Pending),
            "100000",
            "a server counting everything"
        );
    }

    #[test]
    fn every_cell_of_a_queue_sits_under_its_heading() {
        for columns in [&BoardColumn::ALL[..], &BoardColumn::COMPACT[..]] {
            let header = board_header(columns);
            let row = board_row(columns, &queue());
            assert_eq!(header.len(), row.len(), "\n{header}\n{row}");
            let mut start = 0;
            for &column in columns {
                let span = start..start + column.width();
                assert_eq!(header[span.clone()].trim(), column.header());
                assert_eq!(row[span].trim(), queue().cell(column));
                start += column.width() + 1;
            }
        }
        let cells: Vec<String> = BoardColumn::ALL.iter().map(|&c| queue().cell(c)).collect();
        assert_eq!(
            cells,
            [
                "notify_email",
                "paused",
                "3",
                "1",
                "2",
                "10",
                "99",
                "4",
                "5",
                "7",
                "2m05s"
            ]
        );
    }

    #[test]
    fn every_heading_fits_its_column() {
        for column in BoardColumn::ALL {
            assert!(column.header().len() <= column.width(), "{column:?}");
        }
    }

    #[test]
    fn waits_read_as_short_durations() {
        assert_eq!(short_duration(0.2), "-");
        assert_eq!(short_duration(45.0), "45s");
        assert_eq!(short_duration(125.0), "2m05s");
        assert_eq!(short_duration(3.0 * 3600.0 + 7.0 * 60.0), "3h07m");
    }
}
