//! Live events over SSE, fanned out through Redis.

use crate::sse::Events;
use crate::stack::start_api;
use convos_core::events::{Envelope, Event, channel, stream_key};
use convos_testkit::{
    InProcessWorker, SmtpSink, StackConfig, all_jobs_finished, database_url, eventually,
};
use convos_worker::config::WorkerSettings;
use futures::StreamExt;
use sqlx::PgPool;
use std::time::{Duration, Instant};

/// Long enough for an event to arrive on a loaded machine; arrival, not speed, is checked here.
const ARRIVAL: Duration = Duration::from_secs(15);

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_sent_message_reaches_the_recipient_live_and_nobody_else(db: PgPool) {
    let config = StackConfig::new();
    let _smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let mallory = api.user("mallory").await;

    let mut bob_events = Events::connect(&api, &bob, None).await;
    let hello = bob_events.next(ARRIVAL).await.expect("a first event");
    assert_eq!(
        hello.event, "reset",
        "without Last-Event-ID the client is told to refetch"
    );
    assert_eq!(hello.json()["reason"], "no_last_event_id");
    let mut mallory_events = Events::connect(&api, &mallory, None).await;
    let mut alice_other_session = Events::connect(&api, &alice, None).await;

    // How fast is the benchmark's question (live scenario); here only that it arrives.
    let sent = api.send(&alice, &bob, "Lunch?", "Friday at noon?").await;
    let frame = bob_events
        .next_event(ARRIVAL)
        .await
        .expect("the event arrives");
    assert_eq!(frame.event, "message.created");
    assert_eq!(frame.json()["message_id"], sent["id"]);
    assert_eq!(frame.json()["thread_id"], sent["thread_id"]);
    assert!(
        !frame.data.contains("Friday"),
        "events carry ids only: {}",
        frame.data
    );
    assert!(frame.id.is_some(), "every event has an id to resume from");

    let own = alice_other_session
        .next_event(ARRIVAL)
        .await
        .expect("sender's session");
    assert_eq!(own.json()["message_id"], sent["id"]);
    assert!(
        mallory_events
            .next_event(Duration::from_millis(500))
            .await
            .is_none(),
        "a stranger gets nothing"
    );
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn reconnecting_with_last_event_id_replays_what_was_missed(db: PgPool) {
    let config = StackConfig::new();
    let _smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let mut events = Events::connect(&api, &bob, None).await;
    let first = api.send(&alice, &bob, "One", "1").await;
    let seen = events.next_event(ARRIVAL).await.unwrap();
    assert_eq!(seen.json()["message_id"], first["id"]);
    drop(events);

    let second = api.send(&alice, &bob, "Two", "2").await;
    let third = api
        .reply(&alice, first["thread_id"].as_str().unwrap(), "3")
        .await;
    eventually(Duration::from_secs(10), "jobs to finish", || {
        all_jobs_finished(&db)
    })
    .await;

    let mut resumed = Events::connect(&api, &bob, seen.id.as_deref()).await;
    let a = resumed.next(ARRIVAL).await.unwrap();
    let b = resumed.next(ARRIVAL).await.unwrap();
    assert_eq!(
        (a.event.as_str(), b.event.as_str()),
        ("message.created", "message.created")
    );
    // Both missed events, each once (jobs run concurrently, so their order may vary).
    let mut got = vec![
        a.json()["message_id"].clone(),
        b.json()["message_id"].clone(),
    ];
    let mut want = vec![second["id"].clone(), third["id"].clone()];
    got.sort_by_key(ToString::to_string);
    want.sort_by_key(ToString::to_string);
    assert_eq!(got, want);
    assert!(
        resumed.next(Duration::from_millis(300)).await.is_none(),
        "nothing twice"
    );

    let mut stale = Events::connect(&api, &bob, Some("1-0")).await;
    let reset = stale.next(ARRIVAL).await.unwrap();
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.json()["reason"], "too_old");
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn idle_streams_get_heartbeats_and_read_state_syncs_across_sessions(db: PgPool) {
    let config = StackConfig::new();
    let _smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let mut events = Events::connect(&api, &bob, None).await;
    let heartbeat = tokio::time::timeout(ARRIVAL, events.comments.recv()).await;
    assert_eq!(heartbeat.ok().flatten().as_deref(), Some("heartbeat"));

    let sent = api.send(&alice, &bob, "Sync", "read me").await;
    events.next_event(ARRIVAL).await.unwrap();
    let id = sent["id"].as_str().unwrap();
    let marked = api.act(&format!("/api/v1/messages/{id}/read"), &bob).await;
    assert_eq!(marked.status, 200);
    let read = events.next_event(ARRIVAL).await.expect("message.read");
    assert_eq!(read.event, "message.read");
    assert_eq!(read.json()["message_id"], sent["id"]);
    let thread = sent["thread_id"].as_str().unwrap();
    api.act(&format!("/api/v1/threads/{thread}/archive"), &bob)
        .await;
    let updated = events.next_event(ARRIVAL).await.expect("thread.updated");
    assert_eq!(updated.event, "thread.updated");
    assert_eq!(updated.json()["thread_id"], sent["thread_id"]);
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_event_stream_ends_when_its_session_is_revoked(db: PgPool) {
    let config = StackConfig::new();
    let api = start_api(db.clone(), &config).await;
    let bob = api.user("bob").await;
    let mut events = Events::connect(&api, &bob, None).await;
    events.next(ARRIVAL).await.expect("the first reset");
    let logout = api.delete("/api/v1/sessions/current", &bob).await;
    assert_eq!(logout.status, 204);
    // The stream closes within a heartbeat or two (1 s in tests); then no event can arrive.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match events.next(Duration::from_millis(500)).await {
            None if events.is_closed() => break,
            _ => assert!(
                Instant::now() < deadline,
                "the stream is still open after logout"
            ),
        }
    }
}

