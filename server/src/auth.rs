//! Passwords (argon2id), bearer tokens (32 random bytes, shown once) and what a session
//! records about itself.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use convos_core::Password;
use convos_store::tokens::Lifetimes;
use rand::RngCore;

/// Prefix of every Convos token, so leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "cvs_";

/// A new random bearer token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The longest client label kept for a session, in characters.
pub const CLIENT_LABEL_MAX: usize = 100;

/// Session lifetimes from the settings (clamped to 100 years, which PostgreSQL intervals hold).
pub fn lifetimes(settings: &crate::config::Settings) -> Lifetimes {
    let days = |d: u64| i32::try_from(d.min(36_500)).unwrap_or(36_500);
    Lifetimes {
        idle_days: days(settings.session_idle_days),
        max_days: days(settings.session_max_days),
    }
}

/// A short label naming what logged in, from its `User-Agent`: control, bidirectional and
/// zero-width characters removed (the label is shown to the user later), runs of whitespace
/// folded, at most [`CLIENT_LABEL_MAX`] characters. `None` when nothing is left.
pub fn client_label(user_agent: Option<&[u8]>) -> Option<String> {
    let raw = String::from_utf8_lossy(user_agent?);
    let hidden = |c: char| c.is_control() || convos_core::text::is_invisible(c) || c == '\u{fffd}';
    let label = raw
        .split(|c: char| c.is_whitespace() || hidden(c))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let label: String = label.chars().take(CLIENT_LABEL_MAX).collect();
    let label = label.trim_end();
    (!label.is_empty()).then(|| label.to_owned())
}

/// Hashes a password to a PHC string. CPU-heavy: call from a blocking task (the server uses
/// its hashing pool, [`crate::hashing::Hasher`]; this serves the command line).
pub fn hash_password(password: &Password) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.expose().as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("could not hash password: {e}"))
}

/// Checks a password against a PHC string. CPU-heavy: call from a blocking task (the server
/// uses its hashing pool).
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password(&Password::parse("correct horse").unwrap()).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
    }

    #[test]
    fn client_labels_are_short_visible_text() {
        let ua = |s: &str| client_label(Some(s.as_bytes()));
        assert_eq!(
            ua("convos-tui/0.1 (linux)").as_deref(),
            Some("convos-tui/0.1 (linux)")
        );
        assert_eq!(
            ua("evil\u{202e}txt.exe \u{200b}\t\r\n  x").as_deref(),
            Some("evil txt.exe x")
        );
        assert_eq!(ua(&"a".repeat(5_000)).map(|l| l.chars().count()), Some(100));
        assert_eq!(ua(" \u{feff} "), None);
        assert_eq!(client_label(None), None);
        assert_eq!(
            client_label(Some(b"caf\xe9")).as_deref(),
            Some("caf"),
            "bytes that are not UTF-8 are dropped"
        );
    }

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
    }
}
