//! The local cache on disk: what the client has shown, per account, so the next start draws
//! the mailbox before the network answers and reading works offline.
//!
//! One file per account and server, `cache/<account>.json`, named by a hash of the server and
//! the user's id, owner-only and replaced atomically like the token and the drafts. The session
//! token decides whose cache a start may show: `cache/sessions.json` maps a hash of the server
//! and the token to the account, and a binding is made only when the server has said, for that
//! very token, who it belongs to (`GET /me`, or the answer to a login). A token the client has
//! not seen answered shows no cache, so a different login never sees the previous user's mail.
//! A file of another format version, or one that does not parse, is ignored (and overwritten by
//! the next save).

use crate::app::Snapshot;
use anyhow::Context;
use chrono::{DateTime, Utc};
use convos_core::UserId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The format of the files; another version is ignored.
pub const VERSION: u32 = 1;

/// How many sessions the index remembers (the oldest bindings go first).
const MAX_SESSIONS: usize = 32;

/// The cache folder under the configuration folder `dir`.
pub fn folder(dir: &Path) -> PathBuf {
    dir.join("cache")
}

/// An account's file name: a hash of the server and the user's id, so the name says nothing of
/// either.
fn account(server: &str, user: UserId) -> String {
    let hash = Sha256::digest(format!("convos-cache-account\n{server}\n{user}"));
    format!("{hash:x}")[..32].to_owned()
}

/// A session's key in the index: a hash of the server and the token (never the token).
fn session(server: &str, token: &str) -> String {
    let hash = Sha256::digest(format!("convos-cache-session\n{server}\n{token}"));
    format!("{hash:x}")
}

#[derive(Serialize)]
struct Written<'a> {
    version: u32,
    saved_at: DateTime<Utc>,
    snapshot: &'a Snapshot,
}

#[derive(Deserialize)]
struct Read {
    version: u32,
    snapshot: Snapshot,
}

#[derive(Default, Serialize, Deserialize)]
struct Index {
    version: u32,
    /// (session, account), the most recent binding last.
    sessions: Vec<(String, String)>,
}

