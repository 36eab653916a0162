//! Layered settings: built-in defaults, then an optional TOML file, then environment variables.
//!
//! The file is `$CONVOS_CONFIG` if set, else `convos.toml` in the working directory if present.
//! Environment variables win: `DATABASE_URL`, `REDIS_URL`, and every other setting as
//! `CONVOS_<NAME>` (e.g. `CONVOS_ADDR`, `CONVOS_SEND_RATE_PER_MIN`).

use convos_plumbing::inbound_caps::DailyCaps;
use convos_plumbing::rate_limit::{SEND_BYTES_PER_DAY, SendLimits};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;

/// The shortest inbound webhook secret accepted.
const MIN_WEBHOOK_SECRET_CHARS: usize = 16;

pub use convos_plumbing::{ConfigError, DEV_PUBLIC_URL, DEV_SECRET_KEY, Environment, LogFormat};

/// Every server setting. Missing values take [`Settings::default`].
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `development` (default) or `production`.
    pub env: Environment,
    /// Listen address (`CONVOS_ADDR`), default `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// PostgreSQL URL (`DATABASE_URL`).
    pub database_url: SecretString,
    /// Redis URL (`REDIS_URL`).
    pub redis_url: SecretString,
    /// Prefix of every Redis key this server writes, so several deployments or tests can share
    /// one Redis.
    pub redis_prefix: String,
    /// Messages (new threads and replies) one user may send a minute.
    pub send_rate_per_min: u32,
    /// Bytes a day, from the day's first send, of what one user's sends store
    /// (`convos_plumbing::rate_limit::message_volume`; `CONVOS_SEND_BYTES_PER_DAY`), replies
    /// by email included; past it, `429` (decision 72). At the minute's rate and the longest
    /// bodies, one account stored 2.7 GB a day.
    pub send_bytes_per_day: u64,
    /// Failed logins allowed per username from one client address a minute.
    pub login_failures_per_min: u32,
    /// Signs tokens in links (e.g. unsubscribe). Must be set in production.
    pub secret_key: SecretString,
    /// The URL users reach this server at, for links.
    pub public_url: String,
    /// The shared secret of the inbound email webhook (`CONVOS_INBOUND_WEBHOOK_SECRET`), sent
    /// as `Authorization: Bearer <secret>` or as the password of HTTP basic authentication;
    /// unset (default), `POST /api/v1/inbound/email` answers 404.
    pub inbound_webhook_secret: Option<SecretString>,
    /// Messages the inbound webhook keeps for one reply or bounce address a day
    /// (`CONVOS_INBOUND_PER_ADDRESS_PER_DAY`); more are answered `503`, which every provider
    /// retries later (decision 70). Counted with the worker's SMTP listener, in the same keys: give
    /// both the same value.
    pub inbound_per_address_per_day: u32,
    /// Messages the inbound webhook keeps a day for all the addresses of one user
    /// (`CONVOS_INBOUND_PER_USER_PER_DAY`), counted with the SMTP listener's (decision 70).
    pub inbound_per_user_per_day: u32,
    /// Seconds a notification email waits for the recipient to read the message first
    /// (`CONVOS_NOTIFY_DELAY_SECS`).
    pub notify_delay_secs: u64,
    /// Seconds between SSE heartbeat comments on idle event streams.
    pub sse_heartbeat_secs: u64,
    /// Seconds between an event stream's checks that its session still lives: revocations are
    /// announced at once, but a session idling out or expiring is not an event.
    pub sse_session_check_secs: u64,
    /// Apply pending migrations at start-up.
    pub migrate_on_start: bool,
    /// Upper bound of PostgreSQL connections this process opens.
    pub db_max_connections: u32,
    /// `pretty` or `json`; defaults to pretty in development and JSON in production.
    pub log_format: Option<LogFormat>,
    /// Milliseconds any one SQL statement of a request may run before PostgreSQL cancels it
    /// (`statement_timeout` of every pooled connection); the request then answers 503.
    pub db_statement_timeout_ms: u64,
    /// Milliseconds one search statement may run (tighter than the general limit).
    pub search_timeout_ms: u64,
    /// Event streams one user may hold open at once; opening one more closes their oldest.
    pub max_streams_per_user: usize,
    /// Requests one user may have under way at once in one server process (event streams
    /// once started do not count); one more is `429`.
    pub max_requests_per_user: usize,
    /// Searches running at once in one server process, all users together; one more waits
    /// (`costly_wait_ms`).
    pub max_searches: usize,
    /// Actions on a whole long thread (marking it read, deleting it) running at once in one
    /// server process, all users together; one more waits (`costly_wait_ms`).
    pub max_long_thread_actions: usize,
    /// A thread is long, for `max_long_thread_actions`, when it holds more messages than this.
    pub long_thread_messages: i64,
    /// Milliseconds a search or long-thread action may wait for a place when all are taken,
    /// in a queue that serves first the user holding the fewest; then `429` (decision 79).
    pub costly_wait_ms: u64,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Connections one client network (an IPv4 address, an IPv6 /64) may hold open at once,
    /// and twice that one IPv6 /48; trusted proxies are exempt.
    pub max_connections_per_addr: usize,
    /// Requests a second one client network (an IPv4 address, an IPv6 /64) may sustain, in
    /// bursts of two seconds' worth, and twice that one IPv6 /48; one more is `429` before any
    /// other work (decision 78). 0: no limit.
    pub requests_per_sec_per_addr: u32,
    /// Seconds a client has to send a request's headers, counted from when the server starts
    /// waiting for them: also how long a kept-alive connection may sit idle between requests.
    pub header_timeout_secs: u64,
    /// Seconds a response may wait on a client that does not read it: a connection whose
    /// writes wait that long without the client taking 64 KiB (or all that was written) is
    /// reset, and its response freed.
    pub write_timeout_secs: u64,
    /// Seconds a request (anything but an event stream) may take before it answers 503.
    pub request_timeout_secs: u64,
    /// Addresses (or CIDR ranges) of reverse proxies whose `X-Forwarded-For` is believed; from
    /// anyone else the peer address is the client address.
    pub trusted_proxies: Vec<String>,
    /// Failed logins allowed per client address a minute (over all usernames).
    pub login_failures_per_min_per_addr: u32,
    /// Failed logins allowed per username an hour over all client addresses, bounding guesses
    /// spread over many addresses. Set well above what one address can reach
    /// (`login_failures_per_min` × 60), and not applied to an address the user logged in from
    /// or used a session from while their sessions could still live (`session_max_days`), so
    /// it cannot be used to lock the owner out.
    pub login_failures_per_hour_per_username: u32,
    /// Successful logins (and password checks of a password change) one user may make an hour,
    /// over all addresses. Only someone who knows the password can use it up.
    pub logins_per_hour_per_user: u32,
    /// Successful logins one client address may make an hour, over all users.
    pub logins_per_hour_per_addr: u32,
    /// Live sessions one user may hold; a login beyond it ends their oldest session.
    pub max_sessions_per_user: u32,
    /// Accounts one client address may create an hour.
    pub signups_per_hour_per_addr: u32,
    /// Verification emails one account may ask for an hour.
    pub verification_emails_per_hour: u32,
    /// Verification emails the accounts of one client network (an IPv4 address, an IPv6 /56)
    /// may ask for an hour, all together, beyond those of their sign-ups: each mailbox is
    /// capped, but a network's many accounts could otherwise mail many strangers.
    pub verification_emails_per_hour_per_addr: u32,
    /// Actions one user's email links may take a minute (they need no login, so no other
    /// per-user cap applies); one more is `429`.
    pub email_link_actions_per_min: u32,
    /// Event streams one user may open a minute; one more is `429`. Each open may replay up to
    /// a thousand events, so a reconnect loop is bounded here rather than by the CPU it burns.
    pub stream_opens_per_min: u32,
    /// Changes one user may make a minute to read flags, folders and their copies (mark read or
    /// unread, archive, mute, delete): each writes a live event's job; one more is `429`.
    pub actions_per_min: u32,
    /// Hours a verification link works; an unverified claim on an address lapses after as long.
    pub verification_link_hours: u64,
    /// Days a session survives without being used.
    pub session_idle_days: u64,
    /// Days a session lasts at most, however much it is used.
    pub session_max_days: u64,
    /// Where `/metrics` is served (`CONVOS_SERVER_METRICS_ADDR`), apart from the API; `off` to serve
    /// none there.
    #[serde(deserialize_with = "convos_plumbing::settings::optional_addr")]
    pub server_metrics_addr: Option<SocketAddr>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: SecretString::from("postgres://localhost/convos"),
            redis_url: SecretString::from("redis://127.0.0.1:6379"),
            redis_prefix: "convos:".into(),
            send_rate_per_min: 30,
            send_bytes_per_day: SEND_BYTES_PER_DAY,
            login_failures_per_min: 10,
            secret_key: SecretString::from(DEV_SECRET_KEY),
            inbound_webhook_secret: None,
            inbound_per_address_per_day: DailyCaps::default().per_address,
            inbound_per_user_per_day: DailyCaps::default().per_user,
            public_url: DEV_PUBLIC_URL.into(),
            notify_delay_secs: 120,
            sse_heartbeat_secs: 15,
            sse_session_check_secs: 3_600,
            migrate_on_start: true,
            db_max_connections: 20,
            log_format: None,
            db_statement_timeout_ms: 5_000,
            search_timeout_ms: 2_000,
            max_streams_per_user: 10,
            max_requests_per_user: 8,
            max_searches: 8,
            max_long_thread_actions: 4,
            long_thread_messages: convos_store::threads::LONG_THREAD_MESSAGES,
            costly_wait_ms: 3_000,
            max_connections: 4_096,
            max_connections_per_addr: 64,
            requests_per_sec_per_addr: 200,
            header_timeout_secs: 10,
            write_timeout_secs: 30,
            request_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            login_failures_per_min_per_addr: 30,
            login_failures_per_hour_per_username: 1_000,
            logins_per_hour_per_user: 60,
            logins_per_hour_per_addr: 600,
            max_sessions_per_user: 50,
            signups_per_hour_per_addr: 5,
            verification_emails_per_hour: 3,
            verification_emails_per_hour_per_addr: 10,
            email_link_actions_per_min: 30,
            stream_opens_per_min: 60,
            actions_per_min: 300,
            verification_link_hours: 48,
            session_idle_days: 30,
            session_max_days: 90,
            server_metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
        }
    }
}

