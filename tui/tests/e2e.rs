//! The real `convos` binary in a real pseudo-terminal (tmux), against a real server and worker:
//! bob sees alice's message arrive live, opens it, replies, and alice has the reply.

use convos_server::config::Settings;
use convos_server::startup::Application;
use convos_worker::config::WorkerSettings;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of this test's own, killed at the end.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "convos"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "convos"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    async fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {text:?}:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Value {
    let mut req = http.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap_or(Value::Null)
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn bob_sees_mail_arrive_live_opens_it_and_replies(db: PgPool) {
    let redis_url = std::env::var("REDIS_URL").expect("REDIS_URL (run via cargo xtask test)");
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let settings = Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: SecretString::from(redis_url.clone()),
        redis_prefix: prefix.clone(),
        migrate_on_start: false,
        sse_heartbeat_secs: 2,
        metrics_addr: None,
        signups_per_hour_per_addr: 100_000,
        login_failures_per_min_per_addr: 100_000,
        ..Settings::default()
    };
    let app = Application::with_pool(settings, db.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let name: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&db)
        .await
        .unwrap();
    let db_url = format!(
        "{}/{name}",
        std::env::var("DATABASE_URL")
            .unwrap()
            .rsplit_once('/')
            .unwrap()
            .0
    );
    let mail = std::env::temp_dir().join(format!("convos-e2e-mail-{}", uuid::Uuid::new_v4()));
    let worker = WorkerSettings {
        database_url: SecretString::from(db_url),
        redis_url: SecretString::from(redis_url),
        redis_prefix: prefix,
        smtp_url: SecretString::from(format!("file://{}", mail.display())),
        relay_interval_ms: 50,
        poll_ms: 50,
        metrics_addr: None,
        ..WorkerSettings::default()
    };
    tokio::spawn(convos_worker::run(worker, std::future::pending::<()>()));

    let http = reqwest::Client::new();
    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let password = format!("password-{name}");
        call(&http, &base, reqwest::Method::POST, "/api/v1/users", None,
            Some(json!({"username": name, "email": format!("{name}@example.com"), "password": password}))).await;
        let session = call(
            &http,
            &base,
            reqwest::Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": name, "password": password})),
        )
        .await;
        tokens.push(session["token"].as_str().unwrap().to_owned());
    }
    let (alice, bob) = (&tokens[0], &tokens[1]);

    let tmux = Tmux {
        socket: format!("convos-e2e-{}", std::process::id()),
    };
    let config_home =
        std::env::temp_dir().join(format!("convos-e2e-config-{}", uuid::Uuid::new_v4()));
    // An "editor" that writes a line into the draft it is given.
    std::fs::create_dir_all(&config_home).unwrap();
    let editor = config_home.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'Written in the editor\\n' > \"$1\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .unwrap();
    let command = format!(
        "env CONVOS_SERVER={base} CONVOS_TOKEN={bob} XDG_CONFIG_HOME={} EDITOR={} TERM=xterm-256color {}",
        config_home.display(),
        editor.display(),
        env!("CARGO_BIN_EXE_convos")
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "convos",
        "-x",
        "100",
        "-y",
        "30",
        &command,
    ]);
    tmux.wait_for("● live").await;
    tmux.wait_for("No conversations here.").await;

    call(&http, &base, reqwest::Method::POST, "/api/v1/messages", Some(alice),
        Some(json!({"recipient": "bob", "subject": "Lunch on Friday?", "body": "Are you free at noon?"}))).await;
    // No key is pressed: the message must arrive by itself.
    tmux.wait_for("Lunch on Friday?").await;
    tmux.wait_for("1 unread").await;

    tmux.keys(&["Enter"]);
    tmux.wait_for("Are you free at noon?").await;
    tmux.keys(&["r"]);
    tmux.wait_for("Reply").await;
    tmux.keys(&["-l", "Yes, see you there"]);
    tmux.keys(&["C-s"]);
    tmux.wait_for("Sent").await;

    let threads = call(
        &http,
        &base,
        reqwest::Method::GET,
        "/api/v1/threads",
        Some(alice),
        None,
    )
    .await;
    let thread = threads["items"][0]["id"].as_str().unwrap().to_owned();
    let messages = call(
        &http,
        &base,
        reqwest::Method::GET,
        &format!("/api/v1/threads/{thread}/messages"),
        Some(alice),
        None,
    )
    .await;
    assert_eq!(
        messages["items"][0]["body"], "Yes, see you there",
        "alice has bob's reply"
    );
    assert_eq!(messages["items"][0]["sender"]["username"], "bob");

    // A second reply, written in $EDITOR (Ctrl-e) and sent from the composer.
    tmux.keys(&["r"]);
    tmux.wait_for("Reply").await;
    tmux.keys(&["C-e"]);
    tmux.wait_for("Back from the editor").await;
    tmux.wait_for("Written in the editor").await;
    tmux.keys(&["C-s"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let messages = call(
            &http,
            &base,
            reqwest::Method::GET,
            &format!("/api/v1/threads/{thread}/messages"),
            Some(alice),
            None,
        )
        .await;
        if messages["items"][0]["body"] == "Written in the editor" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edited reply never arrived:\n{}",
            tmux.screen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    tmux.keys(&["q"]);
    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.run(&["list-sessions"]).contains("convos") {
        assert!(
            Instant::now() < deadline,
            "the client did not quit:\n{}",
            tmux.screen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
