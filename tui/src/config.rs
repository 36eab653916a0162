//! Where the client keeps its settings and its token: `~/.config/convos/` (XDG), the token
//! file readable by its owner only. `CONVOS_SERVER` and `CONVOS_TOKEN` override both, for
//! scripts and tests.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `config.toml`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    pub server: Option<String>,
    /// Ring the terminal bell when new mail arrives.
    pub bell: bool,
    /// The editor for `Ctrl-e` (default: `$VISUAL`, then `$EDITOR`, then `vi`).
    pub editor: Option<String>,
    /// Key overrides: action name → key (e.g. `reply = "e"`); see the help screen (`?`).
    pub keys: std::collections::BTreeMap<String, String>,
}

/// The configuration folder.
pub fn dir() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("convos")
}

/// Reads `config.toml` from `dir`; a missing file is the default, a broken one an error naming
/// the file and the line.
pub fn load(dir: &Path) -> anyhow::Result<Config> {
    let path = dir.join("config.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
    };
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1))
            .unwrap_or(1);
        anyhow::anyhow!("{}, line {line}: {}", path.display(), e.message())
    })
}

/// Writes `config.toml`.
pub fn save(dir: &Path, config: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let path = dir.join("config.toml");
    std::fs::write(&path, toml::to_string(config)?)
        .with_context(|| format!("could not write {}", path.display()))
}

/// The stored token, if any.
pub fn token(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("token"))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Stores the token, readable by the owner only (mode 0600).
pub fn save_token(dir: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let path = dir.join("token");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("could not write {}", path.display()))?;
    file.write_all(token.as_bytes())?;
    Ok(())
}

/// Forgets the token.
pub fn forget_token(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(dir.join("token")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// The messages waiting to be sent (`outbox.json`); unreadable means empty.
pub fn load_outbox(dir: &Path) -> Vec<crate::app::Outgoing> {
    std::fs::read_to_string(dir.join("outbox.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Writes the outbox (owner-only, like the token), replacing the file atomically.
pub fn save_outbox(dir: &Path, outbox: &[crate::app::Outgoing]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let temp = dir.join("outbox.json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(serde_json::to_string_pretty(outbox)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, dir.join("outbox.json"))?;
    Ok(())
}

/// The server and token in force: environment first, then the files.
pub fn credentials(dir: &Path, config: &Config) -> anyhow::Result<(String, String)> {
    let server = std::env::var("CONVOS_SERVER")
        .ok()
        .or_else(|| config.server.clone());
    let token = std::env::var("CONVOS_TOKEN").ok().or_else(|| token(dir));
    match (server, token) {
        (Some(server), Some(token)) => Ok((server.trim_end_matches('/').to_owned(), token)),
        _ => bail!("not logged in: run `convos login` (or set CONVOS_SERVER and CONVOS_TOKEN)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("convos-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_broken_config_names_the_file_and_line() {
        let dir = temp();
        std::fs::write(dir.join("config.toml"), "bell = true\nserver = 42\n").unwrap();
        let err = load(&dir).unwrap_err().to_string();
        assert!(err.contains("config.toml, line 2"), "{err}");
    }

    #[test]
    fn the_token_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp();
        save_token(&dir, "cvs_secret").unwrap();
        let mode = std::fs::metadata(dir.join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(token(&dir).as_deref(), Some("cvs_secret"));
        forget_token(&dir).unwrap();
        assert_eq!(token(&dir), None);
    }

    #[test]
    fn the_outbox_survives_a_restart_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp();
        assert!(load_outbox(&dir).is_empty());
        let queued = vec![crate::app::Outgoing {
            key: "k".into(),
            reply_to: None,
            recipient: "bob".into(),
            subject: "s".into(),
            body: "b".into(),
        }];
        save_outbox(&dir, &queued).unwrap();
        assert_eq!(load_outbox(&dir), queued);
        let mode = std::fs::metadata(dir.join("outbox.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_shipped_example_config_parses_with_its_keys() {
        let dir = temp();
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"),
            dir.join("config.toml"),
        )
        .unwrap();
        let config = load(&dir).unwrap();
        assert_eq!(config.server.as_deref(), Some("http://127.0.0.1:8080"));
        assert!(crate::keys::Keymap::with_overrides(&config.keys).is_ok());
    }

    #[test]
    fn a_missing_config_is_the_default() {
        assert_eq!(load(&temp()).unwrap(), Config::default());
    }
}
