//! `convos`: the terminal client. `convos` opens the mailbox; `convos login` and
//! `convos logout` manage the stored token; `convos email` shows and sets how email arrives.

use anyhow::Context;
use convos_tui::api::Client;
use convos_tui::{config, runtime};
use std::io::{BufRead, Write};

fn usage() -> ! {
    eprintln!(
        "usage: convos [login | logout | email [each | daily | off] [--hour H] [--tz ZONE] | --version]\n\n\
         convos          open your mailbox (or log in or create an account on its first screen)\n\
         convos login    sign in (or set CONVOS_SERVER and CONVOS_TOKEN)\n\
         convos logout   end the session, forget the token and delete the account's cached mail\n\
         convos email    show how Convos emails you, or set it: `each` (one email per message),\n\
         \x20               `daily` (one digest a day at --hour 0-23 in --tz, e.g. Europe/Paris), `off`"
    );
    std::process::exit(2);
}

fn prompt(label: &str, default: Option<&str>) -> anyhow::Result<String> {
    match default {
        Some(d) => print!("{label} [{d}]: "),
        None => print!("{label}: "),
    }
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim().to_owned();
    Ok(if line.is_empty() {
        default.unwrap_or_default().to_owned()
    } else {
        line
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = config::dir();
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        None => {
            let config = config::load(&dir)?;
            // Without a token the client opens on its login screen.
            let (server, token) = config::session(&dir, &config);
            let keymap = convos_tui::keys::Keymap::with_overrides(&config.key_overrides())
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("config.toml").display()))?;
            let theme = convos_tui::theme::Theme::from_config(
                &config.theme,
                convos_tui::theme::Theme::no_color_from_env(),
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("config.toml").display()))?;
            let options = runtime::Options {
                theme,
                notify: config.notify,
                mouse: config.mouse,
            };
            runtime::run(Client::new(&server, token), config.bell, keymap, options).await
        }
        Some("login") => {
            let mut config = config::load(&dir)?;
            let default = std::env::var("CONVOS_SERVER")
                .ok()
                .or(config.server.clone());
            let server = prompt(
                "Server",
                Some(default.as_deref().unwrap_or("http://127.0.0.1:8080")),
            )?;
            let username = prompt("Username", None)?;
            let password =
                rpassword::prompt_password("Password: ").context("could not read the password")?;
            let session = Client::new(&server, None)
                .login(&username, &password)
                .await
                .map_err(|e| anyhow::anyhow!("could not log in: {e}"))?;
            // The server said whose the token is: the next start draws that account's cache.
            let _ = convos_tui::cache::remember(
                &dir,
                server.trim_end_matches('/'),
                &session.token,
                session.user.id,
            );
            config.server = Some(server);
            config::save(&dir, &config)?;
            config::save_token(&dir, &session.token)?;
            println!(
                "Logged in as {}. Run `convos` to open your mailbox.",
                session.user.username
            );
            Ok(())
        }
        Some("logout") => {
            let config = config::load(&dir)?;
            if let Ok((server, token)) = config::credentials(&dir, &config) {
                let _ = Client::new(&server, Some(token.clone())).logout().await;
                // The account's cached mail goes with the session.
                convos_tui::cache::forget_account(&dir, &server, &token)?;
            }
            config::forget_token(&dir)?;
            println!("Logged out (and the mail cached for this account deleted).");
            Ok(())
        }
        Some("email") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            let patch = email_patch(&args).unwrap_or_else(|| usage());
            let config = config::load(&dir)?;
            let (server, token) = config::credentials(&dir, &config)?;
            let client = Client::new(&server, Some(token));
            let me = if patch.email_mode.is_none()
                && patch.digest_hour.is_none()
                && patch.time_zone.is_none()
            {
                client.me().await
            } else {
                client.update_settings(&patch).await
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", describe_email(&me));
            Ok(())
        }
        Some("--version" | "-V") => {
            println!("convos {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(_) => usage(),
    }
}

/// The settings change `convos email [each|daily|off] [--hour H] [--tz ZONE]` asks for;
/// `None` for arguments it does not understand.
fn email_patch(args: &[String]) -> Option<convos_core::api::PreferencesPatch> {
    use convos_core::api::{EmailMode, PreferencesPatch};
    let mut patch = PreferencesPatch::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "each" => patch.email_mode = Some(EmailMode::Each),
            "daily" => patch.email_mode = Some(EmailMode::Daily),
            "off" => patch.email_mode = Some(EmailMode::Off),
            "--hour" => patch.digest_hour = Some(args.next()?.parse().ok()?),
            "--tz" => patch.time_zone = Some(args.next()?.clone()),
            _ => return None,
        }
    }
    Some(patch)
}

/// One line about how email reaches the user.
fn describe_email(me: &convos_core::api::Me) -> String {
    use convos_core::api::{EmailMode, EmailStopped};
    let s = &me.settings;
    let mode = match s.email_mode {
        EmailMode::Each => "one email per new message".to_owned(),
        EmailMode::Daily => format!("a daily digest at {:02}:00 {}", s.digest_hour, s.time_zone),
        EmailMode::Off => "no email".to_owned(),
    };
    let stopped = match me.user.email_stopped {
        Some(EmailStopped::Bounced) => {
            " (but your address bounced: nothing is sent until you verify it again)"
        }
        Some(EmailStopped::Complaint) => " (turned off after a notification was reported as spam)",
        None if !me.user.email_verified => " (once you verify your address)",
        None => "",
    };
    let paused = match s.email_paused_until {
        Some(until) if s.email_mode != EmailMode::Off => {
            format!(" Paused until {}.", until.format("%Y-%m-%d %H:%M UTC"))
        }
        _ => String::new(),
    };
    format!("Email to {}: {mode}{stopped}.{paused}", me.user.email)
}
