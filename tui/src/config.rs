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
    /// Key overrides: action name → key (e.g. `reply = "e"`), or a mode's table of them
    /// (`[keys.composer]`); see the help screen (`?`).
    pub keys: std::collections::BTreeMap<String, KeySetting>,
    /// Colours and styles per element (`[theme]`: `selection = "reverse"`); see
    /// [`crate::theme`]. `NO_COLOR` drops every colour.
    pub theme: std::collections::BTreeMap<String, String>,
    /// How a new message is announced on the desktop: `off` (the default), `osc9`, `osc777`
    /// or `notify-send`.
    pub notify: crate::desktop::Notify,
    /// Click to select and the wheel to scroll (off by default: the terminal's own selection
    /// then works as usual).
    pub mouse: bool,
}

/// One entry of `[keys]`: a mailbox action's key, or a mode's own table.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum KeySetting {
    /// `reply = "e"`.
    Key(String),
    /// `[keys.composer]` with `send = "ctrl+x"`.
    Mode(std::collections::BTreeMap<String, String>),
}

impl Config {
    /// The key overrides as the key table reads them: `reply`, or `composer.send` for an
    /// action in a mode's table.
    pub fn key_overrides(&self) -> std::collections::BTreeMap<String, String> {
        let mut flat = std::collections::BTreeMap::new();
        for (name, setting) in &self.keys {
            match setting {
                KeySetting::Key(key) => {
                    flat.insert(name.clone(), key.clone());
                }
                KeySetting::Mode(table) => {
                    for (action, key) in table {
                        flat.insert(format!("{name}.{action}"), key.clone());
                    }
                }
            }
        }
        flat
    }
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
    create_dir(dir)?;
    let path = dir.join("config.toml");
    std::fs::write(&path, toml::to_string(config)?)
        .with_context(|| format!("could not write {}", path.display()))
}

/// The stored token, if any.
///
/// A token file that others can read (left so by an older client, or written by hand) is made
/// private to its owner (mode 0600) on the way.
pub fn token(dir: &Path) -> Option<String> {
    let path = dir.join("token");
    let token = std::fs::read_to_string(&path).ok()?;
    make_private(&path);
    Some(token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Stores the token, readable by the owner only (mode 0600), whatever the mode of the file it
/// replaces.
pub fn save_token(dir: &Path, token: &str) -> anyhow::Result<()> {
    write_private(dir, "token", token.as_bytes())
}

/// Forgets the token.
pub fn forget_token(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(dir.join("token")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Creates `dir` private to its owner (see [`create_dir`]); for the outbox folder.
pub(crate) fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    create_dir(dir)
}

/// Writes `name` in `dir` owner-only, replacing it atomically; for the outbox files.
pub(crate) fn write_private_file(dir: &Path, name: &str, contents: &[u8]) -> anyhow::Result<()> {
    write_private(dir, name, contents)
}

/// Creates the configuration folder, private to its owner (mode 0700), unless it exists.
///
/// An existing folder keeps its mode (the user may have chosen it): the files in it that matter
/// are private themselves.
fn create_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // Every folder it creates on the way is the owner's alone too: the client's own folder was
    // created with the default mode when a subfolder (the cache) was written first.
    let created = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    match created {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists || !dir.is_dir() => {
            Err(e).with_context(|| format!("could not create {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Replaces `dir/name` with `contents`, readable and writable by the owner only (mode 0600).
///
/// The contents go to a new file of that mode, created under a fresh name (never one that
/// exists, so never through a planted link), flushed to disk, then renamed over the old file:
/// the mode of the file replaced does not carry over, and no reader ever sees half a file.
fn write_private(dir: &Path, name: &str, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    create_dir(dir)?;
    let path = dir.join(name);
    let temp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        // The umask can only take bits away from 0600; this makes the mode exact.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("could not write {}", path.display()));
    }
    // The rename is durable once the folder is; the file is in place either way.
    let _ = std::fs::File::open(dir).and_then(|folder| folder.sync_all());
    Ok(())
}

/// Takes read and write access away from group and others on a regular file, if they have any.
fn make_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.is_file()
        && meta.permissions().mode() & 0o077 != 0
    {
        // Best effort: the token is read either way, and a file we cannot change is not ours.
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// The server used when neither `CONVOS_SERVER` nor `config.toml` names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The server and the token, if any, the client starts with: environment first, then the
/// files, then [`DEFAULT_SERVER`]. Without a token the client opens its login screen.
pub fn session(dir: &Path, config: &Config) -> (String, Option<String>) {
    let server = std::env::var("CONVOS_SERVER")
        .ok()
        .or_else(|| config.server.clone())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let token = std::env::var("CONVOS_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| token(dir));
    (server.trim_end_matches('/').to_owned(), token)
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

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_token_file_readable_by_others_is_private_once_a_new_token_is_saved() {
        let dir = temp();
        std::fs::write(dir.join("token"), "cvs_old").unwrap();
        set_mode(&dir.join("token"), 0o644);

        save_token(&dir, "cvs_new").unwrap();

        assert_eq!(mode(&dir.join("token")), 0o600);
        assert_eq!(token(&dir).as_deref(), Some("cvs_new"));
        assert_eq!(names(&dir), ["token"], "no temporary file is left behind");
    }

    #[test]
    fn a_token_file_readable_by_others_is_made_private_when_read() {
        let dir = temp();
        std::fs::write(dir.join("token"), "cvs_by_hand\n").unwrap();
        set_mode(&dir.join("token"), 0o644);

        assert_eq!(token(&dir).as_deref(), Some("cvs_by_hand"));

        assert_eq!(mode(&dir.join("token")), 0o600);
    }

    #[test]
    fn logging_in_creates_a_private_folder() {
        let dir = temp().join("convos");

        // What `convos login` does: the server in config.toml, then the token.
        save(&dir, &Config::default()).unwrap();
        save_token(&dir, "cvs_secret").unwrap();

        assert_eq!(mode(&dir), 0o700);
        assert_eq!(names(&dir), ["config.toml", "token"]);
    }

    #[test]
    fn a_subfolder_written_first_leaves_the_folders_above_it_private() {
        // With `CONVOS_TOKEN` and no login, the cache is the first thing written.
        let dir = temp().join("convos");

        create_private_dir(&dir.join("cache")).unwrap();

        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("cache")), 0o700);
    }

    #[test]
    fn an_existing_folder_keeps_its_mode() {
        let dir = temp();
        set_mode(&dir, 0o750);

        save_token(&dir, "cvs_secret").unwrap();

        assert_eq!(mode(&dir), 0o750);
        assert_eq!(mode(&dir.join("token")), 0o600);
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
        let overrides = config.key_overrides();
        assert!(overrides.contains_key("composer.send"), "{overrides:?}");
        assert!(crate::keys::Keymap::with_overrides(&overrides).is_ok());
    }

    #[test]
    fn a_missing_config_is_the_default() {
        assert_eq!(load(&temp()).unwrap(), Config::default());
    }
}
