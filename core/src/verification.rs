//! Signed, expiring email-verification links: `<user id>.<issued>.<expires>.<HMAC-SHA256, hex>`.
//!
//! The worker makes one when it sends a verification email; the server checks it without a
//! login. The signature covers the user, the address (lower-cased) and both times, but the
//! address is not in the token: the server recomputes the signature with the account's current
//! address, so a link stops working when the address changes. The issue time lets the server
//! refuse links older than the account's last verification (decision 14).

use crate::ids::UserId;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, user: UserId, email: &str, issued: i64, expires: i64) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    // A separator that cannot occur in any field keeps the fields from running together.
    mac.update(b"convos-verify-email:");
    mac.update(user.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(email.to_ascii_lowercase().as_bytes());
    mac.update(b"\n");
    mac.update(issued.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(expires.to_string().as_bytes());
    mac
}

/// The link token proving that whoever holds it received the email sent to `email` for `user`
/// at `issued`, valid until `expires`. Times are kept to the millisecond.
pub fn token(
    secret: &str,
    user: UserId,
    email: &str,
    issued: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> String {
    let (issued, expires) = (issued.timestamp_millis(), expires.timestamp_millis());
    let sig = mac(secret, user, email, issued, expires)
        .finalize()
        .into_bytes();
    format!("{user}.{issued}.{expires}.{}", hex::encode(sig))
}

/// A token's readable parts, before its signature is checked against an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The account it was made for.
    pub user: UserId,
    /// When the email was sent.
    pub issued: DateTime<Utc>,
    /// When the link stops working.
    pub expires: DateTime<Utc>,
    issued_ms: i64,
    expires_ms: i64,
    sig: Vec<u8>,
}

impl Link {
    /// Splits a token into its parts; `None` when it is not shaped like one.
    pub fn parse(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let user: UserId = parts.next()?.parse().ok()?;
        let issued_ms: i64 = parts.next()?.parse().ok()?;
        let expires_ms: i64 = parts.next()?.parse().ok()?;
        let sig = hex::decode(parts.next()?).ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            user,
            issued: DateTime::from_timestamp_millis(issued_ms)?,
            expires: DateTime::from_timestamp_millis(expires_ms)?,
            issued_ms,
            expires_ms,
            sig,
        })
    }

    /// Whether the server made this link for the account's address `email`.
    pub fn is_signed_for(&self, secret: &str, email: &str) -> bool {
        mac(secret, self.user, email, self.issued_ms, self.expires_ms)
            .verify_slice(&self.sig)
            .is_ok()
    }

    /// Whether it has stopped working at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_genuine_link_checks_out_for_its_address_only() {
        let user = UserId::generate();
        let now = Utc::now();
        let t = token(
            "secret-a",
            user,
            "Alice@Example.com",
            now,
            now + Duration::hours(48),
        );
        let link = Link::parse(&t).expect("well formed");
        assert_eq!(link.user, user);
        assert_eq!(link.issued.timestamp_millis(), now.timestamp_millis());
        assert!(
            link.is_signed_for("secret-a", "alice@example.com"),
            "case-insensitive"
        );
        assert!(
            !link.is_signed_for("secret-b", "alice@example.com"),
            "another secret"
        );
        assert!(
            !link.is_signed_for("secret-a", "mallory@example.com"),
            "another address"
        );
        assert!(!link.is_expired(now + Duration::hours(47)));
        assert!(link.is_expired(now + Duration::hours(48)));
    }

    #[test]
    fn tampered_links_do_not_check_out() {
        let user = UserId::generate();
        let now = Utc::now();
        let t = token("s", user, "a@b.example", now, now + Duration::hours(1));
        let parts: Vec<&str> = t.split('.').collect();
        let later = (now + Duration::days(365)).timestamp_millis().to_string();
        let extended = format!("{}.{}.{later}.{}", parts[0], parts[1], parts[3]);
        let link = Link::parse(&extended).unwrap();
        assert!(
            !link.is_signed_for("s", "a@b.example"),
            "a longer life is not signed"
        );
        let other = UserId::generate();
        let moved = format!("{other}.{}.{}.{}", parts[1], parts[2], parts[3]);
        assert!(
            !Link::parse(&moved)
                .unwrap()
                .is_signed_for("s", "a@b.example")
        );
        for garbage in [
            "",
            "x",
            "a.b.c.d",
            &format!("{t}.00"),
            &format!("{user}.1.2.zz"),
        ] {
            assert!(Link::parse(garbage).is_none(), "{garbage}");
        }
    }
}
