//! Drafts on disk: each message being written is kept in a file of its own,
//! `drafts/<key>.json` (its idempotency key), owner-only and replaced atomically, so a crash,
//! a quit or a lost connection loses nothing, and two clients never overwrite each other's
//! drafts. A draft's file goes when the message is sent, queued in the outbox, or discarded.

use crate::app::Draft;
use std::path::{Path, PathBuf};

fn folder(dir: &Path) -> PathBuf {
    dir.join("drafts")
}

/// A draft's file name, if its key is one the client makes (a UUID): a key read from a file
/// can never name a path elsewhere.
fn file_name(key: &str) -> Option<String> {
    uuid::Uuid::parse_str(key)
        .ok()
        .map(|uuid| format!("{}.json", uuid.hyphenated()))
}

/// Writes `draft` under the configuration folder `dir`, stamped with the time it was saved.
pub fn save(dir: &Path, draft: &Draft) -> anyhow::Result<Draft> {
    let name = file_name(&draft.key).ok_or_else(|| anyhow::anyhow!("not a draft key"))?;
    let folder = folder(dir);
    crate::config::create_private_dir(&folder)?;
    let mut draft = draft.clone();
    draft.saved_at = Some(chrono::Utc::now());
    crate::config::write_private_file(
        &folder,
        &name,
        serde_json::to_string_pretty(&draft)?.as_bytes(),
    )?;
    Ok(draft)
}

/// Deletes the draft with this key (nothing if there is none).
pub fn remove(dir: &Path, key: &str) -> anyhow::Result<()> {
    let Some(name) = file_name(key) else {
        return Ok(());
    };
    match std::fs::remove_file(folder(dir).join(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Every draft kept under `dir`, the newest first (unreadable files are left alone).
pub fn load(dir: &Path) -> Vec<Draft> {
    let Ok(entries) = std::fs::read_dir(folder(dir)) else {
        return Vec::new();
    };
    let mut drafts: Vec<Draft> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json")))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|text| serde_json::from_str::<Draft>(&text).ok())
        .filter(|d| file_name(&d.key).is_some())
        .collect();
    drafts.sort_by_key(|d| std::cmp::Reverse(d.saved_at));
    drafts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("convos-drafts-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn draft(body: &str) -> Draft {
        Draft {
            key: uuid::Uuid::new_v4().to_string(),
            recipient: "bob".into(),
            subject: "Plans".into(),
            body: body.into(),
            ..Draft::default()
        }
    }

    #[test]
    fn each_draft_has_its_own_private_file_until_it_is_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp();
        let first = save(&dir, &draft("one")).unwrap();
        let second = save(&dir, &draft("two")).unwrap();
        let loaded = load(&dir);
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].body, "two", "newest first");
        let path = folder(&dir).join(file_name(&first.key).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "drafts are private");
        remove(&dir, &first.key).unwrap();
        remove(&dir, &first.key).unwrap();
        assert_eq!(load(&dir), [second]);
    }

    #[test]
    fn a_key_that_is_not_a_uuid_never_names_a_file() {
        let dir = temp();
        let mut bad = draft("x");
        bad.key = "../../config.toml".into();
        assert!(save(&dir, &bad).is_err());
        assert!(remove(&dir, "../x").is_ok());
    }
}
