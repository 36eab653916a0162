//! The settings one test's server and worker share: the Redis and key prefix, the SMTP port,
//! and the timings the pipeline tests tune.

use crate::server::server_settings;
use convos_server::config::Settings;
use convos_worker::config::WorkerSettings;
use secrecy::SecretString;

/// What a test's server and worker have in common.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// The Redis both use.
    pub redis_url: String,
    /// The key prefix both use.
    pub prefix: String,
    /// Where the worker sends email (see [`crate::SmtpSink::serve`]).
    pub smtp_port: u16,
    /// How long the server holds a notification email back for the recipient to read first.
    pub notify_delay_secs: u64,
    /// The worker's per-job deadline.
    pub job_deadline_secs: u64,
    /// The worker's first retry delay.
    pub retry_base_ms: u64,
    /// How often the worker purges expired messages and old records.
    pub purge_every_secs: u64,
}

impl StackConfig {
    /// The shared Redis under a fresh prefix, a free SMTP port, no notification delay, and
    /// short job deadlines and retries.
    pub fn new() -> Self {
        Self {
            redis_url: crate::redis_url(),
            prefix: crate::fresh_prefix(),
            smtp_port: crate::free_port(),
            notify_delay_secs: 0,
            job_deadline_secs: 5,
            retry_base_ms: 200,
            purge_every_secs: 3600,
        }
    }

    /// The server's settings: [`server_settings`], with this stack's notification delay,
    /// sending unthrottled and a heartbeat every second on event streams.
    pub fn server_settings(&self) -> Settings {
        Settings {
            notify_delay_secs: self.notify_delay_secs,
            send_rate_per_min: 100_000,
            send_bytes_per_day: u64::MAX,
            sse_heartbeat_secs: 1,
            ..server_settings(&self.redis_url, &self.prefix)
        }
    }

    /// The worker's settings over the database at `database_url`: this stack's SMTP port,
    /// notification delay and timings, sending unthrottled (as the server's), a relay that moves jobs every 50 ms, no `/metrics`, and links to
    /// `https://convos.test` in the emails it sends from `notify@convos.test`.
    pub fn worker_settings(&self, database_url: &str) -> WorkerSettings {
        WorkerSettings {
            database_url: SecretString::from(database_url.to_owned()),
            redis_url: SecretString::from(self.redis_url.clone()),
            redis_prefix: self.prefix.clone(),
            smtp_url: SecretString::from(format!("smtp://127.0.0.1:{}", self.smtp_port)),
            mail_from: "Convos <notify@convos.test>".into(),
            public_url: "https://convos.test".into(),
            job_deadline_secs: self.job_deadline_secs,
            // Leases run from the dispatch (decision 34): with deadlines of seconds, fewer
            // jobs in flight than in production, or a debug build's backlog outwaits them.
            jobs_in_flight: 200,
            retry_base_ms: self.retry_base_ms,
            retry_max_secs: 2,
            relay_interval_ms: 50,
            poll_ms: 50,
            purge_every_secs: self.purge_every_secs,
            notify_delay_secs: self.notify_delay_secs,
            send_rate_per_min: 100_000,
            send_bytes_per_day: u64::MAX,
            worker_metrics_addr: None,
            // The pipeline's tests send one person's messages by the dozen; the share of one
            // sender (decision 84) has tests of its own.
            email_daily_cap_per_sender: WorkerSettings::default().email_daily_cap,
            ..WorkerSettings::default()
        }
    }
}

impl Default for StackConfig {
    fn default() -> Self {
        Self::new()
    }
}
