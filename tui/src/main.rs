//! `convos`: the terminal client. `convos` opens the mailbox; `convos login` and
//! `convos logout` manage the stored token.

use anyhow::Context;
use convos_tui::api::Client;
use convos_tui::{config, runtime};
use std::io::{BufRead, Write};

fn usage() -> ! {
    eprintln!(
        "usage: convos [login | logout | --version]\n\n\
         convos          open your mailbox\n\
         convos login    sign in (or set CONVOS_SERVER and CONVOS_TOKEN)\n\
         convos logout   end the session and forget the token"
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
            let (server, token) = config::credentials(&dir, &config)?;
            let keymap = convos_tui::keys::Keymap::with_overrides(&config.keys)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("config.toml").display()))?;
            runtime::run(Client::new(&server, Some(token)), config.bell, keymap).await
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
                let _ = Client::new(&server, Some(token)).logout().await;
            }
            config::forget_token(&dir)?;
            println!("Logged out.");
            Ok(())
        }
        Some("--version" | "-V") => {
            println!("convos {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(_) => usage(),
    }
}