fn read_index(dir: &Path) -> Index {
    std::fs::read(folder(dir).join("sessions.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Index>(&bytes).ok())
        .filter(|index| index.version == VERSION)
        .unwrap_or_default()
}

fn write_index(dir: &Path, index: &Index) -> anyhow::Result<()> {
    crate::config::create_private_dir(&folder(dir))?;
    crate::config::write_private_file(&folder(dir), "sessions.json", &serde_json::to_vec(index)?)
}

/// The cache this session may show: the account its token was bound to on `server`, with
/// what expired by `now` dropped. `None` when the token is not bound, or the file is missing,
/// of another version, or broken.
pub fn load(dir: &Path, server: &str, token: &str, now: DateTime<Utc>) -> Option<Snapshot> {
    let index = read_index(dir);
    let key = session(server, token);
    let (_, account) = index.sessions.iter().rev().find(|(s, _)| *s == key)?;
    read_account(dir, account, server, now)
}

/// `user`'s cache on `server`, with what expired by `now` dropped.
pub fn load_user(dir: &Path, server: &str, user: UserId, now: DateTime<Utc>) -> Option<Snapshot> {
    read_account(dir, &account(server, user), server, now)
}

fn read_account(dir: &Path, name: &str, server: &str, now: DateTime<Utc>) -> Option<Snapshot> {
    let bytes = std::fs::read(folder(dir).join(format!("{name}.json"))).ok()?;
    let read: Read = serde_json::from_slice(&bytes).ok()?;
    let mut snapshot = read.snapshot;
    // The file must be the one its name says: this server, this account.
    let user = snapshot.user?;
    if read.version != VERSION || snapshot.server != server || account(server, user) != name {
        return None;
    }
    snapshot.expire(now);
    snapshot.bound();
    Some(snapshot)
}

/// Writes `snapshot` to its account's file (it must know its user), stamped `now`.
pub fn save(dir: &Path, snapshot: &Snapshot, now: DateTime<Utc>) -> anyhow::Result<()> {
    let user = snapshot
        .user
        .context("a cache is written once the server has said whose it is")?;
    let written = Written {
        version: VERSION,
        saved_at: now,
        snapshot,
    };
    crate::config::create_private_dir(&folder(dir))?;
    crate::config::write_private_file(
        &folder(dir),
        &format!("{}.json", account(&snapshot.server, user)),
        &serde_json::to_vec(&written)?,
    )
}

/// Binds `token` on `server` to `user` (the server said so). Returns whether the binding is
/// new (the cache was not shown at start for this token).
pub fn remember(dir: &Path, server: &str, token: &str, user: UserId) -> anyhow::Result<bool> {
    let mut index = read_index(dir);
    let key = session(server, token);
    let account = account(server, user);
    if index.sessions.last() == Some(&(key.clone(), account.clone())) {
        return Ok(false);
    }
    let known = index
        .sessions
        .iter()
        .any(|(s, a)| *s == key && *a == account);
    index.sessions.retain(|(s, _)| *s != key);
    index.sessions.push((key, account));
    let excess = index.sessions.len().saturating_sub(MAX_SESSIONS);
    index.sessions.drain(..excess);
    index.version = VERSION;
    write_index(dir, &index)?;
    Ok(!known)
}

/// The session ended (its token was refused): its token no longer opens a cache. The cached
/// mail stays for the user's next login.
pub fn forget_session(dir: &Path, server: &str, token: &str) -> anyhow::Result<()> {
    let mut index = read_index(dir);
    let key = session(server, token);
    let before = index.sessions.len();
    index.sessions.retain(|(s, _)| *s != key);
    if index.sessions.len() == before {
        return Ok(());
    }
    write_index(dir, &index)
}

/// Logging out: the session's account's cached mail is deleted, and no token opens it any
/// more.
pub fn forget_account(dir: &Path, server: &str, token: &str) -> anyhow::Result<()> {
    let mut index = read_index(dir);
    let key = session(server, token);
    let Some((_, account)) = index.sessions.iter().find(|(s, _)| *s == key).cloned() else {
        return Ok(());
    };
    match std::fs::remove_file(folder(dir).join(format!("{account}.json"))) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    index.sessions.retain(|(_, a)| *a != account);
    write_index(dir, &index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::thread;
    use chrono::TimeZone;
    use convos_core::api::Folder;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("convos-cache-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 5, 0).unwrap()
    }

    const SERVER: &str = "http://127.0.0.1:8080";

    fn alices_cache() -> Snapshot {
        let mut snapshot = Snapshot::new(SERVER);
        let me = crate::app::cache_tests::me("alice");
        snapshot.me(&me);
        snapshot.listed(Folder::Inbox, false, &[thread("Lunch", 1)]);
        snapshot.stamp(now());
        snapshot.dirty = false;
        snapshot.fresh.clear();
        snapshot
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(folder(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[test]
    fn a_saved_cache_comes_back_for_the_token_bound_to_its_user_and_files_are_private() {
        let dir = temp().join("convos");
        let snapshot = alices_cache();
        save(&dir, &snapshot, now()).unwrap();
        assert_eq!(
            load(&dir, SERVER, "cvs_alice", now()),
            None,
            "not bound yet"
        );
        assert!(remember(&dir, SERVER, "cvs_alice", snapshot.user.unwrap()).unwrap());
        assert!(!remember(&dir, SERVER, "cvs_alice", snapshot.user.unwrap()).unwrap());
        assert_eq!(
            load(&dir, SERVER, "cvs_alice", now()),
            Some(snapshot.clone())
        );
        assert_eq!(
            load_user(&dir, SERVER, snapshot.user.unwrap(), now()),
            Some(snapshot)
        );
        assert_eq!(mode(&folder(&dir)), 0o700);
        for file in files(&dir) {
            assert_eq!(mode(&file), 0o600, "{} is private", file.display());
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(!text.contains("cvs_alice"), "the token is never written");
        }
        assert_eq!(files(&dir).len(), 2, "no temporary file is left behind");
    }

    #[test]
    fn another_token_or_server_sees_nothing() {
        let dir = temp();
        let snapshot = alices_cache();
        save(&dir, &snapshot, now()).unwrap();
        remember(&dir, SERVER, "cvs_alice", snapshot.user.unwrap()).unwrap();
        assert_eq!(load(&dir, SERVER, "cvs_bob", now()), None);
        assert_eq!(load(&dir, "http://other:8080", "cvs_alice", now()), None);
    }

    #[test]
    fn a_corrupt_or_old_file_is_ignored() {
        let dir = temp();
        let snapshot = alices_cache();
        let user = snapshot.user.unwrap();
        remember(&dir, SERVER, "cvs_alice", user).unwrap();
        let path = folder(&dir).join(format!("{}.json", account(SERVER, user)));

        std::fs::write(&path, b"{\"version\": 1, \"snapshot\": {\"serv").unwrap();
        assert_eq!(load(&dir, SERVER, "cvs_alice", now()), None);

        save(&dir, &snapshot, now()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"version\":1", "\"version\":0")).unwrap();
        assert_eq!(load(&dir, SERVER, "cvs_alice", now()), None);

        std::fs::write(&path, b"[1, 2, 3]").unwrap();
        assert_eq!(load(&dir, SERVER, "cvs_alice", now()), None);

        // A broken index is an empty one.
        std::fs::write(folder(&dir).join("sessions.json"), b"garbage").unwrap();
        save(&dir, &snapshot, now()).unwrap();
        assert_eq!(load(&dir, SERVER, "cvs_alice", now()), None);
    }

    #[test]
    fn a_file_renamed_to_another_accounts_name_is_not_shown() {
        let dir = temp();
        let alice = alices_cache();
        save(&dir, &alice, now()).unwrap();
        let bob = UserId::generate();
        remember(&dir, SERVER, "cvs_bob", bob).unwrap();
        std::fs::rename(
            folder(&dir).join(format!("{}.json", account(SERVER, alice.user.unwrap()))),
            folder(&dir).join(format!("{}.json", account(SERVER, bob))),
        )
        .unwrap();
        assert_eq!(load(&dir, SERVER, "cvs_bob", now()), None);
    }

    #[test]
    fn logging_out_deletes_the_accounts_mail_and_a_refused_token_only_unbinds() {
        let dir = temp();
        let snapshot = alices_cache();
        let user = snapshot.user.unwrap();
        save(&dir, &snapshot, now()).unwrap();
        remember(&dir, SERVER, "cvs_old", user).unwrap();
        remember(&dir, SERVER, "cvs_alice", user).unwrap();

        forget_session(&dir, SERVER, "cvs_old").unwrap();
        assert_eq!(load(&dir, SERVER, "cvs_old", now()), None);
        assert!(load(&dir, SERVER, "cvs_alice", now()).is_some());

        forget_account(&dir, SERVER, "cvs_alice").unwrap();
        assert_eq!(load(&dir, SERVER, "cvs_alice", now()), None);
        assert_eq!(
            load_user(&dir, SERVER, user, now()),
            None,
            "the mail is gone"
        );
    }

    #[test]
    fn the_index_remembers_a_bounded_number_of_sessions() {
        let dir = temp();
        let user = UserId::generate();
        for i in 0..MAX_SESSIONS + 3 {
            remember(&dir, SERVER, &format!("cvs_{i}"), user).unwrap();
        }
        assert_eq!(read_index(&dir).sessions.len(), MAX_SESSIONS);
        assert!(
            !read_index(&dir)
                .sessions
                .iter()
                .any(|(s, _)| *s == session(SERVER, "cvs_0"))
        );
    }
}
