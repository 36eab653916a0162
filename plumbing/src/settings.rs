//! Layered settings, read the same way by every process: built-in defaults, then an optional
//! TOML file (`$CONVOS_CONFIG`, else `convos.toml` in the working directory if present), then
//! the environment, which wins: `DATABASE_URL`, `REDIS_URL`, and every other setting as
//! `CONVOS_<NAME>`. Production refuses what is only safe in development.

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The secret used when none is configured; refused in production.
pub const DEV_SECRET_KEY: &str = "convos-development-secret-do-not-use-in-production";

/// The public URL used when none is configured; refused in production, where every link in
/// every email would point at the recipient's own machine.
pub const DEV_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// The fewest characters a secret key may have.
pub const MIN_SECRET_CHARS: usize = 32;

/// Where the process runs, which picks log format and safety checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Pretty logs, default secrets allowed.
    #[default]
    Development,
    /// JSON logs; refuses to start with default secrets.
    Production,
}

/// Why the settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// A value is well-formed but unusable.
    #[error("invalid configuration: {0}")]
    Unusable(String),
    /// A production deployment is missing a setting that has an unsafe default.
    #[error("refusing to start in production: {0}")]
    UnsafeInProduction(String),
}

/// The layered sources.
pub fn figment() -> Figment {
    let file = std::env::var("CONVOS_CONFIG").unwrap_or_else(|_| "convos.toml".into());
    Figment::from(Toml::file(file))
        .merge(Env::raw().only(&["DATABASE_URL", "REDIS_URL"]))
        // The terminal client's variables share the prefix; they are not settings here.
        .merge(Env::prefixed("CONVOS_").ignore(&["CONFIG", "SERVER", "TOKEN"]))
}

/// Extracts a process's settings from `figment` (see [`figment()`]).
pub fn extract<T: DeserializeOwned>(figment: &Figment) -> Result<T, ConfigError> {
    figment
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))
}

/// Reads an optional listen address: an address, or `off` (or an empty value) for none, since
/// neither the environment nor TOML can say "unset" otherwise.
pub fn optional_addr<'de, D>(deserializer: D) -> Result<Option<SocketAddr>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw = Option::<String>::deserialize(deserializer)?;
    match raw.as_deref().map(str::trim) {
        None | Some("" | "off" | "none") => Ok(None),
        Some(addr) => addr.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("`{addr}` is not an address (or `off`)"))
        }),
    }
}

/// The checks every process makes of the secret key: long enough anywhere (counted in
/// characters, not bytes), and never the public development secret in production or wherever
/// the links it signs point somewhere other than this machine or a reserved test name: a
/// deployment that left out `CONVOS_ENV=production` signed every link with a key anyone can
/// read in the source (a probe forged verifications and unsubscribes).
pub fn check_secret(
    env: Environment,
    secret: &SecretString,
    public_url: &str,
) -> Result<(), ConfigError> {
    let secret = secret.expose_secret();
    if secret == DEV_SECRET_KEY && (env == Environment::Production || !is_local(public_url)) {
        return Err(ConfigError::UnsafeInProduction(format!(
            "CONVOS_SECRET_KEY is not set (the built-in development secret is only for links to \
             this machine, and CONVOS_PUBLIC_URL is {public_url})"
        )));
    }
    if secret.chars().count() < MIN_SECRET_CHARS {
        return Err(ConfigError::Unusable(format!(
            "CONVOS_SECRET_KEY must be at least {MIN_SECRET_CHARS} characters"
        )));
    }
    Ok(())
}

/// Whether `url` names this machine (`localhost`, a loopback address) or a name reserved for
/// tests and documentation (`.localhost`, `.test`, `.example`, `.invalid`: RFC 6761), which
/// no public deployment can have.
fn is_local(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    host == "localhost"
        || [".localhost", ".test", ".example", ".invalid"]
            .iter()
            .any(|tld| host.ends_with(tld))
}

/// Refuses send limits that would refuse some message every time: no send a minute, or a day's
/// volume below what one message can count ([`crate::rate_limit::MIN_SEND_BYTES_PER_DAY`]).
pub fn check_send_limits(limits: crate::rate_limit::SendLimits) -> Result<(), ConfigError> {
    let least = crate::rate_limit::MIN_SEND_BYTES_PER_DAY;
    if limits.per_minute < 1 || limits.bytes_per_day < least {
        return Err(ConfigError::Unusable(format!(
            "CONVOS_SEND_RATE_PER_MIN must be at least 1 and CONVOS_SEND_BYTES_PER_DAY at least \
             {least}: one message can count up to about that much, and would never be sent"
        )));
    }
    Ok(())
}

/// Production refuses the built-in public URL: verification and unsubscribe links would not
/// work.
pub fn check_public_url(env: Environment, url: &str) -> Result<(), ConfigError> {
    if env == Environment::Production && url.trim_end_matches('/') == DEV_PUBLIC_URL {
        return Err(ConfigError::UnsafeInProduction(
            "CONVOS_PUBLIC_URL is not set (links in emails would point at 127.0.0.1)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_the_development_secret() {
        let dev = SecretString::from(DEV_SECRET_KEY);
        assert!(check_secret(Environment::Development, &dev, DEV_PUBLIC_URL).is_ok());
        let err = check_secret(Environment::Production, &dev, DEV_PUBLIC_URL).unwrap_err();
        assert!(err.to_string().contains("CONVOS_SECRET_KEY"), "{err}");
    }

    #[test]
    fn the_development_secret_signs_only_links_to_this_machine_or_a_test_name() {
        let dev = SecretString::from(DEV_SECRET_KEY);
        let dev_ok = |url: &str| check_secret(Environment::Development, &dev, url).is_ok();
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost:3000/",
            "http://[::1]:8080",
            "https://convos.test",
            "https://app.convos.localhost",
            "https://convos.example/x",
        ] {
            assert!(dev_ok(local), "{local}");
        }
        // A probe's deployment: a real address, `CONVOS_ENV` left out.
        for public in [
            "https://convos.example.com",
            "http://10.0.0.5:8080",
            "https://test.com",
            "https://localhost.evil.com",
        ] {
            assert!(!dev_ok(public), "{public}");
        }
        let own = SecretString::from("k".repeat(32));
        assert!(check_secret(Environment::Development, &own, "https://convos.example.com").is_ok());
    }

    #[test]
    fn production_refuses_the_development_public_url() {
        assert!(check_public_url(Environment::Production, DEV_PUBLIC_URL).is_err());
        assert!(check_public_url(Environment::Production, "https://convos.example").is_ok());
        assert!(check_public_url(Environment::Development, DEV_PUBLIC_URL).is_ok());
    }

    #[test]
    fn secret_length_is_counted_in_characters() {
        // 11 characters, 33 bytes: too short.
        let short = SecretString::from("ééééééééééé".replace('é', "€"));
        assert!(check_secret(Environment::Production, &short, DEV_PUBLIC_URL).is_err());
        let long = SecretString::from("€".repeat(32));
        assert!(check_secret(Environment::Production, &long, DEV_PUBLIC_URL).is_ok());
    }
}
