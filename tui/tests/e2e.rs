//! The real `convos` binary in a real pseudo-terminal (tmux), against a real server and worker:
//! bob sees alice's message arrive live, opens it, replies, and alice has the reply; `convos
//! login` stores its token privately even over a file others could read.

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

/// Starts the real server on a free port, with its own Redis prefix; returns its base URL.
async fn spawn_server(db: &PgPool, redis_url: &str, prefix: &str) -> String {
    let settings = Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: SecretString::from(redis_url.to_owned()),
        redis_prefix: prefix.to_owned(),
        migrate_on_start: false,
        sse_heartbeat_secs: 2,
        server_metrics_addr: None,
        max_connections_per_addr: 100_000,
        signups_per_hour_per_addr: 100_000,
        login_failures_per_min_per_addr: 100_000,
        ..Settings::default()
    };
    let app = Application::with_pool(settings, db.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    base
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn bob_sees_mail_arrive_live_opens_it_and_replies(db: PgPool) {
    let redis_url = std::env::var("REDIS_URL").expect("REDIS_URL (run via cargo xtask test)");
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let base = spawn_server(&db, &redis_url, &prefix).await;
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
        worker_metrics_addr: None,
        ..WorkerSettings::default()
    };
    tokio::spawn(convos_worker::run(worker, std::future::pending::<()>()));

    let http = reqwest::Client::new();
    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let password = format!("password-{name}");
        let created = call(&http, &base, reqwest::Method::POST, "/api/v1/users", None,
            Some(json!({"username": name, "email": format!("{name}@example.com"), "password": password}))).await;
        // Confirmed as following the emailed link does, so the account gets email.
        let id: convos_core::UserId = created["id"].as_str().unwrap().parse().unwrap();
        let confirmed = convos_store::verification::confirm(
            &db,
            id,
            &format!("{name}@example.com"),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(confirmed, convos_store::verification::Confirmed::Verified);
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

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn logging_in_replaces_a_token_file_others_could_read(db: PgPool) {
    use std::os::unix::fs::PermissionsExt;
    let redis_url = std::env::var("REDIS_URL").expect("REDIS_URL (run via cargo xtask test)");
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let base = spawn_server(&db, &redis_url, &prefix).await;
    let http = reqwest::Client::new();
    call(
        &http,
        &base,
        reqwest::Method::POST,
        "/api/v1/users",
        None,
        Some(json!({"username": "bob", "email": "bob@example.com", "password": "password-bob"})),
    )
    .await;
    // A token file left readable by everyone, as an older client or a script could leave it.
    let config_home =
        std::env::temp_dir().join(format!("convos-e2e-config-{}", uuid::Uuid::new_v4()));
    let token_file = config_home.join("convos").join("token");
    std::fs::create_dir_all(token_file.parent().unwrap()).unwrap();
    std::fs::write(&token_file, "cvs_stale").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let tmux = Tmux {
        socket: format!("convos-e2e-{}", uuid::Uuid::new_v4().simple()),
    };
    let command = format!(
        "env CONVOS_SERVER={base} XDG_CONFIG_HOME={} TERM=xterm-256color {} login",
        config_home.display(),
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
    // Keep the pane once `convos login` has exited, to read what it said.
    tmux.run(&["set-option", "-t", "convos", "remain-on-exit", "on"]);
    tmux.wait_for(&format!("Server [{base}]:")).await;
    tmux.keys(&["Enter"]);
    tmux.wait_for("Username:").await;
    tmux.keys(&["-l", "bob"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("Password:").await;
    tmux.keys(&["-l", "password-bob"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("Logged in as bob.").await;

    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_ne!(token, "cvs_stale");
    assert!(
        !tmux.screen().contains(&token),
        "the token is not shown on screen"
    );
    let me = call(
        &http,
        &base,
        reqwest::Method::GET,
        "/api/v1/me",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(me["username"], "bob", "the stored token is bob's session");
}