impl Settings {
    /// Loads settings from defaults, the optional file and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment())
    }

    /// The layered sources, for tests that want to add their own on top.
    pub fn figment() -> Figment {
        convos_plumbing::settings::figment()
    }

    /// What one user may send.
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

    /// Extracts and checks settings from `figment`.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = convos_plumbing::settings::extract(&figment)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        convos_plumbing::settings::check_secret(self.env, &self.secret_key, &self.public_url)?;
        convos_plumbing::settings::check_public_url(self.env, &self.public_url)?;
        convos_plumbing::settings::check_send_limits(self.send_limits())?;
        if let Some(secret) = &self.inbound_webhook_secret
            && secret.expose_secret().chars().count() < MIN_WEBHOOK_SECRET_CHARS
        {
            // An empty secret matched an empty basic-auth password: the webhook was open.
            return Err(ConfigError::Unusable(format!(
                "CONVOS_INBOUND_WEBHOOK_SECRET must be at least {MIN_WEBHOOK_SECRET_CHARS} \
                 characters (unset it to turn the webhook off)"
            )));
        }
        if let Err(e) = crate::client_addr::TrustedProxies::parse(&self.trusted_proxies) {
            return Err(ConfigError::Unusable(format!("trusted_proxies: {e}")));
        }
        Ok(())
    }

    /// The log format in force.
    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(LogFormat::of(self.env))
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;
    use secrecy::ExposeSecret;

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "convos.toml",
                "send_rate_per_min = 5\naddr = \"0.0.0.0:9000\"",
            )?;
            jail.set_env("CONVOS_SEND_RATE_PER_MIN", "7");
            jail.set_env("DATABASE_URL", "postgres://db.example/convos");
            let s = Settings::load().expect("settings load");
            assert_eq!(s.send_rate_per_min, 7);
            assert_eq!(s.addr.port(), 9000);
            assert_eq!(
                s.database_url.expose_secret(),
                "postgres://db.example/convos"
            );
            assert_eq!(s.login_failures_per_min, 10);
            Ok(())
        });
    }

    #[test]
    fn send_limits_that_would_refuse_a_message_every_day_are_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("CONVOS_SEND_BYTES_PER_DAY", "6999999");
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("CONVOS_SEND_BYTES_PER_DAY"), "{err}");
            jail.set_env("CONVOS_SEND_BYTES_PER_DAY", "7000000");
            jail.set_env("CONVOS_SEND_RATE_PER_MIN", "0");
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("CONVOS_SEND_RATE_PER_MIN"), "{err}");
            jail.set_env("CONVOS_SEND_RATE_PER_MIN", "1");
            assert_eq!(
                Settings::load().expect("settings load").send_bytes_per_day,
                7_000_000
            );
            Ok(())
        });
    }

    #[test]
    fn production_refuses_the_default_secret_and_names_the_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("CONVOS_ENV", "production");
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("CONVOS_SECRET_KEY"), "{err}");
            jail.set_env(
                "CONVOS_SECRET_KEY",
                "a-real-secret-that-is-long-enough-0123456789",
            );
            let err = Settings::load().unwrap_err().to_string();
            assert!(err.contains("CONVOS_PUBLIC_URL"), "{err}");
            jail.set_env("CONVOS_PUBLIC_URL", "https://convos.example");
            let s = Settings::load().expect("settings load");
            assert_eq!(s.log_format(), LogFormat::Json);
            Ok(())
        });
    }

    #[test]
    fn an_empty_or_short_webhook_secret_is_refused() {
        Jail::expect_with(|jail| {
            for short in ["", "hunter2"] {
                jail.set_env("CONVOS_INBOUND_WEBHOOK_SECRET", short);
                let err = Settings::load().unwrap_err().to_string();
                assert!(err.contains("CONVOS_INBOUND_WEBHOOK_SECRET"), "{err}");
            }
            jail.set_env(
                "CONVOS_INBOUND_WEBHOOK_SECRET",
                "a-webhook-secret-of-some-length",
            );
            assert!(Settings::load().unwrap().inbound_webhook_secret.is_some());
            Ok(())
        });
    }

    #[test]
    fn metrics_can_be_turned_off_or_moved() {
        Jail::expect_with(|jail| {
            assert!(Settings::load().unwrap().server_metrics_addr.is_some());
            jail.set_env("CONVOS_SERVER_METRICS_ADDR", "off");
            assert!(Settings::load().unwrap().server_metrics_addr.is_none());
            jail.set_env("CONVOS_SERVER_METRICS_ADDR", "10.0.0.5:9100");
            let s = Settings::load().unwrap();
            assert_eq!(
                s.server_metrics_addr,
                Some("10.0.0.5:9100".parse().unwrap())
            );
            jail.set_env("CONVOS_SERVER_METRICS_ADDR", "nonsense");
            assert!(Settings::load().is_err());
            Ok(())
        });
    }

    #[test]
    fn debug_output_does_not_leak_secrets() {
        let s = Settings::default();
        let shown = format!("{s:?}");
        assert!(!shown.contains(DEV_SECRET_KEY));
    }
}