/// Subscribers of the relays' wake-up channel under `prefix`.
async fn wake_subscribers(redis_url: &str, prefix: &str) -> i64 {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(convos_core::jobs::wake_channel(prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    count
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn new_jobs_are_dispatched_on_the_servers_wake_up_without_waiting_for_the_relay_tick(
    db: PgPool,
) {
    let config = StackConfig::new();
    let _smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    // The relay ticks once at start and then not for a minute: only wake-ups can move new jobs.
    let settings = WorkerSettings {
        relay_interval_ms: 60_000,
        ..config.worker_settings(&database_url(&db).await)
    };
    let worker = InProcessWorker::start(settings);
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let mut events = Events::connect(&api, &bob, None).await;
    events.next(ARRIVAL).await.expect("a reset");
    eventually(Duration::from_secs(10), "the relay to subscribe", || {
        let (url, prefix) = (config.redis_url.clone(), config.prefix.clone());
        async move { wake_subscribers(&url, &prefix).await >= 1 }
    })
    .await;
    // Let the pass that follows subscribing finish, so what comes next is moved by wake-ups.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sent = api.send(&alice, &bob, "Quick", "are you there?").await;
    let created = events
        .next_event(Duration::from_secs(10))
        .await
        .expect("message.created long before the next relay tick");
    assert_eq!(created.event, "message.created");
    assert_eq!(created.json()["message_id"], sent["id"]);

    // A burst of replies: every one arrives, however the wake-ups coalesce.
    let thread = sent["thread_id"].as_str().unwrap();
    let mut want = Vec::new();
    for i in 0..5 {
        want.push(api.reply(&alice, thread, &format!("reply {i}")).await["id"].clone());
    }
    let mut got = Vec::new();
    while got.len() < want.len() {
        let frame = events
            .next_event(Duration::from_secs(10))
            .await
            .expect("every reply's message.created");
        assert_eq!(frame.event, "message.created");
        got.push(frame.json()["message_id"].clone());
    }
    got.sort_by_key(ToString::to_string);
    want.sort_by_key(ToString::to_string);
    assert_eq!(got, want);

    // Read state wakes the relay too.
    let id = sent["id"].as_str().unwrap();
    let marked = api.act(&format!("/api/v1/messages/{id}/read"), &bob).await;
    assert_eq!(marked.status, 200);
    let read = events
        .next_event(Duration::from_secs(10))
        .await
        .expect("message.read long before the next relay tick");
    assert_eq!(read.event, "message.read");
    assert_eq!(read.json()["message_id"], sent["id"]);
    assert!(worker.is_running());
    worker.stop().await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn what_the_worker_announces_is_cores_envelope_carrying_the_stream_entrys_id(db: PgPool) {
    let config = StackConfig::new();
    let _smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let redis = redis::Client::open(config.redis_url.as_str()).unwrap();
    let mut pubsub = redis.get_async_pubsub().await.unwrap();
    pubsub.subscribe(channel(&config.prefix)).await.unwrap();
    let worker = InProcessWorker::start(config.worker_settings(&database_url(&db).await));
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let sent = api
        .send(&alice, &bob, "Envelope", "as the hub reads it")
        .await;

    let mut announced = Vec::new();
    let mut messages = pubsub.on_message();
    while announced.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("an announcement within 10 s")
            .expect("the subscription stays open");
        let payload: String = message.get_payload().unwrap();
        let envelope: Envelope = serde_json::from_str(&payload)
            .unwrap_or_else(|e| panic!("not core's Envelope ({e}): {payload}"));
        if matches!(&envelope.event, Event::MessageCreated { message_id, .. }
            if message_id.to_string() == sent["id"])
        {
            announced.push(envelope);
        }
    }
    drop(messages);

    let mut users: Vec<String> = announced.iter().map(|e| e.user.to_string()).collect();
    users.sort();
    let mut want = vec![alice.id.clone(), bob.id.clone()];
    want.sort();
    assert_eq!(users, want, "the sender's sessions and the recipient");
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    for envelope in &announced {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(stream_key(&config.prefix, envelope.user))
            .arg(&envelope.id)
            .arg(&envelope.id)
            .query_async(&mut conn)
            .await
            .unwrap();
        let [(id, fields)] = entries.as_slice() else {
            panic!("one stream entry under the announced id, got {entries:?}");
        };
        assert_eq!(id, &envelope.id);
        let event: Event = serde_json::from_str(&fields[0].1).unwrap();
        assert_eq!(
            event, envelope.event,
            "the replayed event is the announced one"
        );
    }
    worker.stop().await;
}
