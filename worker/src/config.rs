//! Worker settings: built-in defaults, an optional TOML file, then the environment, which wins,
//! loaded and checked by the same code as the server's (`convos-plumbing`); the names match the
//! server's (`DATABASE_URL`, `REDIS_URL`, `CONVOS_<NAME>`).

use convos_plumbing::inbound_caps::DailyCaps;
use convos_plumbing::rate_limit::{SEND_BYTES_PER_DAY, SendLimits};
use convos_plumbing::{ConfigError, DEV_PUBLIC_URL, DEV_SECRET_KEY, Environment};
use secrecy::SecretString;
use serde::Deserialize;
use std::time::Duration;

/// Every worker setting. Missing values take [`WorkerSettings::default`].
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// `development` (default) or `production` (`CONVOS_ENV`): JSON logs, and the unsafe
    /// defaults refused.
    pub env: Environment,
    /// PostgreSQL URL (`DATABASE_URL`).
    pub database_url: SecretString,
    /// Redis URL (`REDIS_URL`).
    pub redis_url: SecretString,
    /// Prefix of the Redis keys of events and queues (`CONVOS_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// Where notification email goes (`CONVOS_SMTP_URL`): `smtp://host:port` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://user:pass@host:465`, or
    /// `file:///path/to/folder` to write `.eml` files instead.
    pub smtp_url: SecretString,
    /// The sender address of notifications (`CONVOS_MAIL_FROM`).
    pub mail_from: String,
    /// The URL people reach Convos at, for links in emails (`CONVOS_PUBLIC_URL`).
    pub public_url: String,
    /// Signs unsubscribe links; must match the server's (`CONVOS_SECRET_KEY`).
    pub secret_key: SecretString,
    /// Emails one recipient may get per 24 hours (`CONVOS_EMAIL_DAILY_CAP`).
    pub email_daily_cap: i64,
    /// Of those, emails about one sender's messages (`CONVOS_EMAIL_DAILY_CAP_PER_SENDER`): one
    /// account starting thread after thread could use up the recipient's whole day, and
    /// everyone else's messages went unemailed (decision 84).
    pub email_daily_cap_per_sender: i64,
    /// Seconds between purges of expired messages (`CONVOS_PURGE_EVERY_SECS`).
    pub purge_every_secs: u64,
    /// Seconds a dispatched or running job may go without an outcome before it is presumed
    /// lost and dispatched again (`CONVOS_JOB_DEADLINE_SECS`).
    pub job_deadline_secs: u64,
    /// Milliseconds between full relay passes (`CONVOS_RELAY_INTERVAL_MS`). New jobs are
    /// usually dispatched sooner, when the server's wake-up arrives; the tick is the fallback,
    /// and what makes delayed jobs and retries due.
    pub relay_interval_ms: u64,
    /// Most tickets (of up to 32 jobs, decision 33) of one kind waiting in Redis at once; the
    /// backlog waits in PostgreSQL (`CONVOS_QUEUE_CEILING`).
    pub queue_ceiling: i64,
    /// Most jobs of one kind handed out and not yet finished, across every worker (waiting in
    /// Redis or for a slot, or running: their leases run meanwhile, decision 34)
    /// (`CONVOS_JOBS_IN_FLIGHT`). It bounds a drain's rate at itself over the time a job spends
    /// in flight, so it is well above the slots of all the workers; and a job's lease runs from
    /// its dispatch, so it is well below what they finish in a deadline.
    pub jobs_in_flight: i64,
    /// Jobs of one kind run concurrently by this process (`CONVOS_WORKER_CONCURRENCY`), and
    /// tickets of one kind it holds at once. Jobs
    /// mostly wait (on SMTP, Redis and their ledger writes), so this is well above the cores;
    /// at 16 the worker fell behind the API it serves (decision 24).
    pub worker_concurrency: usize,
    /// Upper bound of PostgreSQL connections this process opens (`CONVOS_DB_MAX_CONNECTIONS`),
    /// shared by the relay, the ledger writer and the jobs.
    pub db_max_connections: u32,
    /// Milliseconds a job's statement may wait for a lock (`CONVOS_JOB_LOCK_TIMEOUT_MS`; 0: no
    /// limit) before the job fails for now and is retried later: a job waiting behind a user's
    /// long action on a thread gives its connection back (decision 82).
    pub job_lock_timeout_ms: u64,
    /// Milliseconds of the first retry delay; later ones double, with jitter
    /// (`CONVOS_RETRY_BASE_MS`).
    pub retry_base_ms: u64,
    /// Longest retry delay in seconds (`CONVOS_RETRY_MAX_SECS`).
    pub retry_max_secs: u64,
    /// Milliseconds an outcome write waits for others to share its statement and commit
    /// (`CONVOS_LEDGER_OUTCOME_WAIT_MS`; 0, the default, writes as soon as the previous write
    /// returns, which already batches whatever finished meanwhile).
    pub ledger_outcome_wait_ms: u64,
    /// Milliseconds a worker waits between polls of an empty queue (`CONVOS_POLL_MS`): the
    /// pickup delay of a dispatched job. One Lua call per queue per poll.
    pub poll_ms: u64,
    /// Days finished jobs (and their attempt history) are kept for operators
    /// (`CONVOS_KEEP_JOBS_DAYS`).
    pub keep_jobs_days: i32,
    /// Hours a finished live event's job (`deliver`) is kept (`CONVOS_KEEP_EVENT_JOBS_HOURS`):
    /// every action on one's mail writes one (decision 65).
    pub keep_event_jobs_hours: i32,
    /// Where `/metrics` is served (`CONVOS_WORKER_METRICS_ADDR`); `off` to serve none.
    #[serde(deserialize_with = "convos_plumbing::settings::optional_addr")]
    pub worker_metrics_addr: Option<std::net::SocketAddr>,
    /// Seconds between removals of finished tasks from Redis (`CONVOS_VACUUM_EVERY_SECS`); the
    /// ledger keeps the history, so Redis memory stays flat. Each removal blocks Redis for as
    /// long as it runs (one Lua script over the finished tasks), so it runs often and small.
    pub vacuum_every_secs: u64,
    /// The domain of reply and bounce addresses (`CONVOS_REPLY_DOMAIN`): when set,
    /// notifications carry `Reply-To: reply+<token>@<domain>` and the return path
    /// `bounce+<token>@<domain>`, and mail to them is read back (decision 26). Mail for the
    /// domain must reach the SMTP listener or the inbound webhook. Unset: email is one-way.
    pub reply_domain: Option<String>,
    /// Where this worker listens for mail to the reply domain (`CONVOS_INBOUND_SMTP_ADDR`, e.g.
    /// `0.0.0.0:2526` behind Postfix, or port 25 as the domain's MX); `off` (default) for none.
    #[serde(deserialize_with = "convos_plumbing::settings::optional_addr")]
    pub inbound_smtp_addr: Option<std::net::SocketAddr>,
    /// Largest message the SMTP listener accepts, in bytes (`CONVOS_INBOUND_MAX_BYTES`).
    pub inbound_max_bytes: usize,
    /// Connections the SMTP listener serves at once (`CONVOS_INBOUND_MAX_CONNECTIONS`); more
    /// are told to come back later (421). `inbound_relays` have as many places of their own.
    pub inbound_max_connections: usize,
    /// Of those, what one client network (an IPv4 address, an IPv6 /64) may hold
    /// (`CONVOS_INBOUND_MAX_CONNECTIONS_PER_ADDR`), and twice that one IPv6 /48; more are told
    /// to come back later (421).
    /// `inbound_relays` are not held to it.
    pub inbound_max_connections_per_addr: usize,
    /// Addresses and ranges of the mail relays in front of the listener
    /// (`CONVOS_INBOUND_RELAYS`, e.g. `["10.0.0.0/8"]`), every session of theirs carrying
    /// someone else's mail: not held to `inbound_max_connections_per_addr`. Default: this
    /// machine (`127.0.0.1`, `::1`), where a local Postfix relays from.
    pub inbound_relays: Vec<String>,
    /// Messages the SMTP listener takes for one reply or bounce address a day
    /// (`CONVOS_INBOUND_PER_ADDRESS_PER_DAY`); more are told `452` (decision 69). An answer or
    /// two and a bounce are what one email's address gets. The server's inbound webhook counts
    /// in the same keys with its own setting of the same name.
    pub inbound_per_address_per_day: u32,
    /// Messages the SMTP listener takes a day for all the addresses of one user
    /// (`CONVOS_INBOUND_PER_USER_PER_DAY`): addresses never expire, so without it a patient
    /// sender's supply of them grew by a day's emails every day (decision 69).
    pub inbound_per_user_per_day: u32,
    /// Messages one user may send per minute, replies by email included; must match the
    /// server's (`CONVOS_SEND_RATE_PER_MIN`).
    pub send_rate_per_min: u32,
    /// Bytes a day of what one user's sends store, replies by email included; must match the
    /// server's (`CONVOS_SEND_BYTES_PER_DAY`, decision 72).
    pub send_bytes_per_day: u64,
    /// Seconds a notification email waits for its recipient to read the message first, for
    /// replies posted by email; must match the server's (`CONVOS_NOTIFY_DELAY_SECS`).
    pub notify_delay_secs: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            database_url: SecretString::from("postgres://localhost/convos"),
            redis_url: SecretString::from("redis://127.0.0.1:6379"),
            redis_prefix: "convos:".into(),
            smtp_url: SecretString::from("smtp://127.0.0.1:2525"),
            mail_from: "Convos <notifications@convos.localhost>".into(),
            public_url: DEV_PUBLIC_URL.into(),
            secret_key: SecretString::from(DEV_SECRET_KEY),
            email_daily_cap: 20,
            email_daily_cap_per_sender: 8,
            purge_every_secs: 60,
            job_deadline_secs: 120,
            relay_interval_ms: 200,
            queue_ceiling: 500,
            jobs_in_flight: 2_000,
            worker_concurrency: 64,
            db_max_connections: 20,
            job_lock_timeout_ms: 10_000,
            retry_base_ms: 5_000,
            retry_max_secs: 3_600,
            poll_ms: 50,
            ledger_outcome_wait_ms: 0,
            vacuum_every_secs: 5,
            keep_jobs_days: 7,
            keep_event_jobs_hours: 24,
            worker_metrics_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9091))),
            reply_domain: None,
            inbound_smtp_addr: None,
            inbound_max_bytes: 1 << 20,
            inbound_max_connections: 64,
            inbound_max_connections_per_addr: 16,
            inbound_relays: vec!["127.0.0.1".into(), "::1".into()],
            inbound_per_address_per_day: DailyCaps::default().per_address,
            inbound_per_user_per_day: DailyCaps::default().per_user,
            send_rate_per_min: 30,
            send_bytes_per_day: SEND_BYTES_PER_DAY,
            notify_delay_secs: 120,
        }
    }
}

