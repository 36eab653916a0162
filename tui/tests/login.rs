//! The real `convos` binary in a real pseudo-terminal (tmux) against a real server, for the
//! login and settings screens: a first run with no token logs in on the screen and opens the
//! inbox; a new user creates an account there; an ended token leads back to it; the settings screen switches email to a daily digest (checked through the client's
//! own API module); it logs out another session from the list; and it moves the account to
//! another address.

mod support;

use convos_core::api::EmailMode;
use convos_testkit::TestServer;
use convos_tui::api::{ApiError, Client};
use sqlx::PgPool;
use std::path::PathBuf;
use support::Tmux;

impl Tmux {
    /// Starts `convos` with `env` (and nothing of the test's own `CONVOS_*` settings) in a
    /// 100×30 pane.
    fn start(env: &str) -> Self {
        let tmux = Self::new("convos-login");
        let command = format!(
            "env -u CONVOS_TOKEN -u CONVOS_SERVER {env} TERM=xterm-256color {}",
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
        tmux
    }

    fn type_text(&self, text: &str) {
        self.keys(&["-l", text]);
    }
}

/// A fresh, empty `XDG_CONFIG_HOME`.
fn config_home() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convos-login-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_first_run_logs_in_on_the_screen_and_opens_the_inbox(db: PgPool) {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::spawn(db).await;
    let base = server.base.clone();
    // Bob has an account (password `password-bob`) and a message waiting.
    server.unverified_user("bob").await;
    let alice = Client::new(&base, Some(server.user("alice").await.token));
    alice
        .send("bob", "Welcome aboard", "Glad you made it.", "welcome-1")
        .await
        .expect("alice writes to bob");
    let home = config_home();

    // No token anywhere: the client opens on its login screen.
    let tmux = Tmux::start(&format!(
        "CONVOS_SERVER={base} XDG_CONFIG_HOME={}",
        home.display()
    ));
    tmux.wait_for("Convos: log in").await;
    tmux.wait_for(&base).await;

    tmux.type_text("bob");
    tmux.keys(&["Tab"]);
    tmux.type_text("not-my-password");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Wrong username or password.").await;

    // The password field is emptied and has the cursor: the right one, and the mailbox opens.
    tmux.type_text("password-bob");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Welcome aboard").await;
    tmux.wait_for("Logged in as bob").await;
    tmux.wait_for("● live").await;
    assert!(!tmux.screen().contains("password-bob"));

    // Stored as `convos login` stores it: the server in config.toml, only the token, privately.
    let dir = home.join("convos");
    let token = std::fs::read_to_string(dir.join("token")).expect("the token is stored");
    let mode = std::fs::metadata(dir.join("token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains(&base), "{config}");
    assert!(
        !config.contains("password-bob"),
        "the password is never stored"
    );
    let me = Client::new(&base, Some(token))
        .me()
        .await
        .expect("the token works");
    assert_eq!(me.user.username, "bob");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_new_user_creates_an_account_on_the_screen_and_is_logged_in(db: PgPool) {
    let server = TestServer::spawn(db).await;
    let base = server.base.clone();
    let home = config_home();
    let tmux = Tmux::start(&format!(
        "CONVOS_SERVER={base} XDG_CONFIG_HOME={}",
        home.display()
    ));
    tmux.wait_for("Convos: log in").await;

    tmux.keys(&["C-n"]);
    tmux.wait_for("Convos: create an account").await;
    tmux.type_text("Dave");
    tmux.keys(&["Tab"]);
    tmux.type_text("dave@example.com");
    tmux.keys(&["Tab"]);
    tmux.type_text("Dave Grohl");
    tmux.keys(&["Tab"]);
    tmux.type_text("short");
    tmux.keys(&["Enter"]);
    // Refused on the spot, by the same rules as the server's.
    tmux.wait_for("must be 8 to 256 characters").await;
    tmux.type_text(" but longer now");
    tmux.keys(&["Enter"]);

    tmux.wait_for("Logged in as dave").await;
    tmux.wait_for("No conversations here.").await;
    let token = std::fs::read_to_string(home.join("convos").join("token")).unwrap();
    let me = Client::new(&base, Some(token))
        .me()
        .await
        .expect("the token works");
    assert_eq!(me.user.username, "dave");
    assert_eq!(me.user.display_name, "Dave Grohl");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn an_ended_token_leads_to_the_login_screen(db: PgPool) {
    let server = TestServer::spawn(db).await;
    let base = server.base.clone();
    let bob = server.user("bob").await;
    Client::new(&base, Some(bob.token.clone()))
        .logout()
        .await
        .expect("the session ends");

    let tmux = Tmux::start(&format!(
        "CONVOS_SERVER={base} CONVOS_TOKEN={} XDG_CONFIG_HOME={}",
        bob.token,
        config_home().display()
    ));

    tmux.wait_for("Your session has ended").await;
    tmux.wait_for("Convos: log in").await;
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn bob_chooses_a_daily_digest_in_the_settings_screen(db: PgPool) {
    let server = TestServer::spawn(db).await;
    let base = server.base.clone();
    let bob = server.user("bob").await;
    let tmux = Tmux::start(&format!(
        "CONVOS_SERVER={base} CONVOS_TOKEN={} XDG_CONFIG_HOME={}",
        bob.token,
        config_home().display()
    ));
    tmux.wait_for("● live").await;

    tmux.type_text("S");
    tmux.wait_for("Email mode").await;
    tmux.wait_for("each").await;
    tmux.keys(&["Right"]);
    tmux.wait_for("not saved").await;
    tmux.keys(&["Enter"]);
    tmux.wait_for("Saved: a daily digest at 08:00 UTC.").await;

    let me = Client::new(&base, Some(bob.token.clone()))
        .me()
        .await
        .expect("bob's settings");
    assert_eq!(me.settings.email_mode, EmailMode::Daily);
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn bob_logs_out_another_session_from_the_list(db: PgPool) {
    let server = TestServer::spawn(db).await;
    let base = server.base.clone();
    server.user("bob").await;
    // A second login of bob's, elsewhere, then this client's: a session ends only the ones
    // made before it (decision 76). Newest first, so the laptop's is the second row.
    let login = || async {
        Client::new(&base, None)
            .login("bob", "password-bob")
            .await
            .expect("bob logs in")
            .token
    };
    let laptop = login().await;
    let here = login().await;
    let tmux = Tmux::start(&format!(
        "CONVOS_SERVER={base} CONVOS_TOKEN={here} XDG_CONFIG_HOME={}",
        config_home().display()
    ));
    tmux.wait_for("● live").await;

    tmux.type_text("S");
    tmux.wait_for("(this client)").await;
    // Past the three email rows and this client's session, to the laptop's.
    tmux.keys(&["Down", "Down", "Down", "Down"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for("Log out convos-tui/").await;
    tmux.type_text("y");
    tmux.wait_for("That session is logged out.").await;

    let refused = Client::new(&base, Some(laptop)).me().await;
    assert!(
        matches!(refused, Err(ApiError::Server { status: 401, .. })),
        "the laptop's token no longer works: {refused:?}"
    );
    Client::new(&base, Some(here))
        .me()
        .await
        .expect("this client's own session still works");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn bob_moves_to_another_address_in_the_settings_screen(db: PgPool) {
    let server = TestServer::spawn(db).await;
    let base = server.base.clone();
    let bob = server.user("bob").await;
    let tmux = Tmux::start(&format!(
        "CONVOS_SERVER={base} CONVOS_TOKEN={} XDG_CONFIG_HOME={}",
        bob.token,
        config_home().display()
    ));
    tmux.wait_for("● live").await;

    tmux.type_text("S");
    tmux.wait_for("bob@example.com (verified)").await;
    tmux.wait_for("(this client)").await;
    // Past the three email rows, this client's session, "log out" and the two password rows.
    for _ in 0..7 {
        tmux.keys(&["Down"]);
    }
    tmux.type_text("bob@new.example");
    tmux.keys(&["Down"]);
    tmux.type_text("password-bob");
    tmux.keys(&["Enter"]);
    tmux.wait_for("Now bob@new.example: follow the link").await;
    tmux.wait_for("bob@new.example (not verified yet").await;

    let me = Client::new(&base, Some(bob.token.clone()))
        .me()
        .await
        .expect("bob's account");
    assert_eq!(me.user.email, "bob@new.example");
    assert!(!me.user.email_verified);
}
