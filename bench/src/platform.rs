//! The platform under test: the release server and worker, started against one database with
//! production settings (JSON logs, a real secret), and stopped between scenarios.

use crate::procs::{Proc, free_port};
use anyhow::bail;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the binaries are and where processes write their logs.
#[derive(Clone)]
pub struct Env {
    /// `target/release`.
    pub bin_dir: PathBuf,
    /// Logs and scratch files of this run.
    pub work_dir: PathBuf,
    /// The benchmark's own Redis.
    pub redis_url: String,
}

/// The secret both processes sign unsubscribe links with.
const SECRET: &str = "convos-bench-secret-0123456789abcdef0123456789";

impl Env {
    fn command(&self, bin: &str, database_url: &str, public_url: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(bin));
        cmd.env("DATABASE_URL", database_url)
            .env("REDIS_URL", &self.redis_url)
            .env("CONVOS_ENV", "production")
            .env("CONVOS_SECRET_KEY", SECRET)
            .env("CONVOS_PUBLIC_URL", public_url)
            .env("CONVOS_MIGRATE_ON_START", "true");
        cmd
    }

    /// Starts the server on a free port and waits until it is ready.
    pub async fn server(
        &self,
        database_url: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = self.command("convos-server", database_url, &base);
        cmd.env("CONVOS_ADDR", format!("127.0.0.1:{port}"))
            // Load comes from a few hundred bench users: the per-user send limit is still
            // checked on every request (in Redis), just set out of reach.
            .env("CONVOS_SEND_RATE_PER_MIN", "100000000")
            .env("CONVOS_SEND_BYTES_PER_DAY", u64::MAX.to_string())
            // Every simulated client connects from loopback: the per-address connection cap
            // would otherwise cut the 1,000-stream and wrk loads short.
            .env("CONVOS_MAX_CONNECTIONS_PER_ADDR", "1000000")
            // Likewise their requests a second: wrk alone sends thousands from loopback.
            .env("CONVOS_REQUESTS_PER_SEC_PER_ADDR", "0")
            // A wrk load sends many requests at once as one user (the inbox as one reader):
            // the per-user cap of requests under way is checked, set out of reach.
            .env("CONVOS_MAX_REQUESTS_PER_USER", "1000000")
            // Likewise the searches running at once, which its search load keeps above 8.
            .env("CONVOS_MAX_SEARCHES", "1000000")
            .env("CONVOS_MAX_LONG_THREAD_ACTIONS", "1000000")
            // The live scenarios open streams as fast as they can for a few users.
            .env("CONVOS_STREAM_OPENS_PER_MIN", "1000000")
            .env(
                "CONVOS_SERVER_METRICS_ADDR",
                format!("127.0.0.1:{}", free_port()?),
            );
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn("convos-server", cmd, &self.work_dir.join("server.log"))?;
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            proc.check_running()?;
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the server was not ready within 60 s; see server.log");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Server { proc, base })
    }

    /// Starts a worker that sends email to `smtp_port`.
    pub fn worker(
        &self,
        database_url: &str,
        smtp_port: u16,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Proc> {
        let mut cmd = self.command("convos-worker", database_url, "http://127.0.0.1:1");
        cmd.env("CONVOS_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
            .env(
                "CONVOS_WORKER_METRICS_ADDR",
                format!("127.0.0.1:{}", free_port()?),
            );
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Proc::spawn("convos-worker", cmd, &self.work_dir.join("worker.log"))
    }
}

/// A running server.
pub struct Server {
    /// The process.
    pub proc: Proc,
    /// Its base URL.
    pub base: String,
}
