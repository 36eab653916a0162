//! Offline reading with the real `convos` binary in tmux: bob reads his mail against a real
//! server and quits; the server stops; bob starts the client again and sees his cached mailbox
//! marked "offline · cached", opens the thread he had read, and is told that the one he never
//! opened is not available offline.

mod support;

use convos_testkit::{fresh_prefix, redis_url, server_settings};
use convos_tui::api::Client;
use sqlx::PgPool;
use std::path::Path;
use support::{Tmux, until};

/// A real server on a port of its own, stopped when the sender fires.
async fn start_server(
    db: PgPool,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let mut settings = server_settings(&redis_url(), &fresh_prefix());
    settings.sse_heartbeat_secs = 2;
    let app = convos_server::startup::Application::with_pool(settings, db)
        .await
        .expect("the server starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (base, stop, running)
}

/// The client of `token` in the `convos` session, as the other tests start it.
fn start_client(tmux: &Tmux, base: &str, token: &str, config_home: &Path) {
    tmux.session(
        "convos",
        (120, 30),
        &support::convos(base, token, config_home),
    );
}

/// The account files in the cache folder (not the session index).
fn cached_accounts(config_home: &Path) -> usize {
    std::fs::read_dir(config_home.join("convos").join("cache"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.ends_with(".json") && name != "sessions.json"
                })
                .count()
        })
        .unwrap_or(0)
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn with_the_server_down_bob_reads_his_cached_mail(db: PgPool) {
    let (base, stop, running) = start_server(db.clone()).await;
    let accounts = convos_testkit::Client::new(base.clone(), db.clone());
    let alice = Client::new(&base, Some(accounts.user("alice").await.token));
    let bob = accounts.user("bob").await.token;
    alice
        .send("bob", "Budget review", "The numbers are in.", "k-budget")
        .await
        .expect("alice sends");
    alice
        .send(
            "bob",
            "Lunch on Friday?",
            "Are you free at noon?",
            "k-lunch",
        )
        .await
        .expect("alice sends");
    let config_home =
        std::env::temp_dir().join(format!("convos-e2e-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&config_home).unwrap();

    // Online: bob sees both threads and reads the newest one, then quits.
    let tmux = Tmux::new("convos-cache");
    start_client(&tmux, &base, &bob, &config_home);
    tmux.wait_for("● live").await;
    tmux.wait_for("Budget review").await;
    tmux.wait_for("Lunch on Friday?").await;
    assert!(
        !tmux.screen().contains("cached"),
        "fresh from the server:\n{}",
        tmux.screen()
    );
    // The thread pane shows the sender's address (the list shows only the excerpt).
    tmux.keys(&["Enter"]);
    tmux.wait_for("<alice>").await;
    tmux.keys(&["q"]);
    tmux.keys(&["q"]);
    until("the client quit and its cache was written", || {
        cached_accounts(&config_home) == 1 && tmux.screen().is_empty()
    })
    .await;

    // The server goes away.
    stop.send(()).expect("the server runs");
    running
        .await
        .expect("the server task")
        .expect("the server stops");

    // Offline: the mailbox draws from the cache, marked, and the thread read before opens.
    start_client(&tmux, &base, &bob, &config_home);
    tmux.wait_for("offline · cached").await;
    let screen = tmux.screen();
    assert!(screen.contains("Lunch on Friday?"), "{screen}");
    assert!(screen.contains("Budget review"), "{screen}");
    assert!(screen.contains("Inbox (2) · cached"), "{screen}");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Lunch on Friday? · cached").await;
    assert!(tmux.screen().contains("<alice>"), "{}", tmux.screen());

    // The thread never opened is not there to read.
    tmux.keys(&["q"]);
    tmux.keys(&["j"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("Not available offline").await;
    assert!(!tmux.screen().contains("<alice>"), "{}", tmux.screen());

    // And the cache is bob's only: another token sees nothing of it.
    tmux.keys(&["q"]);
    tmux.keys(&["q"]);
    until("the client quit", || tmux.screen().is_empty()).await;
    start_client(&tmux, &base, "cvs_someone_else", &config_home);
    tmux.wait_for("reconnecting").await;
    let screen = tmux.screen();
    assert!(!screen.contains("Lunch on Friday?"), "{screen}");
    assert!(!screen.contains("cached"), "{screen}");
}
