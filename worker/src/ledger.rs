//! The worker's statements on the job ledger, batched by arrival: takes (and outcomes) that
//! arrive while the previous statement is in flight go together in the next one.
//!
//! A take reads the leased jobs of a ticket (decision 34: the relay's dispatch counted the
//! attempt and holds the lease, so a take writes nothing and commits nothing); an outcome is
//! a write. Outcomes are group-committed: an idle worker writes each at once; under load, the
//! jobs ending at the same moment share one round trip and one commit, so the ledger's cost per
//! job falls as the load rises instead of capping it. A job still waits for its own outcome to
//! be recorded before its handler returns, so nothing changes for the ledger's promises: a
//! worker killed before a batch is written leaves those jobs leased until their deadline makes
//! them due again, exactly as a worker killed between the work and a single write did.

use crate::metrics::Metrics;
use convos_core::jobs::{JobKind, Lease};
use convos_store::StoreError;
use convos_store::jobs::{self, Outcome, Running, Taken};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

/// Most jobs in one statement.
const MAX_BATCH: usize = 512;

/// A ledger write that failed; every job of its batch gets the same error.
#[derive(Clone, Debug, thiserror::Error)]
#[error("job ledger: {0}")]
pub struct LedgerError(String);

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> Self {
        Self(e.to_string())
    }
}

/// What a ticket hands a worker, job by job.
#[derive(Clone, Copy, Debug)]
pub enum Ask {
    /// A leased attempt (decision 34).
    Lease(Lease),
    /// A job from an older relay's ticket, to claim first.
    Claim(Uuid),
}

struct TakeRequest {
    ask: Ask,
    reply: oneshot::Sender<Result<Option<Taken>, LedgerError>>,
}

struct FinishRequest {
    job: Running,
    outcome: Outcome,
    reply: oneshot::Sender<Result<bool, LedgerError>>,
}

/// How the batches are made.
#[derive(Clone, Debug)]
pub struct LedgerSettings {
    /// This process's name in the attempt history.
    pub worker: String,
    /// How long a started job may go without an outcome before it is presumed lost.
    pub deadline: Duration,
    /// How long an outcome write waits for others to join its batch (0: it goes as soon as the
    /// previous write returns).
    pub outcome_wait: Duration,
}

/// The handle jobs write through; the two writer tasks end when every handle is dropped.
#[derive(Clone)]
pub struct Ledger {
    takes: mpsc::UnboundedSender<TakeRequest>,
    outcomes: mpsc::UnboundedSender<FinishRequest>,
    ended: Ended,
}

/// Attempts whose outcome this process committed, by kind, since it started, and a signal
/// after each committed batch: each one left its kind's jobs in flight. The relay looks for
/// room in a kind at its ceiling once enough of them ended (decision 47).
#[derive(Clone, Debug)]
pub struct Ended(Arc<(HashMap<JobKind, AtomicU64>, Notify)>);

impl Ended {
    fn new() -> Self {
        let counts = JobKind::ALL
            .into_iter()
            .map(|kind| (kind, AtomicU64::new(0)))
            .collect();
        Self(Arc::new((counts, Notify::new())))
    }

