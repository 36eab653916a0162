//! The worker in a test: as a task of this process, or as a `convos-worker` process of its own.

use crate::stack::StackConfig;
use convos_worker::config::WorkerSettings;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use tokio::sync::oneshot;

/// A worker running in this process; it stops when told to, or when dropped.
pub struct InProcessWorker {
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcessWorker {
    /// Starts `convos_worker::run` with `settings` on this runtime.
    pub fn start(settings: WorkerSettings) -> Self {
        crate::init_test_log();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(convos_worker::run(settings, async move {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            done,
        }
    }

    /// Whether the worker is still running (it must never exit on its own).
    pub fn is_running(&self) -> bool {
        !self.done.is_finished()
    }

    /// Stops it and waits; it must exit cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.done)
            .await
            .expect("the worker task")
            .expect("the worker ran cleanly");
    }
}

/// A `convos-worker` process of its own, stopped with SIGTERM by [`WorkerProcess::stop`] and
/// killed if dropped while running.
pub struct WorkerProcess(pub Child);

impl WorkerProcess {
    /// Starts the worker binary at `bin` (a test crate's `env!("CARGO_BIN_EXE_convos-worker")`)
    /// against `config`'s stores and the database at `database_url`, with `extra` environment.
    pub fn spawn(
        bin: impl AsRef<Path>,
        config: &StackConfig,
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut cmd = Command::new(bin.as_ref());
        cmd.env("DATABASE_URL", database_url)
            .env("REDIS_URL", &config.redis_url)
            .env("CONVOS_REDIS_PREFIX", &config.prefix)
            .env(
                "CONVOS_SMTP_URL",
                format!("smtp://127.0.0.1:{}", config.smtp_port),
            )
            .env("CONVOS_MAIL_FROM", "Convos <notify@convos.test>")
            .env(
                "CONVOS_JOB_DEADLINE_SECS",
                config.job_deadline_secs.to_string(),
            )
            .env("CONVOS_JOBS_IN_FLIGHT", "200")
            .env("CONVOS_RELAY_INTERVAL_MS", "50")
            .env("CONVOS_POLL_MS", "50")
            // As `StackConfig::worker_settings`: one sender's share as the whole day's cap.
            .env("CONVOS_EMAIL_DAILY_CAP_PER_SENDER", "20")
            .env(
                "CONVOS_WORKER_METRICS_ADDR",
                format!("127.0.0.1:{}", crate::free_port()),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (key, value) in extra {
            cmd.env(key, value);
        }
        Self(cmd.spawn().expect("the worker starts"))
    }

    /// Stops it with SIGTERM and waits; it must exit cleanly.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let status = self.0.wait().expect("the worker exits");
        assert!(status.success(), "the worker exited with {status}");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