impl WorkerSettings {
    /// Loads settings from defaults, the optional file and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let settings: Self =
            convos_plumbing::settings::extract(&convos_plumbing::settings::figment())?;
        settings.check()?;
        Ok(settings)
    }

    /// The same production checks as the server's: the unsubscribe links this process signs
    /// must not be forgeable with the public development secret.
    pub fn check(&self) -> Result<(), ConfigError> {
        convos_plumbing::settings::check_secret(self.env, &self.secret_key, &self.public_url)?;
        convos_plumbing::settings::check_send_limits(self.send_limits())?;
        if self.queue_ceiling < 1 || self.jobs_in_flight < 1 {
            return Err(ConfigError::Unusable(
                "CONVOS_QUEUE_CEILING and CONVOS_JOBS_IN_FLIGHT must be at least 1: nothing \
                 would ever be handed out"
                    .into(),
            ));
        }
        if self.keep_jobs_days < 1 || self.keep_event_jobs_hours < 1 {
            return Err(ConfigError::Unusable(
                "CONVOS_KEEP_JOBS_DAYS and CONVOS_KEEP_EVENT_JOBS_HOURS must be at least 1: \
                 the purge would delete jobs as they finish"
                    .into(),
            ));
        }
        if let Err(e) = convos_plumbing::networks::Networks::parse(&self.inbound_relays) {
            return Err(ConfigError::Unusable(format!("CONVOS_INBOUND_RELAYS: {e}")));
        }
        if self.inbound_smtp_addr.is_some() && self.reply_domain.is_none() {
            return Err(ConfigError::Unusable(
                "CONVOS_INBOUND_SMTP_ADDR needs CONVOS_REPLY_DOMAIN: the listener takes mail \
                 for that domain only"
                    .into(),
            ));
        }
        convos_plumbing::settings::check_public_url(self.env, &self.public_url)
    }

    /// How long finished jobs are kept.
    pub fn keep(&self) -> convos_store::purge::Keep {
        convos_store::purge::Keep {
            days: self.keep_jobs_days,
            event_hours: self.keep_event_jobs_hours,
        }
    }

    /// What one user may send, replies by email included.
    pub fn send_limits(&self) -> SendLimits {
        SendLimits {
            per_minute: self.send_rate_per_min,
            bytes_per_day: self.send_bytes_per_day,
        }
    }

    /// The daily caps on mail to reply and bounce addresses.
    pub fn inbound_caps(&self) -> DailyCaps {
        DailyCaps {
            per_address: self.inbound_per_address_per_day,
            per_user: self.inbound_per_user_per_day,
        }
    }

    /// The job deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(self.job_deadline_secs.max(1))
    }
}
