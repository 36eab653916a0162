//! The tmux harness the client's end-to-end tests share: a tmux server of the test's own
//! (killed at the end) whose pane `convos` runs the real binary; keys go in, the screen comes
//! out.

// Each test file is its own crate and uses only part of the harness.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of this test's own, killed at the end.
pub struct Tmux {
    /// Its socket name (`tmux -L`).
    pub socket: String,
}

impl Tmux {
    /// A server of its own, named `<prefix>-<random>`.
    pub fn new(prefix: &str) -> Self {
        Self {
            socket: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Runs a tmux command on this server; its standard output.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the `convos` pane shows.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "convos"])
    }

    /// Sends keys to the `convos` pane (tmux `send-keys` arguments).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "convos"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Waits up to 20 s for `text` on the screen; fails with the screen if it never shows.
    pub async fn wait_for(&self, text: &str) {
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
