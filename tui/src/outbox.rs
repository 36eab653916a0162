//! The outbox on disk: messages written while the server could not be reached, kept until they
//! are sent.
//!
//! Each running client has a file of its own, `outbox/<id>.json`, and holds an exclusive lock
//! on `outbox/<id>.lock` for as long as it runs, so two clients never overwrite each other's
//! queue (one used to save its list over the other's, losing a message). A client that starts
//! adopts the queues of clients that are gone (their lock is free; taking it first means no
//! other client adopts the same queue), and the old single `outbox.json` too. Each queued
//! message keeps its idempotency key, so even a message adopted twice after a crash is sent
//! once: the server answers the second send with the first message.

use crate::app::Outgoing;
use anyhow::Context;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process's outbox file.
static OPEN: OnceLock<Outbox> = OnceLock::new();

/// One client's outbox file, locked while it lives.
#[derive(Debug)]
pub struct Outbox {
    folder: PathBuf,
    id: String,
    /// Held for the life of the process: the lock is what tells other clients we are alive.
    _lock: File,
}

fn lock_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
}

fn read_queue(path: &Path) -> Vec<Outgoing> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

impl Outbox {
    /// Opens a new outbox file under the configuration folder `dir` and adopts the queues of
    /// clients that are gone. Returns it and the adopted messages (already saved in it).
    pub fn open(dir: &Path) -> anyhow::Result<(Self, Vec<Outgoing>)> {
        let folder = dir.join("outbox");
        crate::config::create_private_dir(&folder)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let lock = lock_file(&folder.join(format!("{id}.lock")))?;
        lock.try_lock()
            .map_err(|e| anyhow::anyhow!("could not lock a new outbox file: {e:?}"))?;
        let outbox = Self {
            folder,
            id,
            _lock: lock,
        };
        let mut queue: Vec<Outgoing> = Vec::new();
        // The single file of earlier versions, under a lock of its own (kept), then the files
        // of clients that are gone.
        let mut orphans: Vec<Orphan> = Orphan::claim(
            outbox.folder.join("legacy.lock"),
            dir.join("outbox.json"),
            false,
        )
        .into_iter()
        .collect();
        let entries = std::fs::read_dir(&outbox.folder)
            .with_context(|| format!("could not read {}", outbox.folder.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(other) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".lock"))
            else {
                continue;
            };
            if other == outbox.id || other == "legacy" {
                continue;
            }
            let data = outbox.folder.join(format!("{other}.json"));
            orphans.extend(Orphan::claim(path.clone(), data, true));
        }
        for orphan in &orphans {
            for message in read_queue(&orphan.data) {
                if !queue.iter().any(|m| m.key == message.key) {
                    queue.push(message);
                }
            }
        }
        // The adopted messages are safe in our file before the others' files go.
        outbox.save(&queue)?;
        for orphan in orphans {
            orphan.remove();
        }
        Ok((outbox, queue))
    }

    /// Replaces this client's queue on disk (atomically, owner-only).
    pub fn save(&self, queue: &[Outgoing]) -> anyhow::Result<()> {
        crate::config::write_private_file(
            &self.folder,
            &format!("{}.json", self.id),
            serde_json::to_string_pretty(queue)?.as_bytes(),
        )
    }
}

/// The outbox of a client that is gone, claimed by taking its lock.
struct Orphan {
    lock: File,
    lock_path: PathBuf,
    data: PathBuf,
    /// Whether the lock file goes with the data (not the shared lock of the legacy file).
    remove_lock: bool,
}

impl Orphan {
    /// The outbox at `data` if nobody holds `lock_path` (its client is gone); it is ours until
    /// dropped.
    fn claim(lock_path: PathBuf, data: PathBuf, remove_lock: bool) -> Option<Self> {
        let lock = lock_file(&lock_path).ok()?;
        lock.try_lock().ok()?;
        Some(Self {
            lock,
            lock_path,
            data,
            remove_lock,
        })
    }

    /// Deletes its files, then lets go of its lock.
    fn remove(self) {
        let _ = std::fs::remove_file(&self.data);
        if self.remove_lock {
            let _ = std::fs::remove_file(&self.lock_path);
        }
        drop(self.lock);
    }
}

/// Opens this process's outbox (see [`Outbox::open`]) and returns the queued messages.
pub fn open(dir: &Path) -> anyhow::Result<Vec<Outgoing>> {
    let (outbox, queue) = Outbox::open(dir)?;
    OPEN.set(outbox)
        .map_err(|_| anyhow::anyhow!("the outbox is already open"))?;
    Ok(queue)
}

/// Saves this process's queue; an error if [`open`] was not called.
pub fn save(queue: &[Outgoing]) -> anyhow::Result<()> {
    OPEN.get().context("the outbox is not open")?.save(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("convos-outbox-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn message(key: &str) -> Outgoing {
        Outgoing {
            key: key.into(),
            reply_to: None,
            recipient: "bob".into(),
            subject: "s".into(),
            body: key.into(),
            options: Default::default(),
        }
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn two_running_clients_keep_their_own_queues() {
        let dir = temp();
        let (first, adopted) = Outbox::open(&dir).unwrap();
        assert!(adopted.is_empty());
        first.save(&[message("a")]).unwrap();
        // A second client starts while the first runs: it takes nothing of the first's queue,
        // and its saves cannot overwrite it.
        let (second, adopted) = Outbox::open(&dir).unwrap();
        assert!(adopted.is_empty(), "{adopted:?}");
        second.save(&[message("b")]).unwrap();
        let data = dir.join("outbox").join(format!("{}.json", first.id));
        assert_eq!(read_queue(&data), [message("a")]);
        assert_eq!(mode(&data), 0o600, "queued drafts are private");
    }

    #[test]
    fn a_client_adopts_the_queue_of_one_that_is_gone_and_only_one_client_does() {
        let dir = temp();
        let (gone, _) = Outbox::open(&dir).unwrap();
        gone.save(&[message("a"), message("b")]).unwrap();
        drop(gone); // Its process ended: the lock is free.
        let (heir, adopted) = Outbox::open(&dir).unwrap();
        assert_eq!(adopted, [message("a"), message("b")]);
        let (other, adopted) = Outbox::open(&dir).unwrap();
        assert!(adopted.is_empty(), "adopted once: {adopted:?}");
        // The heir's file holds them; the orphan's files are gone.
        let heir_file = dir.join("outbox").join(format!("{}.json", heir.id));
        assert_eq!(read_queue(&heir_file).len(), 2);
        let mut names: Vec<String> = std::fs::read_dir(dir.join("outbox"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("legacy"))
            .collect();
        names.sort();
        let mut expected = vec![
            format!("{}.json", heir.id),
            format!("{}.lock", heir.id),
            format!("{}.json", other.id),
            format!("{}.lock", other.id),
        ];
        expected.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn the_single_outbox_of_earlier_versions_is_adopted() {
        let dir = temp();
        std::fs::write(
            dir.join("outbox.json"),
            serde_json::to_string(&[message("old")]).unwrap(),
        )
        .unwrap();
        let (_client, adopted) = Outbox::open(&dir).unwrap();
        assert_eq!(adopted, [message("old")]);
        assert!(!dir.join("outbox.json").exists());
    }
}