    /// How many attempts of `kind` ended here so far.
    pub fn of(&self, kind: JobKind) -> u64 {
        self.0.0.get(&kind).map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Returns once a batch of outcomes committed since the last call returned (at once if one
    /// did meanwhile).
    pub async fn more(&self) {
        self.0.1.notified().await;
    }

    fn add(&self, kind: JobKind) {
        if let Some(n) = self.0.0.get(&kind) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn committed(&self) {
        self.0.1.notify_one();
    }
}

impl Ledger {
    /// Starts the writer tasks.
    pub fn spawn(db: PgPool, settings: LedgerSettings, metrics: Metrics) -> Self {
        let (takes, take_rx) = mpsc::unbounded_channel();
        let (outcomes, outcome_rx) = mpsc::unbounded_channel();
        let ended = Ended::new();
        tokio::spawn(write_takes(
            db.clone(),
            settings.clone(),
            metrics.clone(),
            take_rx,
        ));
        tokio::spawn(write_outcomes(
            db,
            settings,
            metrics,
            ended.clone(),
            outcome_rx,
        ));
        Self {
            takes,
            outcomes,
            ended,
        }
    }

    /// The attempts whose outcome this process committed, by kind.
    pub fn ended(&self) -> &Ended {
        &self.ended
    }

    /// The job a ticket hands out, ready to run; `None` when it is not to run here (see
    /// [`jobs::take`] and, for older tickets, [`jobs::start`]).
    pub async fn take(&self, ask: Ask) -> Result<Option<Taken>, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.takes
            .send(TakeRequest { ask, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Records the outcome of an attempt; returns once it is committed, with whether it was the
    /// job's current attempt (its row took the outcome) rather than a late or duplicate run.
    pub async fn finish(&self, job: Running, outcome: Outcome) -> Result<bool, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.outcomes
            .send(FinishRequest {
                job,
                outcome,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> LedgerError {
    LedgerError("the ledger writer stopped".into())
}

/// Waits for one request, then takes whatever else is already queued, up to [`MAX_BATCH`].
async fn next_batch<T>(rx: &mut mpsc::UnboundedReceiver<T>, wait: Duration) -> Option<Vec<T>> {
    let first = rx.recv().await?;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Runs `write` and, if it fails, once more after a moment: two batches that lock some of the
/// same rows in another order (a lost-job sweep, an operator's retry) can deadlock, and
/// PostgreSQL then aborts one of them.
/// A claim (of an older ticket) that committed but whose answer was lost starts nothing when
/// tried again: those jobs stay `running` until their deadline makes them due again, as after
/// a crash.
async fn twice<T, F, Fut>(mut write: F) -> Result<T, LedgerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = convos_store::Result<T>>,
{
    match write().await {
        Ok(done) => Ok(done),
        Err(first) => {
            tracing::debug!(error = %first, "ledger write failed; trying once more");
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(write().await?)
        }
    }
}

async fn write_takes(
    db: PgPool,
    settings: LedgerSettings,
    metrics: Metrics,
    mut rx: mpsc::UnboundedReceiver<TakeRequest>,
) {
    while let Some(batch) = next_batch(&mut rx, Duration::ZERO).await {
        metrics
            .ledger_batch
            .with_label_values(&["take"])
            .observe(batch.len() as f64);
        let (mut leases, mut claims) = (Vec::new(), Vec::new());
        for request in &batch {
            match request.ask {
                Ask::Lease(lease) => leases.push(lease),
                Ask::Claim(id) => claims.push(id),
            }
        }
        let taken = take_all(&db, &settings, &leases, &claims).await;
        match taken {
            Ok(mut rows) => {
                // A ticket delivered twice into one batch runs once: the first asker runs it.
                for request in batch {
                    let id = match request.ask {
                        Ask::Lease(lease) => lease.id,
                        Ask::Claim(id) => id,
                    };
                    let _ = request.reply.send(Ok(rows.remove(&id)));
                }
            }
            Err(e) => {
                for request in batch {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The leased jobs still to run, and the claimed jobs of older tickets, by id.
async fn take_all(
    db: &PgPool,
    settings: &LedgerSettings,
    leases: &[Lease],
    claims: &[Uuid],
) -> Result<HashMap<Uuid, Taken>, LedgerError> {
    let mut rows = HashMap::new();
    if !leases.is_empty() {
        for taken in twice(|| jobs::take(db, leases, &settings.worker, settings.deadline)).await? {
            rows.insert(taken.job.id, taken);
        }
    }
    if !claims.is_empty() {
        let started =
            twice(|| jobs::start(db, claims, &settings.worker, settings.deadline)).await?;
        for job in started {
            let lease_left = settings.deadline;
            rows.insert(job.id, Taken { job, lease_left });
        }
    }
    Ok(rows)
}

async fn write_outcomes(
    db: PgPool,
    settings: LedgerSettings,
    metrics: Metrics,
    ended: Ended,
    mut rx: mpsc::UnboundedReceiver<FinishRequest>,
) {
    while let Some(batch) = next_batch(&mut rx, settings.outcome_wait).await {
        metrics
            .ledger_batch
            .with_label_values(&["finish"])
            .observe(batch.len() as f64);
        // Two runs of one attempt (a ticket delivered twice) in one statement would make it
        // update a history row twice, which PostgreSQL refuses for the whole batch: the first
        // outcome of an attempt goes in, the other is answered as a late run.
        let mut seen = HashSet::new();
        let finished: Vec<(&Running, &Outcome)> = batch
            .iter()
            .filter(|r| seen.insert((r.job.id, r.job.attempt)))
            .map(|r| (&r.job, &r.outcome))
            .collect();
        let written = twice(|| jobs::finish(&db, &settings.worker, &finished)).await;
        drop(finished);
        match written {
            Ok(recorded) => {
                let mut recorded: HashSet<(Uuid, i32)> = recorded.into_iter().collect();
                for request in batch {
                    // Only the first run of the current attempt took the outcome.
                    let current = recorded.remove(&(request.job.id, request.job.attempt));
                    if current {
                        ended.add(request.job.kind);
                    }
                    let _ = request.reply.send(Ok(current));
                }
                ended.committed();
            }
            Err(e) => {
                for request in batch {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
