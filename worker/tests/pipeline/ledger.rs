//! Batched ledger writes under a crash: a worker killed while its outcomes wait in a batch
//! loses nothing. The jobs stay claimed until their deadline, run again, and an email is
//! sent at most once more, under its own Message-ID.

use crate::stack::{WORKER_BIN, start_api};
use convos_testkit::{
    SmtpSink, StackConfig, WorkerProcess, all_jobs_finished, database_url, eventually,
};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_worker_killed_with_outcomes_in_its_batch_loses_none_of_them(db: PgPool) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let message = api.send(&alice, &bob, "Lunch", "Friday at noon?").await;
    let url = database_url(&db).await;
    // Outcomes wait two seconds for company before they are written: the kill lands there.
    let mut first = WorkerProcess::spawn(
        WORKER_BIN,
        &config,
        &url,
        &[
            ("CONVOS_JOB_DEADLINE_SECS", "3"),
            ("CONVOS_LEDGER_OUTCOME_WAIT_MS", "2000"),
        ],
    );
    eventually(WAIT, "the email to be sent", || async {
        !smtp.mails().is_empty()
    })
    .await;
    first.0.kill().expect("SIGKILL");
    first.0.wait().unwrap();
    let (job, state, attempts): (Uuid, String, i32) =
        sqlx::query_as("select id, state, attempts from jobs where kind = 'notify_email'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), attempts),
        ("running", 1),
        "still claimed: the outcome died with its batch"
    );

    let second = WorkerProcess::spawn(
        WORKER_BIN,
        &config,
        &url,
        &[("CONVOS_JOB_DEADLINE_SECS", "3")],
    );
    eventually(WAIT, "every job to finish", || all_jobs_finished(&db)).await;
    second.stop();

    let (state, attempts): (String, i32) =
        sqlx::query_as("select state, attempts from jobs where id = $1")
            .bind(job)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        state == "done" || state == "skipped",
        "the second run records an outcome ({state})"
    );
    assert_eq!(attempts, 2, "the lost attempt counts");
    let history: Vec<(i32, bool, bool)> = sqlx::query_as(
        "select attempt, finished_at is not null, coalesce(error like 'lost:%', false) from job_history \
         where job_id = $1 order by attempt",
    )
    .bind(job)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(
        history,
        [(1, true, true), (2, true, false)],
        "the killed attempt is in the history as lost, the second as it ended"
    );
    let header = format!("<{}@convos.test>", message["id"].as_str().unwrap());
    let mails = smtp.mails();
    assert!(
        (1..=2).contains(&mails.len()),
        "sent at most once more: {} emails",
        mails.len()
    );
    assert!(
        mails
            .iter()
            .all(|m| m.header("Message-ID").as_deref() == Some(header.as_str())),
        "every copy keeps the message's Message-ID"
    );
    let delivery: String = sqlx::query_scalar("select status from deliveries")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(delivery, "sent");
}
