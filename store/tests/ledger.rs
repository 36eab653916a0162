//! The ledger's batches: the relay leases many jobs in one statement, workers take them in
//! one read and record their outcomes in one write, and an outcome that lands late (its batch
//! was in flight while the job was handed out again) changes only its own attempt's history,
//! written with the outcome (or by the lost-job sweep).

use convos_core::jobs::{JobKind, Lease};
use convos_core::{DisplayName, EmailAddress, Username};
use convos_store::jobs::{self, Outcome};
use convos_store::ops::{self, JobFilter};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(60);

/// `count` deliver jobs, due now, keyed `{prefix}:{n}`.
async fn enqueue_due(db: &PgPool, prefix: &str, count: usize) {
    let mut conn = db.acquire().await.unwrap();
    for n in 0..count {
        let payload = serde_json::json!({"event": null, "users": []});
        let key = format!("{prefix}:{n}");
        jobs::enqueue(
            &mut conn,
            JobKind::Deliver,
            &key,
            None,
            payload,
            Duration::ZERO,
        )
        .await
        .unwrap();
    }
}

/// `count` deliver jobs, dispatched as the relay leaves them.
async fn dispatched(db: &PgPool, count: usize) -> Vec<Lease> {
    enqueue_due(db, "test", count).await;
    let leases = relay_dispatches(db, JobKind::Deliver).await;
    assert_eq!(leases.len(), count);
    leases
}

/// One `verify_email` job (a kind claimed before it runs), due now.
async fn enqueue_email_job(db: &PgPool, key: &str) {
    let mut conn = db.acquire().await.unwrap();
    jobs::enqueue(
        &mut conn,
        JobKind::VerifyEmail,
        key,
        None,
        serde_json::json!({}),
        Duration::ZERO,
    )
    .await
    .unwrap();
}

/// What the relay does with due jobs of `kind`: hands them out, each attempt leased.
async fn relay_dispatches(db: &PgPool, kind: JobKind) -> Vec<Lease> {
    jobs::dispatch_due(db, kind, 1000, 100_000, DEADLINE)
        .await
        .unwrap()
        .leases
}

/// What a worker does with a ticket: takes its leases, ready to run.
async fn take(db: &PgPool, leases: &[Lease]) -> Vec<jobs::Running> {
    jobs::take(db, leases, "worker-a", DEADLINE)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.job)
        .collect()
}

fn ids(leases: &[Lease]) -> Vec<Uuid> {
    leases.iter().map(|l| l.id).collect()
}

async fn state(db: &PgPool, id: Uuid) -> (String, i32) {
    sqlx::query_as("select state, attempts from jobs where id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

/// The attempt history of a job: (attempt, finished, error).
async fn attempts(db: &PgPool, id: Uuid) -> Vec<(i32, bool, Option<String>)> {
    sqlx::query_as(
        "select attempt, finished_at is not null, error from job_history \
         where job_id = $1 order by attempt",
    )
    .bind(id)
    .fetch_all(db)
    .await
    .unwrap()
}

/// The worker's default keeping: a week, a day for live events' jobs.
const KEEP: convos_store::purge::Keep = convos_store::purge::Keep {
    days: 7,
    event_hours: 24,
};

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_batch_takes_each_leased_job_once_and_records_every_outcome(db: PgPool) {
    let leases = dispatched(&db, 5).await;
    // A ticket delivered twice, a lease of a job that does not exist and one for an attempt
    // the ledger never handed out, in the same batch.
    let mut batch = leases.clone();
    batch.push(leases[0]);
    batch.push(Lease {
        id: Uuid::now_v7(),
        attempt: 1,
        handout: 1,
    });
    batch.push(Lease {
        id: leases[1].id,
        attempt: 2,
        handout: 1,
    });

    let mut taken = take(&db, &batch).await;
    taken.sort_by_key(|job| job.id);
    taken.dedup_by_key(|job| job.id);

    assert_eq!(taken.len(), 5, "each leased job once");
    assert!(taken.iter().all(|job| job.attempt == 1));
    let under_way = ops::job(&db, leases[0].id).await.unwrap().attempts_history;
    assert_eq!(
        under_way.len(),
        1,
        "the ops view shows the attempt under way"
    );
    assert!(under_way[0].finished_at.is_none());

    let done = Outcome::Done("sent".into());
    let at = chrono::Utc::now() + chrono::Duration::seconds(30);
    let retry = Outcome::Retry {
        error: "smtp: try later".into(),
        at,
    };
    let dead = Outcome::Dead("malformed payload".into());
    let outcomes: Vec<(&jobs::Running, &Outcome)> = taken
        .iter()
        .zip([&done, &done, &retry, &dead, &done])
        .collect();
    jobs::finish(&db, "worker-a", &outcomes).await.unwrap();

    let states: Vec<String> = {
        let mut s = Vec::new();
        for job in &taken {
            s.push(state(&db, job.id).await.0);
        }
        s
    };
    assert_eq!(states, ["done", "done", "retry", "dead", "done"]);
    let (error, next_run_at, worker): (
        Option<String>,
        chrono::DateTime<chrono::Utc>,
        Option<String>,
    ) = sqlx::query_as("select last_error, next_run_at, worker from jobs where id = $1")
        .bind(taken[2].id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(error.as_deref(), Some("smtp: try later"));
    assert!((next_run_at - at).num_milliseconds().abs() < 1);
    assert_eq!(worker.as_deref(), Some("worker-a"), "who ran it");
    for job in &taken {
        let history = attempts(&db, job.id).await;
        assert_eq!(history.len(), 1);
        assert!(history[0].1, "attempt finished");
    }
    assert!(
        take(&db, &leases).await.is_empty(),
        "a finished job's ticket, delivered again, runs nothing"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_key_enqueues_one_job_of_each_kind_and_the_key_index_leaves_live_events_out(db: PgPool) {
    let mut conn = db.acquire().await.unwrap();
    for kind in JobKind::ALL {
        let key = format!("{}:once", kind.as_str());
        let enqueue = async |conn: &mut sqlx::PgConnection| {
            let payload = serde_json::json!({});
            jobs::enqueue(conn, kind, &key, None, payload, Duration::ZERO)
                .await
                .unwrap()
        };
        assert!(enqueue(&mut conn).await, "{kind:?}: the first is written");
        if kind == JobKind::Deliver {
            assert!(
                enqueue(&mut conn).await,
                "a live event's key is not checked: enqueued twice, it is two jobs"
            );
        } else {
            assert!(!enqueue(&mut conn).await, "{kind:?}: one job per key");
        }
    }
    // Decision 42: a `deliver` job's key is unique by construction (a new message's id, or an
    // id made for the event), so the unique index leaves `deliver` jobs out.
    let predicate: Option<String> = sqlx::query_scalar(
        "select pg_get_expr(indpred, indrelid) from pg_index \
         where indexrelid = 'jobs_key'::regclass and indisunique",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(predicate.as_deref(), Some("(kind <> 'deliver'::text)"));
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_successful_attempt_is_kept_on_its_jobs_row_and_shown_once_in_its_history(db: PgPool) {
    let leases = dispatched(&db, 3).await;
    let taken = take(&db, &leases).await;
    let (done, skipped) = (
        Outcome::Done("sent".into()),
        Outcome::Skipped("read already".into()),
    );
    let failed = Outcome::Retry {
        error: "smtp: try later".into(),
        at: chrono::Utc::now(),
    };
    let outcomes = [
        (&taken[0], &done),
        (&taken[1], &skipped),
        (&taken[2], &failed),
    ];
    jobs::finish(&db, "worker-a", &outcomes).await.unwrap();

    let written: Vec<Uuid> = sqlx::query_scalar("select job_id from job_attempts")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(written, [taken[2].id], "a history row only for the failure");
    for job in &taken {
        let shown = ops::job(&db, job.id).await.unwrap().attempts_history;
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert_eq!(shown[0].attempt, 1);
        assert_eq!(shown[0].worker, "worker-a");
        assert_eq!(
            shown[0].started_at, job.started_at,
            "the attempt's own start"
        );
        assert!(shown[0].finished_at.is_some());
    }

    // A worker from before decision 40 wrote a history row for its success and no start on
    // the row: the history shows that attempt once.
    sqlx::query("update jobs set started_at = null where id = $1")
        .bind(taken[0].id)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "insert into job_attempts (job_id, attempt, worker, started_at, finished_at) \
         values ($1, 1, 'older-worker', now(), now())",
    )
    .bind(taken[0].id)
    .execute(&db)
    .await
    .unwrap();
    let shown = ops::job(&db, taken[0].id).await.unwrap().attempts_history;
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].worker, "older-worker");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_ticket_from_an_older_relay_is_claimed_once(db: PgPool) {
    let leases = dispatched(&db, 2).await;
    let claimed = jobs::start(&db, &ids(&leases), "worker-a", DEADLINE)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let again = jobs::start(&db, &ids(&leases), "worker-b", DEADLINE)
        .await
        .unwrap();
    assert!(again.is_empty(), "running jobs are not claimed twice");
    let done = Outcome::Done("sent".into());
    let outcomes: Vec<_> = claimed.iter().map(|job| (job, &done)).collect();
    jobs::finish(&db, "worker-a", &outcomes).await.unwrap();
    for lease in leases {
        assert_eq!(state(&db, lease.id).await.0, "done");
    }
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_paused_queues_jobs_wait_and_the_others_run_from_the_same_batch(db: PgPool) {
    let deliver = dispatched(&db, 2).await;
    let mut conn = db.acquire().await.unwrap();
    jobs::enqueue(
        &mut conn,
        JobKind::PurgeExpired,
        "purge:test",
        None,
        serde_json::json!({"period": 1}),
        Duration::ZERO,
    )
    .await
    .unwrap();
    drop(conn);
    let purge = relay_dispatches(&db, JobKind::PurgeExpired).await;
    let operator = convos_store::users::insert(
        &db,
        &Username::parse("operator").unwrap(),
        &EmailAddress::parse("operator@example.com").unwrap(),
        &DisplayName::parse("Operator").unwrap(),
        "x",
        true,
    )
    .await
    .unwrap();
    let _ = ops::set_paused(&db, JobKind::Deliver, true, operator.id.as_uuid())
        .await
        .unwrap();

    let batch = [deliver.clone(), purge.clone()].concat();
    let taken = take(&db, &batch).await;

    assert_eq!(
        taken.iter().map(|j| j.id).collect::<Vec<_>>(),
        ids(&purge),
        "only the running queue's job runs"
    );
    for lease in deliver {
        assert_eq!(
            state(&db, lease.id).await,
            ("retry".into(), 0),
            "given back to the relay, no attempt spent"
        );
        assert!(attempts(&db, lease.id).await.is_empty());
    }
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_outcome_landing_after_the_job_was_handed_out_again_changes_only_its_attempt(
    db: PgPool,
) {
    let lease = dispatched(&db, 1).await[0];
    let id = lease.id;
    let first = take(&db, &[lease]).await.remove(0);
    // Its outcome is still in a batch when the deadline passes: the job is presumed lost, an
    // operator retries it at once, and the relay hands it out again.
    sqlx::query("update jobs set deadline_at = now() - interval '1 second' where id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(jobs::requeue_lost(&db).await.unwrap(), 1);
    let lost: (i32, Option<String>) =
        sqlx::query_as("select attempt, error from job_attempts where job_id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        lost,
        (
            1,
            Some("lost: no outcome before the deadline (worker stopped?)".into())
        ),
        "the lost attempt is in the history"
    );
    let retried = ops::retry(&db, &JobFilter::default(), Some(id), None)
        .await
        .unwrap()
        .without_wake()
        .affected;
    assert_eq!(retried, 1);
    let again = relay_dispatches(&db, JobKind::Deliver).await;
    assert_eq!(
        again,
        [Lease {
            id,
            attempt: 2,
            handout: 2
        }]
    );
    assert!(
        take(&db, &[lease]).await.is_empty(),
        "the first attempt's ticket, delivered again, runs nothing"
    );
    let second = take(&db, &again).await.remove(0);
    assert_eq!(second.attempt, 2);

    // The first attempt's batch lands now.
    let late = Outcome::Done("sent".into());
    let recorded = jobs::finish(&db, "worker-a", &[(&first, &late)])
        .await
        .unwrap();
    assert!(recorded.is_empty(), "a late outcome is not the job's");

    assert_eq!(
        state(&db, id).await,
        ("dispatched".into(), 2),
        "the current attempt owns the job"
    );
    let dead = Outcome::Dead("redis: gone".into());
    let recorded = jobs::finish(&db, "worker-b", &[(&second, &dead)])
        .await
        .unwrap();
    assert_eq!(
        recorded,
        [(id, 2)],
        "the current attempt's outcome is the job's"
    );
    assert_eq!(state(&db, id).await, ("dead".into(), 2));
    assert_eq!(
        attempts(&db, id).await,
        [(1, true, None), (2, true, Some("redis: gone".into()))],
        "each attempt's history is its own: the late outcome replaces the presumed loss"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_lease_given_back_unpushed_costs_no_attempt(db: PgPool) {
    let leases = dispatched(&db, 3).await;
    jobs::undispatch(&db, &leases).await.unwrap();
    for lease in &leases {
        assert_eq!(state(&db, lease.id).await, ("retry".into(), 0));
    }
    assert!(
        take(&db, &leases).await.is_empty(),
        "a ticket that reached Redis anyway runs nothing"
    );
    let again = relay_dispatches(&db, JobKind::Deliver).await;
    assert!(again.iter().all(|l| l.attempt == 1), "{again:?}");
    assert!(again.iter().all(|l| l.handout == 2), "{again:?}");
    // The same attempt is handed out again: the first hand-out's stray ticket still runs
    // nothing, nor can it give the new hand-out back.
    assert!(take(&db, &leases).await.is_empty(), "a stray first ticket");
    jobs::undispatch(&db, &leases).await.unwrap();
    assert_eq!(take(&db, &again).await.len(), 3, "the second hand-out runs");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_lease_from_a_relay_before_hand_outs_were_numbered_still_runs(db: PgPool) {
    let leases = dispatched(&db, 2).await;
    let unnumbered: Vec<Lease> = leases.iter().map(|l| Lease { handout: 0, ..*l }).collect();
    assert_eq!(take(&db, &unnumbered).await.len(), 2);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_relay_hands_out_due_jobs_of_one_kind_oldest_first_and_each_once(db: PgPool) {
    // Arrange: three deliver jobs due a second apart (enqueued newest first), one not yet due,
    // and an email job due now.
    let mut conn = db.acquire().await.unwrap();
    let payload = serde_json::json!({"event": null, "users": []});
    for (key, kind, delay) in [
        ("due:3", JobKind::Deliver, 0),
        ("due:2", JobKind::Deliver, 0),
        ("due:1", JobKind::Deliver, 0),
        ("later", JobKind::Deliver, 3600),
        ("email", JobKind::NotifyEmail, 0),
    ] {
        jobs::enqueue(
            &mut conn,
            kind,
            key,
            None,
            payload.clone(),
            Duration::from_secs(delay),
        )
        .await
        .unwrap();
    }
    sqlx::query(
        "update jobs set next_run_at = now() - make_interval(secs => \
           substr(key, 5)::int) where key like 'due:%'",
    )
    .execute(&db)
    .await
    .unwrap();
    let key_of = |id: Uuid| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, String>("select key from jobs where id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };

    // Act: two relays at once, then one more pass.
    let (one, two) = tokio::join!(
        jobs::dispatch_due(&db, JobKind::Deliver, 2, 100_000, DEADLINE),
        jobs::dispatch_due(&db, JobKind::Deliver, 2, 100_000, DEADLINE)
    );
    let again = jobs::dispatch_due(&db, JobKind::Deliver, 10, 100_000, DEADLINE)
        .await
        .unwrap()
        .leases;

    // Assert: the three due deliver jobs went out once each, each relay's in due order
    // (oldest first); nothing else was handed out.
    let (one, two) = (ids(&one.unwrap().leases), ids(&two.unwrap().leases));
    let mut handed = Vec::new();
    for id in one.iter().chain(&two) {
        handed.push(key_of(*id).await);
        assert_eq!(
            state(&db, *id).await,
            ("dispatched".into(), 1),
            "leased, its attempt counted"
        );
    }
    handed.sort();
    assert_eq!(handed, ["due:1", "due:2", "due:3"]);
    for relay in [&one, &two] {
        let mut keys = Vec::new();
        for id in relay {
            keys.push(key_of(*id).await);
        }
        let mut oldest_first = keys.clone();
        oldest_first.sort_by(|a, b| b.cmp(a));
        assert_eq!(keys, oldest_first, "oldest first");
    }
    assert!(again.is_empty(), "nothing due is left: {again:?}");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_relay_keeps_no_more_jobs_in_flight_than_the_ceiling(db: PgPool) {
    // Nothing due: a ceiling below the request did not bound the dispatch, nothing else did.
    let idle = jobs::dispatch_due(&db, JobKind::Deliver, 1000, 25, DEADLINE)
        .await
        .unwrap();
    assert!(idle.leases.is_empty());
    assert!(
        !idle.at_ceiling,
        "nothing in flight, the ceiling is not reached"
    );

    // Arrange: 30 due deliver jobs, 10 of them already handed out and not yet finished.
    enqueue_due(&db, "ceiling", 30).await;
    let first = jobs::dispatch_due(&db, JobKind::Deliver, 10, 25, DEADLINE)
        .await
        .unwrap();
    assert_eq!(first.leases.len(), 10);
    assert!(!first.at_ceiling);

    // Act and assert: with a ceiling of 25, only 15 more go out however many are asked for,
    // and the relay is told the ceiling bound it; then none until some finish.
    let second = jobs::dispatch_due(&db, JobKind::Deliver, 1000, 25, DEADLINE)
        .await
        .unwrap();
    assert_eq!(second.leases.len(), 15, "up to the ceiling");
    assert!(second.at_ceiling);
    let none = jobs::dispatch_due(&db, JobKind::Deliver, 1000, 25, DEADLINE)
        .await
        .unwrap();
    assert!(none.leases.is_empty(), "at the ceiling, nothing more");
    assert!(none.at_ceiling);
    let taken = take(&db, &first.leases).await;
    let done = Outcome::Done("sent".into());
    let outcomes: Vec<_> = taken.iter().map(|job| (job, &done)).collect();
    jobs::finish(&db, "w1", &outcomes).await.unwrap();
    let after = jobs::dispatch_due(&db, JobKind::Deliver, 1000, 25, DEADLINE)
        .await
        .unwrap();
    assert_eq!(
        after.leases.len(),
        5,
        "finished jobs leave room: the last 5 due"
    );
    assert!(
        !after.at_ceiling,
        "20 in flight, 5 due: the due jobs bounded it, not the ceiling"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_email_jobs_ticket_delivered_twice_at_once_runs_once_a_deliver_runs_on_its_lease(
    db: PgPool,
) {
    enqueue_due(&db, "deliver", 1).await;
    enqueue_email_job(&db, "verify:test").await;
    let deliver = relay_dispatches(&db, JobKind::Deliver).await;
    let email = relay_dispatches(&db, JobKind::VerifyEmail).await;
    let ticket = [deliver.clone(), email.clone()].concat();

    // Two workers take the same ticket at the same moment.
    let (a, b) = tokio::join!(
        jobs::take(&db, &ticket, "worker-a", DEADLINE),
        jobs::take(&db, &ticket, "worker-b", DEADLINE)
    );
    let (a, b) = (a.unwrap(), b.unwrap());

    let runs = |id: Uuid| a.iter().chain(&b).filter(|t| t.job.id == id).count();
    assert_eq!(runs(email[0].id), 1, "the email job is claimed once");
    assert_eq!(
        runs(deliver[0].id),
        2,
        "the deliver job runs on its lease (its markers append once)"
    );
    assert_eq!(state(&db, email[0].id).await, ("running".into(), 1));
    assert_eq!(state(&db, deliver[0].id).await, ("dispatched".into(), 1));
    assert!(
        a.iter()
            .chain(&b)
            .all(|t| t.lease_left > Duration::from_secs(50)),
        "the lease's time left comes with the job"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_purge_deletes_old_jobs_with_their_attempt_history(db: PgPool) {
    let leases = dispatched(&db, 3).await;
    let taken = take(&db, &leases).await;
    let failed = Outcome::Retry {
        error: "redis: gone".into(),
        at: chrono::Utc::now(),
    };
    let done = Outcome::Done("sent".into());
    let outcomes: Vec<_> = taken.iter().map(|job| (job, &failed)).collect();
    jobs::finish(&db, "worker-a", &outcomes).await.unwrap();
    let again = relay_dispatches(&db, JobKind::Deliver).await;
    let taken = take(&db, &again).await;
    let outcomes: Vec<_> = taken.iter().map(|job| (job, &done)).collect();
    jobs::finish(&db, "worker-a", &outcomes).await.unwrap();
    let old = leases[0].id;
    sqlx::query("update jobs set finished_at = now() - interval '8 days' where id = $1")
        .bind(old)
        .execute(&db)
        .await
        .unwrap();
    // The board's counts of three days ago: it shows one day.
    sqlx::query(
        "insert into job_outcome_counts (kind, minute, counted_by, succeeded) \
         values ('deliver', date_trunc('minute', now() - interval '3 days'), 'w', 5)",
    )
    .execute(&db)
    .await
    .unwrap();

    let purged = convos_store::purge::old_records(&db, KEEP).await.unwrap();

    assert_eq!(purged, 1, "only the job finished over 7 days ago");
    assert!(
        attempts(&db, old).await.is_empty(),
        "its history went with it"
    );
    assert_eq!(
        attempts(&db, leases[1].id).await.len(),
        2,
        "a recent job keeps its history"
    );
    let counts: (i64, i64, i64) = sqlx::query_as(
        "select sum(succeeded)::int8, sum(failed)::int8, \
                count(*) filter (where minute < now() - interval '2 days') \
         from job_outcome_counts",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(counts, (3, 3, 0), "today's counts stay, older ones go");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_relay_hands_out_no_more_while_many_leases_waited_unclaimed_a_quarter_deadline(
    db: PgPool,
) {
    // Arrange: room for 20 in flight; one deliver job handed out and not yet taken, 10 due.
    const CEILING: i64 = 20;
    let lease_age = |db: PgPool, share: f64| async move {
        sqlx::query(
            "update jobs set deadline_at = now() + make_interval(secs => $1) \
             where state = 'dispatched'",
        )
        .bind(DEADLINE.as_secs_f64() * (1.0 - share))
        .execute(&db)
        .await
        .unwrap();
    };
    enqueue_due(&db, "waiting", 1).await;
    let first = jobs::dispatch_due(&db, JobKind::Deliver, 1, CEILING, DEADLINE)
        .await
        .unwrap()
        .leases;
    enqueue_due(&db, "due", 10).await;

    // One lease has waited 30% of the deadline (a lost ticket, a slow job): it does not hold
    // the kind back, more go out.
    lease_age(db.clone(), 0.3).await;
    let some = jobs::dispatch_due(&db, JobKind::Deliver, 5, CEILING, DEADLINE)
        .await
        .unwrap();
    assert_eq!(some.leases.len(), 5);

    // Act: now all six leases, over a quarter of the room, have waited that long.
    lease_age(db.clone(), 0.3).await;
    let none = jobs::dispatch_due(&db, JobKind::Deliver, 5, CEILING, DEADLINE)
        .await
        .unwrap();

    // Assert: the workers are behind; nothing more goes out until the old leases are taken
    // and finish (or lapse), and the relay is told it is at its bound.
    assert!(none.leases.is_empty(), "{:?}", none.leases);
    assert!(none.at_ceiling);
    let mut handed = first.clone();
    handed.extend(some.leases);
    let taken = take(&db, &handed).await;
    let done = Outcome::Done("sent".into());
    let outcomes: Vec<_> = taken.iter().map(|job| (job, &done)).collect();
    jobs::finish(&db, "w1", &outcomes).await.unwrap();
    let after = jobs::dispatch_due(&db, JobKind::Deliver, 5, CEILING, DEADLINE)
        .await
        .unwrap();
    assert_eq!(
        after.leases.len(),
        5,
        "the rest go out once the old ones finished"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_lapsed_lease_counts_for_a_deliver_job_and_not_for_an_unclaimed_email_job(db: PgPool) {
    enqueue_due(&db, "deliver", 1).await;
    enqueue_email_job(&db, "verify:lapsed").await;
    let deliver = relay_dispatches(&db, JobKind::Deliver).await[0];
    let email = relay_dispatches(&db, JobKind::VerifyEmail).await[0];
    // Neither ticket reached a worker before the deadline (a flushed Redis, say).
    sqlx::query("update jobs set deadline_at = now() - interval '1 second'")
        .execute(&db)
        .await
        .unwrap();

    assert_eq!(jobs::requeue_lost(&db).await.unwrap(), 2);

    assert_eq!(
        state(&db, deliver.id).await,
        ("retry".into(), 1),
        "a deliver job may have run on its lease: the attempt counts"
    );
    assert_eq!(attempts(&db, deliver.id).await.len(), 1, "recorded as lost");
    assert_eq!(
        state(&db, email.id).await,
        ("retry".into(), 0),
        "an email job runs only once claimed: this one never started"
    );
    assert!(attempts(&db, email.id).await.is_empty());
}

/// Tuples read so far through the indexes that list jobs by state (`jobs_inflight`,
/// `jobs_dead_by_id`), once `conn`'s own counts are flushed to the statistics.
async fn reads_by_state(db: &PgPool, conn: &PgPool) -> i64 {
    sqlx::query("select pg_stat_force_next_flush()")
        .execute(conn)
        .await
        .unwrap();
    sqlx::query_scalar(
        "select coalesce(sum(idx_tup_read), 0)::int8 from pg_stat_user_indexes \
         where indexrelname in ('jobs_inflight', 'jobs_dead_by_id')",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_take_and_an_outcome_find_their_jobs_by_id_whatever_the_statistics_say(db: PgPool) {
    // The statistics of a quiet ledger: thousands of jobs due and none in flight (a paused
    // queue, or the moment before a burst). A take or an outcome planned on them, with 2,000
    // jobs then in flight, read every job in flight for each ticket: a drain fell from
    // 10,000 jobs/s to 900.
    sqlx::query(
        "insert into jobs (id, kind, key, payload, max_attempts) \
         select gen_random_uuid(), 'deliver', 'quiet:' || n, '{}', 10 \
         from generate_series(1, 3000) n",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("analyze jobs").execute(&db).await.unwrap();
    // One connection, as one worker's: its statement counts are its own.
    let worker = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*db.connect_options()).clone())
        .await
        .unwrap();
    let mut leases = relay_dispatches(&worker, JobKind::Deliver).await;
    leases.extend(relay_dispatches(&worker, JobKind::Deliver).await);
    assert_eq!(leases.len(), 2000);

    let before = reads_by_state(&db, &worker).await;
    // More tickets than PostgreSQL's five runs before it settles on a statement's generic plan.
    let done = Outcome::Done("delivered".into());
    for ticket in leases.chunks(20).take(10) {
        let taken = take(&worker, ticket).await;
        assert_eq!(taken.len(), ticket.len());
        let outcomes: Vec<(&jobs::Running, &Outcome)> =
            taken.iter().map(|job| (job, &done)).collect();
        let finished = jobs::finish(&worker, "worker-a", &outcomes).await.unwrap();
        assert_eq!(finished.len(), ticket.len());
    }
    let read = reads_by_state(&db, &worker).await - before;
    assert_eq!(
        read, 0,
        "ten tickets of 20 jobs read {read} index entries of jobs by state"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_hand_out_given_back_neither_runs_again_nor_records_an_outcome(db: PgPool) {
    // A deliver job taken, then given back (its relay's push failed after Redis took the
    // ticket), then handed out again under the same attempt and taken by another worker.
    let first = dispatched(&db, 1).await;
    let stray = take(&db, &first).await.remove(0);
    jobs::undispatch(&db, &first).await.unwrap();
    let second = relay_dispatches(&db, JobKind::Deliver).await;
    assert_eq!((second[0].attempt, second[0].handout), (1, 2));
    let current = take(&db, &second).await.remove(0);

    let done = Outcome::Done("delivered".into());
    let recorded = jobs::finish(&db, "worker-a", &[(&stray, &done)])
        .await
        .unwrap();
    assert!(
        recorded.is_empty(),
        "the first hand-out's outcome is not the job's"
    );
    assert_eq!(state(&db, current.id).await, ("dispatched".into(), 1));
    assert!(
        attempts(&db, current.id).await.is_empty(),
        "{:?}",
        attempts(&db, current.id).await
    );
    let recorded = jobs::finish(&db, "worker-b", &[(&current, &done)])
        .await
        .unwrap();
    assert_eq!(recorded, [(current.id, 1)]);

    // An email job's stray ticket does not claim the next hand-out either.
    enqueue_email_job(&db, "verify:stray").await;
    let first = relay_dispatches(&db, JobKind::VerifyEmail).await;
    jobs::undispatch(&db, &first).await.unwrap();
    let second = relay_dispatches(&db, JobKind::VerifyEmail).await;
    assert!(
        take(&db, &first).await.is_empty(),
        "the stray ticket claims nothing"
    );
    assert_eq!(take(&db, &second).await.len(), 1);
    assert_eq!(state(&db, second[0].id).await, ("running".into(), 1));
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_board_counts_each_outcome_once_as_it_is_recorded(db: PgPool) {
    let leases = dispatched(&db, 3).await;
    let running = take(&db, &leases).await;
    let done = Outcome::Done("appended".into());
    let retry = Outcome::Retry {
        error: "redis: refused".into(),
        at: chrono::Utc::now() + chrono::Duration::minutes(5),
    };
    let outcomes = [(&running[0], &done), (&running[1], &retry)];
    jobs::finish(&db, "worker-a", &outcomes).await.unwrap();
    // The same attempts end again (a ticket run twice): nothing more happened to count.
    jobs::finish(&db, "worker-b", &outcomes).await.unwrap();
    // The third goes without an outcome past its deadline: a lost attempt is a failed one.
    sqlx::query("update jobs set deadline_at = now() - interval '1 second' where id = $1")
        .bind(leases[2].id)
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(jobs::requeue_lost(&db).await.unwrap(), 1);
    assert_eq!(jobs::requeue_lost(&db).await.unwrap(), 0);

    let board = ops::board(&db).await.unwrap();
    let deliver = board.queues.iter().find(|q| q.name == "deliver").unwrap();
    assert_eq!(
        (deliver.succeeded_1h, deliver.succeeded_24h),
        (1, 1),
        "{deliver:?}"
    );
    assert_eq!(
        (deliver.failed_1h, deliver.failed_24h),
        (2, 2),
        "a retry and a loss: {deliver:?}"
    );
    let other = board
        .queues
        .iter()
        .find(|q| q.name == "notify_email")
        .unwrap();
    assert_eq!((other.succeeded_24h, other.failed_24h), (0, 0));
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn live_event_jobs_are_kept_a_day_and_every_other_job_a_week(db: PgPool) {
    // Arrange: every action on one's mail writes a live event's job. At the 300 actions a
    // minute one free account may make, a week of them was about 3 GB of ledger.
    sqlx::query(
        "insert into jobs (id, kind, key, payload, max_attempts, next_run_at, state, finished_at) \
         select gen_random_uuid(), kind, kind || ':' || age, '{}', 8, \
                now() - make_interval(hours => age + 1), 'done', \
                now() - make_interval(hours => age) \
         from unnest(array['deliver', 'notify_email']) kind, unnest(array[2, 30, 200]) age",
    )
    .execute(&db)
    .await
    .unwrap();

    // Act
    let purged = convos_store::purge::old_records(&db, KEEP).await.unwrap();

    // Assert: events older than a day went; emails stay a week.
    assert_eq!(purged, 3);
    let left: Vec<String> =
        sqlx::query_scalar("select key from jobs order by kind, finished_at desc")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        left,
        ["deliver:2", "notify_email:2", "notify_email:30"],
        "a 30-hour-old event's job is gone, a 30-hour-old email's stays"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn the_purge_keeps_up_with_more_old_jobs_than_one_batch(db: PgPool) {
    // Arrange: a day's worth of jobs past their keeping, more than one batch deletes (a probe
    // wrote flags' jobs at 375 a second; one batch a minute deleted 167 a second).
    sqlx::query(
        "insert into jobs (id, kind, key, payload, max_attempts, next_run_at, state, finished_at) \
         select gen_random_uuid(), 'deliver', 'old:' || i, '{}', 8, now() - interval '9 days', \
                'done', now() - interval '8 days' \
         from generate_series(1, 25000) i",
    )
    .execute(&db)
    .await
    .unwrap();

    // Act: one run of the purge.
    let purged = convos_store::purge::old_records(&db, KEEP).await.unwrap();

    // Assert
    assert_eq!(purged, 25_000);
    let left: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_discarded_job_is_kept_its_days_from_its_discard(db: PgPool) {
    // A discard kept the time the job died: one that died over a week ago, discarded now, was
    // purged within the minute, with its history, and the audit log named a job gone.
    let id: uuid::Uuid = sqlx::query_scalar(
        "insert into jobs (id, kind, key, payload, max_attempts, state, attempts, finished_at) \
         values (gen_random_uuid(), 'notify_email', 'old-dead', '{}'::jsonb, 3, 'dead', 3, \
                 now() - interval '10 days') returning id",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let step = ops::discard(&db, &JobFilter::default(), Some(id), None)
        .await
        .unwrap();
    assert_eq!(step.affected, 1);

    convos_store::purge::old_records(&db, KEEP).await.unwrap();

    let state: Option<String> = sqlx::query_scalar("select state from jobs where id = $1")
        .bind(id)
        .fetch_optional(&db)
        .await
        .unwrap();
    assert_eq!(
        state.as_deref(),
        Some("discarded"),
        "kept a week from its discard"
    );
}
